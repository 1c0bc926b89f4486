"""One denoising run: a pipeline call with seeds, scheduler, step hook and output conversion."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from paintwire.protocol.params import MAX_SEED

from ..base import JobContext
from .cache import LoadedModel
from .previews import PreviewMaker
from .prompt_encoding import encode_prompts
from .sampling import SchedulerTap, StepHook, inference_steps, make_scheduler

# VAE tiling above this many times the model's native pixel count: the VAE's
# memory grows with the image, the UNet's with the latents (8x smaller).
TILING_FACTOR = 4


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

    @classmethod
    def from_params(cls, p: dict[str, Any], prompt: str, negative_prompt: str) -> "Sampling":
        return cls(prompt, negative_prompt, p["steps"], p["cfg_scale"], p["scheduler"], pick_seed(p["seed"]), p["batch_size"], p["clip_skip"])

    @property
    def seeds(self) -> list[int]:
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.batch)]


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
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:  # the SDXL VAE overflows in fp16, as the pipelines know
        vae.to(torch.float32)
    try:
        with torch.inference_mode():
            latents = vae.encode(x.to(pipe.device, vae.dtype)).latent_dist.mode()
    finally:
        if upcast:
            vae.to(torch.float16)
    return latents * vae.config.scaling_factor


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
) -> tuple[list[np.ndarray], StepHook]:
    """Run ``task`` (txt2img, img2img, inpaint) once; returns (H, W, 3) uint8 images, one per seed."""
    pipe = loaded.pipeline(task)
    if loaded.entry.inpaint and task != "inpaint":
        # An inpainting model does txt2img and img2img as an inpaint of everything.
        if image is None:
            image, strength = to_pil(np.full((height, width, 3), 127, np.uint8)), 1.0
        mask, task = to_pil(np.full((height, width), 255, np.uint8)), "inpaint"
    pipe.scheduler = make_scheduler(sampling.scheduler, loaded.base.scheduler.config)
    tap = SchedulerTap(pipe.scheduler)
    hook = StepHook(ctx, tap, stage, previews, blend(tap) if blend else None, offset, total)
    kwargs: dict[str, Any] = {
        # WebUI prompt syntax, any length, clip skip: encoded here, not by the pipeline.
        **encode_prompts(pipe, sampling.prompt, sampling.negative_prompt, sampling.clip_skip),
        "guidance_scale": sampling.cfg, "num_images_per_prompt": sampling.batch,
        "generator": generators(sampling.seeds), "output_type": "np",
        "callback_on_step_end": hook, "callback_on_step_end_tensor_inputs": ["latents"],
    }
    if task == "txt2img":
        kwargs.update(height=height, width=width, num_inference_steps=sampling.steps)
    else:
        kwargs.update(image=image, strength=strength, num_inference_steps=inference_steps(sampling.steps, strength, exact_steps))
    if task == "inpaint":
        kwargs.update(mask_image=mask, height=height, width=width)
        if masked_image_latents is not None:
            kwargs["masked_image_latents"] = masked_image_latents
    if width * height > TILING_FACTOR * loaded.native_size**2:
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()
    with torch.inference_mode():
        images = pipe(**kwargs).images
    return [np.clip(np.asarray(im) * 255 + 0.5, 0, 255).astype(np.uint8) for im in images], hook
