"""Cheap previews: the predicted clean latent projected to RGB with a fixed matrix.

Decoding with the VAE each step would cost as much as a step; the 4x3
projection costs nothing and shows composition and colour, which is what an
artist watches for before deciding to cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from paintwire.protocol import Rect

from ..base import PREVIEW_MAX_SIDE, JobContext

if TYPE_CHECKING:
    from .families.base import Family


def latents_to_rgb(latents: torch.Tensor, family: Family) -> np.ndarray:
    """(channels, h, w) latents -> (h, w, 3) uint8, with the family's latent-to-RGB factors."""
    factors = torch.tensor(family.preview_factors, dtype=torch.float32)
    bias = torch.tensor(family.preview_bias, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents.detach().float().cpu(), factors) + bias  # in about [-1, 1]
    return ((rgb.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).numpy()


class PreviewMaker:
    """Projects the latents to a small picture of the work area ``box`` when the
    job's context says a preview is due (the rate is the server's setting)."""

    def __init__(self, ctx: JobContext, box: Rect, family: Family) -> None:
        self.ctx = ctx
        self.box = box
        self.family = family
        scale = min(1.0, PREVIEW_MAX_SIDE / max(box.width, box.height))
        self.size = (max(1, round(box.width * scale)), max(1, round(box.height * scale)))

    def offer(self, latents: torch.Tensor) -> bool:
        if not self.ctx.preview_due():
            return False
        rgb = cv2.resize(latents_to_rgb(latents[0], self.family), self.size, interpolation=cv2.INTER_LINEAR)
        self.ctx.preview(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), self.box)
        return True
