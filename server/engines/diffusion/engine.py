"""The diffusers engine: Stable Diffusion 1.x, 2.x, SDXL, Flux.1 and Flux.2 Klein through Hugging Face diffusers."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from paintwire.protocol import CHECKPOINT_KINDS, ControlKindSpec, DeviceInfo, ErrorCode, ModelInfo, ModeSpec, Phase, ProtocolError

from ...config import DeviceConfig, ModelsConfig
from ..base import DecodedControl, Engine, EngineJob, EngineOutput, JobCancelledError, JobContext
from .cache import LoadedModel, ModelCache
from .control import preprocess as control_preprocess
from .control.catalog import control_kinds
from .control.loading import AddonLoader
from .control.setup import check_layers, control_set
from .device import DeviceChoice, choose_device, free_memory, is_out_of_memory
from .costs import PhaseCosts, job_work
from .generate import Sampling
from .load_progress import LoadWatch, reporting
from .load_progress import install as install_quiet_bars
from .families import family_name
from .networks import denoiser_of
from .loader import Loader
from .lora import applied, embeddings_in, parse_prompt
from .memory import MemoryPlan, card_of, choose_attention_slicing, component_sizes, place, quantization_config
from .memory_plan import Placement, Weights, plan
from .models import UPSCALER, VAE, ModelEntry, ModelRegistry, hf_cache_dir, vae_latent_channels
from .modes import ModeRunner
from .params import MODES, mode_named, with_upscalers
from .phases import watching
from .sampling import inference_steps
from .weight_sizes import entry_weights

log = logging.getLogger(__name__)

MODELS_NAMED = 6  # models named on the start-up summary's line of those that fit whole


class DiffusersEngine(Engine):
    name = "diffusers"
    label = "Stable Diffusion and Flux (diffusers)"

    def __init__(self, device: DeviceConfig, models: ModelsConfig, registry: ModelRegistry | None = None) -> None:
        self.device_config, self.models_config = device, models
        self.registry = registry or ModelRegistry.scan(list(models.model_dirs))
        self.choice = choose_device(device.name, device.memory_budget_gb, device.precision)
        self.loader = Loader(self.registry, self.choice.device, self.choice.dtype)
        self.cache = ModelCache(self._load, self.choice.memory_budget)
        self.addons = AddonLoader(self.choice.dtype)  # ControlNets, IP-Adapters, image encoders
        self.costs = PhaseCosts(self.choice.device.type)  # each model's phase times, for the progress fraction
        self.card = card_of(self.choice.device, self.choice.kind, self.choice.usable, self.choice.name)
        self._weights: dict[ModelEntry, Weights | None] = {}  # component sizes read from each model's headers
        install_quiet_bars()
        log.info("diffusers engine: %d models on %s", len(self.registry.entries), self.device().summary())

    def device(self) -> DeviceInfo:
        return self.choice.info()  # free memory as of now: capabilities are made at start and on each rescan

    def _load(self, entry: ModelEntry, vae: ModelEntry | None) -> Any:
        """Load on the CPU (bitsandbytes quantises onto the card as it loads), then place
        on the device as its size and the memory allow."""
        pipe = self.loader.load(entry, vae, quantization_config(self.placement(entry), self.choice.dtype))
        plan = self.memory_plan(entry, pipe)
        place(pipe, plan, self.choice.device)
        if plan.measures:
            log.info("%s on %s with %s", entry.name, self.choice.name, ", ".join(plan.measures))
        return pipe

    def weights(self, entry: ModelEntry) -> Weights | None:
        """``entry``'s component sizes in the run dtype, from its files' headers (read once)."""
        if entry not in self._weights:
            self._weights[entry] = entry_weights(entry, self.choice.dtype.itemsize)
        return self._weights[entry]

    def placement(self, entry: ModelEntry, pixels: int = 0) -> Placement | None:
        """The memory plan of ``entry`` on this device for steps of ``pixels`` pixels in all
        (0: one image at the model's native size); None when its sizes cannot be read."""
        weights = self.weights(entry)
        if weights is None or entry.family is None:
            return None
        family = entry.family
        reserve = family.activation_bytes(pixels, 1) if pixels else family.activation_reserve  # all the batch's pixels
        # bitsandbytes quantises through from_pretrained's quantization_config: diffusers folders only.
        card = self.card
        if entry.single_file and card.quantizers:
            card = dataclasses.replace(card, quantizers=frozenset(), without_quantizers="bitsandbytes quantises diffusers folders only")
        return plan(weights, card, reserve, self.device_config.offload, family.per_component_memory)

    def memory_plan(self, entry: ModelEntry, pipe: Any) -> MemoryPlan:
        c, device = self.device_config, self.choice.device
        placement = self.placement(entry)
        if placement is None:  # sizes not readable from the files: from the loaded weights
            weights = Weights(component_sizes(pipe, self.choice.dtype), self.choice.dtype.itemsize)
            placement = plan(weights, self.card, entry.family.activation_reserve, c.offload, entry.family.per_component_memory)
        offload = placement.offload
        # Compiling does not combine with weights streamed layer by layer or block by block.
        compile_unet = c.torch_compile and offload not in ("sequential", "group")
        return MemoryPlan(offload, choose_attention_slicing(c.attention_slicing, device), c.channels_last, compile_unet, placement)

    def memory_lines(self) -> list[str]:
        """The memory plans for the start-up summary: a line per model that needs measures
        (fp8, streaming, offload...), one line for the models that fit whole."""
        whole: list[str] = []
        lines: list[str] = []
        for e in self.registry.entries.values():
            if not e.is_checkpoint or (placement := self.placement(e)) is None:
                continue
            if placement.measures_taken and not placement.shared:
                lines.append(f"{e.name}: {placement.describe()}")
            else:
                whole.append(e.name)
        if whole:
            where = "in the computer's memory" if self.choice.device.type != "cuda" else "on the device"
            shown = ", ".join(whole[:MODELS_NAMED]) + (f" and {len(whole) - MODELS_NAMED} more" if len(whole) > MODELS_NAMED else "")
            lines.insert(0, f"{shown}: all {where}")
        return lines

    def modes(self) -> tuple[ModeSpec, ...]:
        return with_upscalers(MODES, [e.name for e in self.registry.of_kind(UPSCALER)])

    def models(self) -> tuple[ModelInfo, ...]:
        usable = [ModelInfo(e.name, self.name, e.kind, family=e.family.name if e.family else "", memory=self._memory_text(e))
                  for e in self.registry.entries.values()]
        unusable = [ModelInfo(u.name, self.name, u.kind, problem=u.reason, family=family_name(u.kind)) for u in self.registry.unusable.values()]
        return tuple(usable + unusable)

    def _memory_text(self, entry: ModelEntry) -> str:
        placement = self.placement(entry) if entry.is_checkpoint else None
        if placement is None:
            return ""
        return placement.describe() + "".join(f"; {note}" for note in placement.notes)

    def model_file(self, name: str) -> Path | None:
        entry = self.registry.get(name)
        return entry.path if entry else None

    def controls(self) -> tuple[ControlKindSpec, ...]:
        return control_kinds(self.registry, list(self.models_config.model_dirs))

    def preprocess(self, layer: DecodedControl) -> Any:
        return control_preprocess.run(layer.preprocessor, layer.image, layer.params)

    def model_folders(self) -> list[Path]:
        cache = hf_cache_dir()
        return [Path(d).expanduser() for d in self.models_config.model_dirs] + ([cache] if cache else [])

    def rescan(self) -> None:
        registry = ModelRegistry.scan(list(self.models_config.model_dirs))
        # Loaded models whose file went or changed are dropped, with their measured costs; the rest stay warm.
        changed = {name for name in self.registry.entries if name not in registry.entries or registry.entries[name] != self.registry.entries[name]}
        self.cache.forget(lambda name: name not in registry.entries or registry.entries[name] != self.registry.entries.get(name))
        for name in changed:
            self.costs.forget(name)
        self.registry = self.loader.registry = registry
        self._weights.clear()

    def notice(self) -> str:
        if self.registry.default_checkpoint() is not None:
            return ""
        folders = ", ".join(str(d) for d in self.models_config.model_dirs) or "none configured"
        return (
            "No Stable Diffusion model is installed on the server: put a checkpoint (.safetensors) or a diffusers "
            f"folder into a model folder (now: {folders}; add one with --model-dir) and restart the server."
        )

    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        with self.memory_guard(job):
            return self._run(job, ctx)

    def _run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        p = job.params
        prompt, loras = parse_prompt(p["prompt"], self.registry)
        negative, neg_loras = parse_prompt(p["negative_prompt"], self.registry, "job.params.negative_prompt")
        sampling = Sampling.from_params(p, prompt, negative)
        if job.mode == "upscale" and not p["refine"]:  # Lanczos or an upscaler model alone: no checkpoint needed
            ctx.plan({Phase.UPSCALING: 1.0})
            return ModeRunner(None, self.registry, job, ctx, sampling, self.choice.device).upscale()
        entry = self._checkpoint(job.model, mode_named(job.mode))
        vae = self._vae(p.get("vae", ""), entry)  # modes for Flux models only (edit) offer no VAE choice
        check_layers(job, entry.family, entry.kind)
        self._check_fits(job, entry)
        # Textual-inversion embeddings are words of the CLIP families' prompts; elsewhere a name is a word.
        embeddings = embeddings_in([prompt, negative], self.registry) if entry.family.prompt_weighting else []
        adapters = tuple((u.entry.name, u.weight) for u in loras + neg_loras) + tuple((e.name, 1.0) for e in embeddings)
        sampling = dataclasses.replace(sampling, adapters=adapters)
        cold = not self.cache.holds(entry, vae)
        warm = None if cold else self.cache.get(entry, vae)
        file_bytes, components = self.loader.weight_files(entry, vae)
        steps = planned_steps(job.mode, p)
        prompt_encoded = warm is None or not warm.prompts.holds(entry.family.prompt_key(sampling, warm.base))
        work = job_work(job, entry.family, warm.native_size if warm else None, cold, file_bytes, steps, prompt_encoded)
        ctx.plan(self.costs.weights(entry.name, work), {Phase.DENOISING: steps}, calibrate=Phase.DENOISING)
        loaded = warm or self._load_for(entry, vae, LoadWatch(file_bytes, lambda done, total, stage: ctx.phase(Phase.LOADING_MODEL, done, total, stage),
                                                              ctx.check_cancelled, components), ctx)
        if loaded.compile_pending is None:  # its first job: a compiled UNet reports its compile time once
            loaded.compile_pending = getattr(denoiser_of(loaded.base), "_compiled_call_impl", None) is not None
        controls = control_set(job, loaded, self.registry, self.addons, list(self.models_config.model_dirs), self.choice.device, ctx)
        runner = ModeRunner(loaded, self.registry, job, ctx, sampling, self.choice.device, controls)
        with applied(loaded.base, entry.family, loras + neg_loras, embeddings), watching(loaded.base, ctx):
            output = getattr(runner, job.mode)()  # ModeRunner has a method per mode of params.MODES
        self.costs.learn(entry.name, work, ctx.seconds())
        return output

    def _check_fits(self, job: EngineJob, entry: ModelEntry) -> None:
        """Refuse at once a job that cannot fit the device even with every measure of the plan
        (weights streamed layer by layer). With fewer measures, as a setting may ask, it is
        tried: the activation estimates are cautious, and running out is caught (memory_guard)."""
        width, height = job_size(job, entry)
        placement = self.placement(entry, width * height * int(job.params.get("batch_size", 1) or 1))
        if placement is not None and not placement.fits and placement.offload == "sequential":
            raise ProtocolError(ErrorCode.OUT_OF_MEMORY, does_not_fit(job, entry, placement, self.choice, width, height))

    def _load_for(self, entry: ModelEntry, vae: ModelEntry | None, watch: LoadWatch, ctx: JobContext) -> LoadedModel:
        """Load ``entry`` for a job, reporting its parts as they load; a cancel stops it
        between groups of tensors and leaves nothing of it in the cache."""
        watch.tick()  # "loading model", 0 parts: at once, before anything is read
        try:
            with reporting(watch):
                return self.cache.get(entry, vae)
        except (ProtocolError, JobCancelledError):
            raise
        except Exception as exc:
            if ctx.cancel_event.is_set():  # a cancel that surfaced through a loader's own error handling
                raise JobCancelledError() from exc
            if is_out_of_memory(exc):
                raise
            log.warning("model %s could not be loaded: %s: %s", entry.name, type(exc).__name__, exc)
            log.debug("loading %s failed", entry.name, exc_info=True)
            raise ProtocolError(ErrorCode.ENGINE_FAILED, f"Model {entry.name!r} could not be loaded: {exc}", "job.model") from exc

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
            raise ProtocolError(ErrorCode.OUT_OF_MEMORY, out_of_memory_advice(job, self.choice, self.device_config, self._family(job))) from None

    def _family(self, job: EngineJob) -> Any:
        entry = self.registry.get(job.model) if job.model else self.registry.default_checkpoint()
        return entry.family if entry is not None else None

    def _checkpoint(self, name: str | None, mode: ModeSpec) -> ModelEntry:
        """The checkpoint a job of ``mode`` runs with: ``name``, or the default among the kinds the mode takes."""
        kinds = {str(getattr(k, "value", k)) for k in mode.model_kinds}
        entry = self.registry.default_checkpoint(kinds) if name is None else self.registry.get(name)
        unusable = self.registry.unusable.get(name) if name is not None else None
        if unusable is not None:
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, unusable.reason, "job.model")
        if entry is None or not entry.is_checkpoint:
            if name is None and kinds != {k.value for k in CHECKPOINT_KINDS}:
                message = f"{mode.label} needs a model of kind {', '.join(sorted(kinds))}, and none is in the model folders (see docs/models.md)."
            elif name is None:
                message = "No Stable Diffusion model was found in the model folders; add one (see docs/models.md)."
            elif entry is None:
                message = f"Unknown model {name!r}."
            else:
                message = f"{name!r} is a {entry.kind}, not a checkpoint to generate with."
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, message, "job.model")
        if entry.kind not in kinds:
            label = entry.family.label if entry.family else entry.kind
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"{mode.label} runs on models of kind {', '.join(sorted(kinds))}; "
                                f"{name!r} is a {label} model ({entry.kind}): choose one of those kinds.", "job.model")
        return entry

    def _vae(self, name: str, model: ModelEntry) -> ModelEntry | None:
        if not name:
            return None
        entry = self.registry.get(name)
        if entry is None or entry.kind != VAE:
            known = ", ".join(e.name for e in self.registry.of_kind(VAE)) or "none"
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"Unknown VAE {name!r}; the server has: {known}.", "job.params.vae")
        channels = vae_latent_channels(entry.path)
        if channels is not None and model.family is not None and channels != model.family.latent_channels:
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"VAE {name!r} has {channels} latent channels; {model.family.label} models "
                                f"use {model.family.latent_channels}: choose a VAE made for {model.family.label}, or none.", "job.params.vae")
        return entry

    def close(self) -> None:
        self.cache.clear()
        self.addons.clear()
        self.loader.close()


def job_size(job: EngineJob, entry: ModelEntry) -> tuple[int, int]:
    """The width and height a job's steps run at, as far as is known before it runs: a
    txt2img job's own; for the others the model's native size (an only-masked inpaint on a
    big canvas, an outpaint or a tiled refine runs on a crop or tile, not the whole image)."""
    native = entry.family.native_size if entry.family else 512
    if job.mode != "txt2img":
        return native, native
    return int(job.params.get("width") or native), int(job.params.get("height") or native)


def does_not_fit(job: EngineJob, entry: ModelEntry, placement: Placement, choice: DeviceChoice, width: int, height: int) -> str:
    """Why a job is refused before it starts: its plan at its size, and what to change."""
    batch = int(job.params.get("batch_size", 1) or 1)
    what = f"{width}x{height}" + (f", {batch} images" if batch > 1 else "")
    return (f"Model {entry.name!r} does not fit {choice.name} at {what}: {placement.describe()}. "
            "Lower the size or the batch size, or use a smaller (quantised) file of the model.")


def out_of_memory_advice(job: EngineJob, choice: DeviceChoice, config: DeviceConfig, family: Any = None) -> str:
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
    if choice.device.type == "cuda" and family is not None and family.per_component_memory:
        advice += "; a quantised file of the model (GGUF Q4 or Q5) takes a quarter to a third of the memory"
    return advice + "."


def planned_steps(mode: str, p: dict) -> int:
    """The denoising steps a job will run (all tiles of a refine count as one run here)."""
    if mode == "txt2img":
        return p["steps"]
    n = inference_steps(p["steps"], p["strength"], p["exact_steps"])
    return n if p["strength"] >= 1.0 else max(1, int(n * p["strength"]))

