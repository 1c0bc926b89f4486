"""Cheap previews: the predicted clean latent projected to RGB with a fixed matrix
(published per family, or fitted once on a model's own VAE).

Decoding with the VAE each step would cost as much as a step; the 4x3
projection costs nothing and shows composition and colour, which is what an
artist watches for before deciding to cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
import torch

from paintwire.protocol import Rect

from ..base import PREVIEW_MAX_SIDE, JobContext
from .vae_codec import encode_raw

if TYPE_CHECKING:
    from .families.base import Family


Projection = tuple[torch.Tensor, torch.Tensor]  # (channels, 3) factors and a (3,) bias


def published_projection(family: Family) -> Projection | None:
    if family.preview_factors is None:
        return None
    return torch.tensor(family.preview_factors, dtype=torch.float32), torch.tensor(family.preview_bias, dtype=torch.float32)


def colour_chart(side: int = 256, block: int = 32, seed: int = 0) -> np.ndarray:
    """Blocks of random colours with a gentle gradient each: every latent pixel sees a
    flat-ish colour, and the colours span the RGB cube."""
    rng = np.random.default_rng(seed)
    n = side // block
    colours = rng.integers(0, 256, (n, n, 3)).astype(np.float32)
    chart = np.repeat(np.repeat(colours, block, 0), block, 1)
    ramp = np.linspace(-24, 24, side, dtype=np.float32)
    chart += ramp[None, :, None] * np.array([1, 0, -1], np.float32)
    return np.clip(chart, 0, 255).astype(np.uint8)


def fitted_projection(family: Family, pipe: Any) -> Projection:
    """Latent-to-RGB factors fitted on the model's own VAE: a colour chart is encoded once
    and the least-squares linear map (with a bias) from its latents, in the space the
    steps see them, back to its colours is the projection. Per-channel scales and shifts
    of a family's latents are absorbed by the fit, so the raw latents serve."""
    chart = colour_chart()
    latents = family.preview_space(encode_raw(pipe, chart))[0].float().cpu()  # (C, h, w)
    c, h, w = latents.shape
    target = cv2.resize(chart, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
    x = torch.cat([latents.reshape(c, -1).T, torch.ones(h * w, 1)], dim=1)
    solution = torch.linalg.lstsq(x, torch.from_numpy(target.reshape(-1, 3))).solution
    return solution[:c], solution[c]


def latents_to_rgb(latents: torch.Tensor, projection: Family | Projection) -> np.ndarray:
    """(channels, h, w) latents -> (h, w, 3) uint8, with a family's published factors or a fitted projection."""
    factors, bias = published_projection(projection) if not isinstance(projection, tuple) else projection  # type: ignore[misc]
    rgb = torch.einsum("chw,cr->hwr", latents.detach().float().cpu(), factors) + bias  # in about [-1, 1]
    return ((rgb.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).numpy()


class PreviewMaker:
    """Projects the latents to a small picture of the work area ``box`` when the
    job's context says a preview is due (the rate is the server's setting)."""

    def __init__(self, ctx: JobContext, box: Rect, family: Family) -> None:
        self.ctx = ctx
        self.box = box
        self.family = family
        self.projection: Projection | None = published_projection(family)
        self.generation = (0, 0)  # the generated size, which packed latents do not carry
        scale = min(1.0, PREVIEW_MAX_SIDE / max(box.width, box.height))
        self.size = (max(1, round(box.width * scale)), max(1, round(box.height * scale)))

    def generated(self, width: int, height: int, projection: Callable[[], Projection]) -> None:
        """Told by each run: its size, and where a fitted projection comes from (asked once, when needed)."""
        self.generation = (width, height)
        if self.projection is None and self.ctx.previews_wanted:
            self.projection = projection()

    def offer(self, latents: torch.Tensor) -> bool:
        if self.projection is None or not self.ctx.preview_due():
            return False
        spatial = self.family.preview_latents(latents, *self.generation)
        rgb = cv2.resize(latents_to_rgb(spatial, self.projection), self.size, interpolation=cv2.INTER_LINEAR)
        self.ctx.preview(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), self.box)
        return True
