"""Soft inpainting: a per-step latent blend that honours a feathered mask, and a
difference-driven final composite (after the WebUI's soft inpainting).

Each step, the latents are blended with the original's (noised to the same
level) by the soft mask raised to a power that falls with the noise level:
early on, partly masked areas hold on to the original; late, they follow the
new content. The blend interpolates vector magnitudes separately, biased
towards the larger, so the transition keeps detail instead of going soft.
At the end, where the result hardly differs from the original, the original
is shown; where it differs, the new content (the alpha of the result layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np
import torch

from .sampling import SchedulerTap


@dataclass(frozen=True)
class SoftSettings:
    schedule_bias: float = 1.0  # mask_blend_power
    preservation_strength: float = 0.5  # mask_blend_scale
    transition_contrast: float = 4.0  # inpaint_detail_preservation
    mask_influence: float = 0.0
    difference_threshold: float = 0.5
    difference_contrast: float = 2.0

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "SoftSettings":
        return cls(p["soft_schedule_bias"], p["soft_preservation_strength"], p["soft_transition_contrast"],
                   p["soft_mask_influence"], p["soft_difference_threshold"], p["soft_difference_contrast"])


def latent_blend(settings: SoftSettings, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``a`` to ``b`` by ``t`` (1, 1, h, w), with magnitudes interpolated as p-norms
    (p = transition contrast), which favours the larger magnitude."""
    p = settings.transition_contrast
    mixed = a * (1 - t) + b * t
    current = torch.linalg.vector_norm(mixed, dim=1, keepdim=True).double() + 1e-5
    mag_a = torch.linalg.vector_norm(a, dim=1, keepdim=True).double().pow(p) * (1 - t)
    mag_b = torch.linalg.vector_norm(b, dim=1, keepdim=True).double().pow(p) * t
    desired = (mag_a + mag_b).pow(1 / p)
    return (mixed * (desired / current)).to(mixed.dtype)


def modified_mask(settings: SoftSettings, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """The blend weight of new content at noise level ``sigma``."""
    return torch.pow(mask, (sigma ** settings.schedule_bias) * settings.preservation_strength)


class SoftBlend:
    """The per-step blend, as a StepHook blend. ``mask`` is the soft mask at
    latent resolution, (1, 1, h, w) in [0, 1], 1 = regenerate."""

    def __init__(self, settings: SoftSettings, mask: torch.Tensor, tap: SchedulerTap, fallback: Callable[[], torch.Tensor]) -> None:
        self.settings = settings
        self.mask = mask
        self.tap = tap
        # The original's latents where the pipeline never noised the image (strength 1, or one
        # step): made only then, as the pipeline has encoded the image itself otherwise.
        self.fallback = fallback
        self.fallback_latents: torch.Tensor | None = None

    def original(self) -> torch.Tensor:
        """The clean latents of the original: the pipeline's own where it noised them."""
        if self.tap.image_latents is not None:
            return self.tap.image_latents
        if self.fallback_latents is None:
            self.fallback_latents = self.fallback()
        return self.fallback_latents

    def __call__(self, pipe: Any, i: int, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        scheduler = pipe.scheduler
        original = self.original().to(latents)
        noise = self.tap.noise if self.tap.noise is not None else torch.zeros_like(latents)
        timesteps = scheduler.timesteps
        index = int((timesteps == t).nonzero()[0][0]) if (timesteps == t).any() else len(timesteps) - 1
        if index + 1 < len(timesteps):
            t_next = timesteps[index + 1]
            noised = self.tap.add_noise(original, noise, t_next.reshape(1))
            ac = float(scheduler.alphas_cumprod[int(t_next)])
        else:
            noised, ac = original, 1.0
        sigma = ((1 - ac) / ac) ** 0.5
        weight = modified_mask(self.settings, self.mask.to(latents), sigma)
        return latent_blend(self.settings, noised.expand_as(latents), latents, weight)


def difference_alpha(settings: SoftSettings, final: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The weight (h, w) float in [0, 1] of the new content in the final composite,
    at latent resolution: high where the result differs from the original."""
    m = mask[0, 0].float().clamp(0, 1).cpu().numpy()
    scalar = 1 - m ** (settings.preservation_strength / 2)
    scalar = 0.5 * (1 - settings.mask_influence) + scalar * settings.mask_influence
    scalar = scalar / (1.00001 - scalar)
    distance = torch.linalg.vector_norm(final.float() - original.float().to(final.device), dim=1)[0].cpu().numpy()
    # The WebUI smooths the distance map with two percentile filters: a local
    # maximum then a local median; a dilation and a small blur do the same job.
    distance = cv2.dilate(distance, np.ones((3, 3), np.uint8))
    distance = cv2.GaussianBlur(distance, (5, 5), 1.5)
    half = np.maximum(settings.difference_threshold * scalar, 1e-6)
    kept = 1 / (1 + (distance / half) ** settings.difference_contrast)
    kept = kept * kept * kept * (kept * (kept * 6 - 15) + 10)  # smootherstep
    return np.clip(1 - kept, 0, 1).astype(np.float32)
