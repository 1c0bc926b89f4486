"""One denoising run: a pipeline call with seeds, scheduler, step hook and output conversion."""

from __future__ import annotations

import logging
import secrets
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image

from paintwire.protocol import ErrorCode, Phase, ProtocolError
from paintwire.protocol.params import MAX_SEED

from ..base import JobContext
from .cache import LoadedModel
from .device import DTYPE_NAMES, memory_info
from .memory import vae_tiling_needed
from .previews import PreviewMaker
from .prompt_encoding import encode_prompts
from .sampling import SchedulerTap, StepHook, inference_steps, make_scheduler
from .vae_encodes import unread_masked_image_skipped

if TYPE_CHECKING:
    from .control.guidance import Guidance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    prompt: str
    negative_prompt: str
    steps: int
    cfg: float
    scheduler: str
    seed: int
    batch: int
    clip_skip: int
    schedule: str = "automatic"
    # The LoRAs (name, weight) and embeddings applied: they can change what the text encoders make.
    adapters: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_params(cls, p: dict[str, Any], prompt: str, negative_prompt: str) -> "Sampling":
        return cls(prompt, negative_prompt, p["steps"], p["cfg_scale"], p["scheduler"], pick_seed(p["seed"]), p["batch_size"], p["clip_skip"],
                   p.get("schedule", "automatic"))

    @property
    def seeds(self) -> list[int]:
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.batch)]


PROMPT_STAGE = "encoding the prompt"


def prompt_key(sampling: Sampling, pipe: Any) -> tuple:
    """The prompt cache's key for ``sampling`` on ``pipe``. Cached per model: a ControlNet
    pipeline shares the checkpoint's text encoders, so only what encode_prompts reads from
    the pipeline itself (its empty-negative rule) joins the key."""
    return (sampling.prompt, sampling.negative_prompt, sampling.clip_skip, sampling.adapters,
            bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False)))


def pick_seed(seed: int) -> int:
    return secrets.randbelow(MAX_SEED + 1) if seed == -1 else seed


def generators(seeds: list[int]) -> list[torch.Generator]:
    # CPU generators: the same seed gives the same noise on every device.
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def to_pil(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(rgb))


def encode(pipe: Any, rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 4, H/8, W/8) scaled latents (the distribution's mode: no randomness)."""
    vae = pipe.vae
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with vae_precision(vae, needs_upcast(vae)), torch.inference_mode():
        latents = vae.encode(x.to(pipe._execution_device, vae.dtype)).latent_dist.mode()
    if not torch.isfinite(latents).all():  # fp16 overflow in the encoder: encode again in fp32
        with vae_precision(vae, True), torch.inference_mode():
            latents = vae.encode(x.to(pipe._execution_device, vae.dtype)).latent_dist.mode()
    return latents.to(pipe.unet.dtype) * vae.config.scaling_factor


def needs_upcast(vae: Any, learned: bool = False) -> bool:
    """The SDXL VAE overflows in fp16 (its config says force_upcast, as the pipelines
    know); any VAE that once produced NaNs in fp16 (``learned``) runs in fp32 too."""
    half = vae.dtype in (torch.float16, torch.bfloat16)
    return half and (learned or (vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))))


@contextmanager
def vae_precision(vae: Any, fp32: bool) -> Iterator[None]:
    """Run the VAE in fp32 inside the block when ``fp32``, and put it back after."""
    dtype = vae.dtype
    if not fp32 or dtype == torch.float32:
        yield
        return
    # nn.Module.to, not diffusers' override, which warns on every dtype change.
    torch.nn.Module.to(vae, torch.float32)
    try:
        yield
    finally:
        torch.nn.Module.to(vae, dtype)


def decode(loaded: LoadedModel, pipe: Any, latents: torch.Tensor) -> list[np.ndarray]:
    """Latents -> (H, W, 3) uint8 images. Never a black picture: a decode that
    overflows (NaN or inf) in half precision is done again in fp32, and the model
    remembers to decode in fp32 from then on; NaN latents are an error."""
    if not torch.isfinite(latents).all():
        raise ProtocolError(
            ErrorCode.ENGINE_FAILED,
            f"The model produced invalid numbers (NaN) in {DTYPE_NAMES.get(pipe.unet.dtype, pipe.unet.dtype)}: "
            "set precision = \"fp32\" (or \"bf16\") in the server's configuration, or use an fp16-safe model.",
        )
    vae = pipe.vae
    image = _decode(vae, latents, needs_upcast(vae, loaded.vae_fp32))
    if not torch.isfinite(image).all() and vae.dtype != torch.float32:
        log.warning("%s: the VAE overflowed in %s; decoding in fp32 from now on", loaded.entry.name, DTYPE_NAMES.get(vae.dtype))
        loaded.vae_fp32 = True
        image = _decode(vae, latents, True)
    if not torch.isfinite(image).all():
        raise ProtocolError(ErrorCode.ENGINE_FAILED, f"The VAE of {loaded.entry.name!r} produced invalid numbers (NaN) even in fp32; "
                            "choose another VAE for this model (the vae parameter).")
    images = pipe.image_processor.postprocess(image.float(), output_type="np")
    return [np.clip(np.asarray(im) * 255 + 0.5, 0, 255).astype(np.uint8) for im in images]


def _decode(vae: Any, latents: torch.Tensor, fp32: bool) -> torch.Tensor:
    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    with vae_precision(vae, fp32), torch.inference_mode():
        x = latents.to(vae.dtype)
        if mean is not None and std is not None:  # VAEs with latent statistics (some SDXL finetunes)
            x = x * torch.tensor(std).view(1, -1, 1, 1).to(x) / config.scaling_factor + torch.tensor(mean).view(1, -1, 1, 1).to(x)
        else:
            x = x / config.scaling_factor
        return vae.decode(x, return_dict=False)[0]


def denoise(
    loaded: LoadedModel,
    task: str,
    sampling: Sampling,
    ctx: JobContext,
    *,
    width: int,
    height: int,
    image: Image.Image | torch.Tensor | None = None,
    mask: Image.Image | None = None,
    strength: float = 1.0,
    exact_steps: bool = False,
    masked_image_latents: torch.Tensor | None = None,
    previews: PreviewMaker | None = None,
    blend: Callable[[SchedulerTap], Any] | None = None,
    stage: str = "denoising",
    offset: int = 0,
    total: int | None = None,
    guidance: "Guidance | None" = None,
) -> tuple[list[np.ndarray], StepHook]:
    """Run ``task`` (txt2img, img2img, inpaint) once; returns (H, W, 3) uint8 images, one per seed.
    ``guidance``: the job's control layers, placed for this run."""
    if loaded.entry.inpaint and task != "inpaint":
        # An inpainting model does txt2img and img2img as an inpaint of everything.
        if image is None:
            image, strength = to_pil(np.full((height, width, 3), 127, np.uint8)), 1.0
        mask, task = to_pil(np.full((height, width), 255, np.uint8)), "inpaint"
    pipe = guidance.pipeline(loaded.pipeline, loaded.base, task) if guidance else loaded.pipeline(task)
    pipe.scheduler = make_scheduler(sampling.scheduler, loaded.scheduler_config, sampling.schedule, sampling.seed)
    tap = SchedulerTap(pipe.scheduler)
    hook = StepHook(ctx, tap, stage, previews, blend(tap) if blend else None, offset, total)
    # No VAE encode follows the prompt's in txt2img, nor when the run starts from latents.
    image_encode = task != "txt2img" and not isinstance(image, torch.Tensor)

    def encode_prompt() -> dict[str, Any]:
        ctx.phase(Phase.ENCODING, 0, 1, PROMPT_STAGE)
        conditioning = encode_prompts(pipe, sampling.prompt, sampling.negative_prompt, sampling.clip_skip)
        if not image_encode:
            ctx.phase(Phase.ENCODING, 1, 1, PROMPT_STAGE)
        return conditioning

    kwargs: dict[str, Any] = {
        # WebUI prompt syntax, any length, clip skip: encoded here, not by the pipeline.
        **loaded.prompts.get(prompt_key(sampling, pipe), encode_prompt),
        "guidance_scale": sampling.cfg, "num_images_per_prompt": sampling.batch,
        "generator": generators(sampling.seeds),
        "callback_on_step_end": hook, "callback_on_step_end_tensor_inputs": ["latents"],
    }
    if task == "txt2img":
        kwargs.update(height=height, width=width, num_inference_steps=sampling.steps)
    else:
        kwargs.update(image=image, strength=strength, num_inference_steps=inference_steps(sampling.steps, strength, exact_steps))
    if task == "inpaint":
        kwargs.update(mask_image=mask, height=height, width=width)
        if masked_image_latents is not None:
            if guidance is not None and guidance.nets:
                raise ProtocolError(ErrorCode.INVALID_PARAM, "Masked content latent noise or latent nothing cannot be combined with "
                                    "ControlNet layers; choose original or fill.", "job.params.masked_content")
            kwargs["masked_image_latents"] = masked_image_latents
    if guidance is not None:
        kwargs.update(guidance.kwargs(task))
        kwargs["callback_on_step_end"] = guidance.step_callback(pipe, hook)
    vae = pipe.vae
    _, free = memory_info(pipe._execution_device)
    if vae_tiling_needed(width, height, loaded.native_size, vae.dtype.itemsize, free):
        vae.enable_tiling()
    else:
        vae.disable_tiling()
    kwargs["output_type"] = "latent"  # decoded here, with the NaN guard
    timer = CompileTimer(loaded.entry.name) if loaded.compile_pending else None
    if timer is not None:
        kwargs["callback_on_step_end"] = timer.wrap(kwargs["callback_on_step_end"])
    run_steps = kwargs["num_inference_steps"] if task == "txt2img" else max(1, int(kwargs["num_inference_steps"] * strength))
    with guidance.applied(pipe, run_steps) if guidance else nullcontext(), unread_masked_image_skipped(pipe), torch.inference_mode():
        latents = pipe(**kwargs).images
    if timer is not None and timer.report():
        loaded.compile_pending = False
    return decode(loaded, pipe, latents), hook


class CompileTimer:
    """Times the first steps of a run with a just-compiled UNet, to report once
    how long compiling took (the first step's time less a later step's)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.start = time.perf_counter()
        self.marks: list[float] = []

    def wrap(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            self.marks.append(time.perf_counter())
            return hook(*args)
        return timed

    def report(self) -> bool:
        """Log the compile time; False when the run had too few steps to tell."""
        if len(self.marks) < 2:
            return False
        first, later = self.marks[0] - self.start, self.marks[1] - self.marks[0]
        log.warning("torch.compile: %s compiled in about %.1f s (first step %.1f s, later steps %.2f s); "
                    "later jobs at this size start at once", self.model, max(0.0, first - later), first, later)
        return True
