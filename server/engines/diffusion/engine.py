"""The diffusers engine: Stable Diffusion 1.x, 2.x and SDXL through Hugging Face diffusers."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from paintwire.protocol import DeviceInfo, ErrorCode, ModelInfo, ModeSpec, ProtocolError

from ...config import ServerConfig
from ..base import Engine, EngineJob, EngineOutput, JobContext
from .cache import ModelCache
from .device import DeviceChoice, choose_device, free_memory, is_out_of_memory
from .generate import Sampling
from .loader import Loader
from .lora import applied, embeddings_in, parse_prompt
from .memory import Placement, choose_attention_slicing, choose_offload, component_sizes, place
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
        self.choice = choose_device(config.device, config.memory_budget_gb, config.precision)
        self.loader = Loader(self.registry, self.choice.device, self.choice.dtype)
        self.cache = ModelCache(self._load, self.choice.memory_budget)
        self.device_info = self.choice.info()  # as at start, for the capabilities
        log.info("diffusers engine: %d models on %s", len(self.registry.entries), self.device_info.summary())

    def device(self) -> DeviceInfo:
        return self.device_info

    def _load(self, entry: ModelEntry, vae: ModelEntry | None) -> Any:
        """Load on the CPU, then place on the device as its size and the memory allow."""
        pipe = self.loader.load(entry, vae)
        placement = self.placement(entry, pipe)
        place(pipe, placement, self.choice.device)
        if placement.measures:
            log.info("%s on %s with %s", entry.name, self.choice.name, ", ".join(placement.measures))
        return pipe

    def placement(self, entry: ModelEntry, pipe: Any) -> Placement:
        c, device = self.config, self.choice.device
        offload = choose_offload(c.offload, component_sizes(pipe, self.choice.dtype), self.choice.usable, entry.family, device)
        # Compiling does not combine with weights streamed layer by layer.
        compile_unet = c.torch_compile and offload != "sequential"
        return Placement(offload, choose_attention_slicing(c.attention_slicing, device), c.channels_last, compile_unet)

    def modes(self) -> tuple[ModeSpec, ...]:
        return MODES

    def models(self) -> tuple[ModelInfo, ...]:
        return tuple(ModelInfo(e.name, self.name, e.kind) for e in self.registry.entries.values())

    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        with self.memory_guard(job):
            return self._run(job, ctx)

    def _run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
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
            if is_out_of_memory(exc):
                raise
            log.exception("loading %s failed", entry.name)
            raise ProtocolError(ErrorCode.ENGINE_FAILED, f"Model {entry.name!r} could not be loaded: {exc}", "job.model") from exc
        if loaded.compile_pending is None:  # its first job: a compiled UNet reports its compile time once
            loaded.compile_pending = getattr(loaded.base.unet, "_compiled_call_impl", None) is not None
        runner = ModeRunner(loaded, self.registry, job, ctx, sampling, self.choice.device)
        with applied(loaded.base, loras + neg_loras, embeddings_in([prompt, negative], self.registry)):
            return getattr(runner, _METHODS[job.mode])()

    @contextmanager
    def memory_guard(self, job: EngineJob) -> Iterator[None]:
        """Out of memory in any step: free what torch holds and the other warm
        models, and fail this job with a sentence saying what to lower; the next
        job starts clean."""
        try:
            yield
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self.cache.trim()
            free_memory(self.choice.device)
            log.warning("job %s: out of memory on %s (%s)", job.id, self.choice.name, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            raise ProtocolError(ErrorCode.OUT_OF_MEMORY, out_of_memory_advice(job, self.choice, self.config)) from None

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


def out_of_memory_advice(job: EngineJob, choice: DeviceChoice, config: ServerConfig) -> str:
    """What ran out and what to lower, in the job's own terms."""
    p = job.params
    if job.image is not None:
        size = f"a {job.image.shape[1]}x{job.image.shape[0]} image"
    elif p.get("width") and p.get("height"):
        size = f"{p['width']}x{p['height']}"
    else:
        size = "this size"
    lower = [f"the size ({size})"]
    if p.get("batch_size", 1) > 1:
        lower.append(f"the batch size ({p['batch_size']})")
    if p.get("inpaint_area") == "whole_picture":
        lower.append("the inpaint area (choose 'only masked')")
    if p.get("refine") and p.get("tile_size"):
        lower.append(f"the refine tile size ({p['tile_size']})")
    where = "The GPU" if choice.device.type in ("cuda", "mps") else "The server"
    advice = f"{where} ({choice.name}) ran out of memory for this job; lower {', '.join(lower[:-1]) + ' or ' + lower[-1] if len(lower) > 1 else lower[0]}"
    if choice.device.type == "cuda" and config.offload in ("auto", "none"):
        advice += ", or set offload = \"model\" in the server's configuration (\"sequential\" for 4 GB cards)"
    elif choice.device.type == "cuda" and config.offload == "model":
        advice += ", or set offload = \"sequential\" in the server's configuration"
    return advice + "."


_METHODS = {"txt2img": "txt2img", "img2img": "img2img", "inpaint": "inpaint", "inpaint_sketch": "inpaint",
            "outpaint": "outpaint", "upscale": "upscale"}
