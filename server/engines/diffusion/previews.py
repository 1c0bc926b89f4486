"""Cheap previews: the predicted clean latent projected to RGB with a fixed matrix.

Decoding with the VAE each step would cost as much as a step; the 4x3
projection costs nothing and shows composition and colour, which is what an
artist watches for before deciding to cancel.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from paintwire.protocol import Rect

from ..base import PREVIEW_MAX_SIDE, JobContext
from .models import SDXL

# Latent channel -> (R, G, B) factors, and a bias, fitted per VAE family.
SD_FACTORS = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
SD_BIAS = [0.0, 0.0, 0.0]
SDXL_FACTORS = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
SDXL_BIAS = [0.1084, -0.0175, -0.0011]


def latents_to_rgb(latents: torch.Tensor, family: str) -> np.ndarray:
    """(4, h, w) latents -> (h, w, 3) uint8."""
    factors = torch.tensor(SDXL_FACTORS if family == SDXL else SD_FACTORS, dtype=torch.float32)
    bias = torch.tensor(SDXL_BIAS if family == SDXL else SD_BIAS, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents.detach().float().cpu(), factors) + bias  # in about [-1, 1]
    return ((rgb.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).numpy()


class PreviewMaker:
    """Projects the latents to a small picture of the work area ``box`` when the
    job's context says a preview is due (the rate is the server's setting)."""

    def __init__(self, ctx: JobContext, box: Rect, family: str) -> None:
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
