"""The diffusers engine: Stable Diffusion 1.x, 2.x and SDXL through Hugging Face diffusers."""

from __future__ import annotations

import logging

from paintwire.protocol import ErrorCode, ModelInfo, ModeSpec, ProtocolError

from ...config import ServerConfig
from ..base import Engine, EngineJob, EngineOutput, JobContext
from .cache import ModelCache
from .device import choose_device
from .generate import Sampling
from .loader import Loader
from .lora import applied, embeddings_in, parse_prompt
from .models import VAE, ModelEntry, ModelRegistry
from .modes import ModeRunner
from .params import MODES

log = logging.getLogger(__name__)


class DiffusersEngine(Engine):
    name = "diffusers"
    label = "Stable Diffusion (diffusers)"

    def __init__(self, config: ServerConfig, registry: ModelRegistry | None = None) -> None:
        self.config = config
        self.registry = registry or ModelRegistry.scan(list(config.model_dirs))
        self.choice = choose_device(config.device, config.memory_budget_gb)
        self.loader = Loader(self.registry, self.choice.device, self.choice.dtype)
        self.cache = ModelCache(self.loader.load, self.choice.memory_budget)
        log.info("diffusers engine: %d models on %s (%s)", len(self.registry.entries), self.choice.device, self.choice.dtype)

    def modes(self) -> tuple[ModeSpec, ...]:
        return MODES

    def models(self) -> tuple[ModelInfo, ...]:
        return tuple(ModelInfo(e.name, self.name, e.kind) for e in self.registry.entries.values())

    def notice(self) -> str:
        if self.registry.default_checkpoint() is not None:
            return ""
        folders = ", ".join(str(d) for d in self.config.model_dirs) or "none configured"
        return (
            "No Stable Diffusion model is installed on the server: put a checkpoint (.safetensors) or a diffusers "
            f"folder into a model folder (now: {folders}; add one with --model-dir) and restart the server."
        )

    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        p = job.params
        prompt, loras = parse_prompt(p["prompt"], self.registry)
        negative, neg_loras = parse_prompt(p["negative_prompt"], self.registry, "job.params.negative_prompt")
        sampling = Sampling.from_params(p, prompt, negative)
        if job.mode == "upscale" and not p["refine"]:  # Lanczos or an upscaler model alone: no checkpoint needed
            return ModeRunner(None, self.registry, job, ctx, sampling, self.choice.device).upscale()
        entry = self._checkpoint(job.model)
        vae = self._vae(p["vae"])
        ctx.progress(0, 1, "loading model")
        try:
            loaded = self.cache.get(entry, vae)
        except ProtocolError:
            raise
        except Exception as exc:
            log.exception("loading %s failed", entry.name)
            raise ProtocolError(ErrorCode.ENGINE_FAILED, f"Model {entry.name!r} could not be loaded: {exc}", "job.model") from exc
        runner = ModeRunner(loaded, self.registry, job, ctx, sampling, self.choice.device)
        with applied(loaded.base, loras + neg_loras, embeddings_in([prompt, negative], self.registry)):
            return getattr(runner, job.mode)()  # ModeRunner has a method per mode of params.MODES

    def _checkpoint(self, name: str | None) -> ModelEntry:
        entry = self.registry.default_checkpoint() if name is None else self.registry.get(name)
        if entry is None or not entry.is_checkpoint:
            if name is None:
                message = "No Stable Diffusion model was found in the model folders; add one (see docs/models.md)."
            elif entry is None:
                message = f"Unknown model {name!r}."
            else:
                message = f"{name!r} is a {entry.kind}, not a checkpoint to generate with."
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, message, "job.model")
        return entry

    def _vae(self, name: str) -> ModelEntry | None:
        if not name:
            return None
        entry = self.registry.get(name)
        if entry is None or entry.kind != VAE:
            known = ", ".join(e.name for e in self.registry.of_kind(VAE)) or "none"
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"Unknown VAE {name!r}; the server has: {known}.", "job.params.vae")
        return entry

    def close(self) -> None:
        self.cache.clear()
        self.loader.close()

