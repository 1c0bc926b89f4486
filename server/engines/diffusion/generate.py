"""One denoising run: a pipeline call with seeds, scheduler, step hook and output conversion."""

from __future__ import annotations

import logging
import secrets
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from PIL import Image

from paintwire.protocol import ErrorCode, Phase, ProtocolError
from paintwire.protocol.params import MAX_SEED

from ..base import JobContext
from .cache import LoadedModel
from .device import memory_info
from .families.base import EDIT, TXT2IMG
from .memory import vae_tiling_needed
from .previews import PreviewMaker, fitted_projection
from .sampling import SchedulerTap, StepHook, inference_steps
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
        # Modes only for models without CLIP text encoders (edit) offer no clip skip.
        return cls(prompt, negative_prompt, p["steps"], p["cfg_scale"], p["scheduler"], pick_seed(p["seed"]), p["batch_size"],
                   p.get("clip_skip", 1), p.get("schedule", "automatic"))

    @property
    def seeds(self) -> list[int]:
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.batch)]


PROMPT_STAGE = "encoding the prompt"


def pick_seed(seed: int) -> int:
    return secrets.randbelow(MAX_SEED + 1) if seed == -1 else seed


def generators(seeds: list[int]) -> list[torch.Generator]:
    # CPU generators: the same seed gives the same noise on every device.
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def to_pil(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(rgb))


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
    references: list[Image.Image] | None = None,
) -> tuple[list[np.ndarray], StepHook]:
    """Run ``task`` (txt2img, img2img, inpaint, edit) once; returns (H, W, 3) uint8 images, one per seed.
    ``guidance``: the job's control layers, placed for this run. ``references``: an instruction
    edit's reference pictures (given to the pipeline as the family says, with ``image``, the
    picture it edits); None for a run that is no edit."""
    family = loaded.entry.family
    if task in ("txt2img", "img2img") and (loaded.entry.inpaint or family.pipeline_name(loaded.entry.kind, task) is None):
        # An inpainting model (or a family without an img2img pipeline) does them as an inpaint of everything.
        if image is None:
            image, strength = to_pil(np.full((height, width, 3), 127, np.uint8)), 1.0
        mask, task = to_pil(np.full((height, width), 255, np.uint8)), "inpaint"
    pipe = guidance.pipeline(loaded.pipeline, loaded.base, task) if guidance else loaded.pipeline(task)
    if previews is not None:
        previews.generated(width, height, lambda: _preview_projection(loaded))
    pipe.scheduler = family.scheduler(sampling, loaded.scheduler_config)
    tap = SchedulerTap(pipe.scheduler)
    hook = StepHook(ctx, tap, stage, previews, blend(tap) if blend else None, offset, total)
    # No VAE encode follows the prompt's in txt2img, nor when the run starts from latents.
    image_encode = task != TXT2IMG and not isinstance(image, torch.Tensor)

    def encode_prompt() -> dict[str, Any]:
        ctx.phase(Phase.ENCODING, 0, 1, PROMPT_STAGE)
        conditioning = family.encode_prompt(pipe, sampling)
        if not image_encode:
            ctx.phase(Phase.ENCODING, 1, 1, PROMPT_STAGE)
        return conditioning

    kwargs: dict[str, Any] = {
        **loaded.prompts.get(family.prompt_key(sampling, pipe), encode_prompt),
        **family.guidance_kwargs(sampling, pipe), "num_images_per_prompt": sampling.batch,
        "generator": generators(sampling.seeds),
        "callback_on_step_end": hook, "callback_on_step_end_tensor_inputs": ["latents"],
    }
    kwargs.update(_task_kwargs(task, sampling, width, height, image, mask, strength, exact_steps))
    kwargs.update(family.size_kwargs(pipe, task, width, height))
    if references is not None:
        assert isinstance(image, Image.Image)
        kwargs.update(family.reference_kwargs(task, image, references))
    if masked_image_latents is not None and task == "inpaint":
        if guidance is not None and guidance.nets:
            raise ProtocolError(ErrorCode.INVALID_PARAM, "Masked content latent noise or latent nothing cannot be combined with "
                                "ControlNet layers; choose original or fill.", "job.params.masked_content")
        kwargs["masked_image_latents"] = masked_image_latents
    if guidance is not None:
        kwargs.update(guidance.kwargs(task))
        kwargs["callback_on_step_end"] = guidance.step_callback(pipe, hook)
    _choose_vae_tiling(pipe, loaded.native_size, width, height)
    kwargs["output_type"] = "latent"  # decoded here, with the NaN guard
    timer = CompileTimer(loaded.entry.name) if loaded.compile_pending else None
    if timer is not None:
        kwargs["callback_on_step_end"] = timer.wrap(kwargs["callback_on_step_end"])
    run_steps = kwargs["num_inference_steps"] if task in (TXT2IMG, EDIT) else max(1, int(kwargs["num_inference_steps"] * strength))
    with guidance.applied(pipe, run_steps) if guidance else nullcontext(), unread_masked_image_skipped(pipe), torch.inference_mode():
        latents = pipe(**kwargs).images
    if timer is not None and timer.report():
        loaded.compile_pending = False
    return family.decode(loaded, pipe, latents, width, height), hook


def _preview_projection(loaded: LoadedModel) -> Any:
    """The projection fitted on the model's VAE, made at its first preview and kept with the
    model: each job (and each refine tile, each live frame) makes a new PreviewMaker."""
    if loaded.preview_projection is None:
        loaded.preview_projection = fitted_projection(loaded.entry.family, loaded.base)
    return loaded.preview_projection


def _task_kwargs(task: str, sampling: Sampling, width: int, height: int, image: Any, mask: Any, strength: float,
                 exact_steps: bool) -> dict[str, Any]:
    """The pipeline arguments of ``task``: the size and steps, and the image and mask it reads
    (an edit's picture goes with its references, Family.reference_kwargs)."""
    if task in (TXT2IMG, EDIT):  # every step runs, from noise
        return {"height": height, "width": width, "num_inference_steps": sampling.steps}
    out = {"image": image, "strength": strength, "num_inference_steps": inference_steps(sampling.steps, strength, exact_steps)}
    if task == "inpaint":
        out.update(mask_image=mask, height=height, width=width)
    return out


def _choose_vae_tiling(pipe: Any, native_size: int, width: int, height: int) -> None:
    """Tiles for a VAE pass much larger than the model's own size, or one the memory free would not hold."""
    vae = pipe.vae
    _, free = memory_info(pipe._execution_device)
    if vae_tiling_needed(width, height, native_size, vae.dtype.itemsize, free):
        vae.enable_tiling()
    else:
        vae.disable_tiling()


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
