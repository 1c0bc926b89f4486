"""Resizing images to a generation size, and the four img2img resize modes."""

from __future__ import annotations

import cv2
import numpy as np


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if (rgb.shape[1], rgb.shape[0]) == (width, height):
        return rgb
    shrink = width * height < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    if (mask.shape[1], mask.shape[0]) == (width, height):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)


def multiple_of(value: float, step: int = 8) -> int:
    """Generation sizes are multiples of ``step``: 8 where latents are 1/8 of the pixels,
    16 where the latents are also packed 2 x 2 (Flux)."""
    return max(step, int(round(value / step)) * step)


def generation_size(width: int, height: int, native: int | None = None, step: int = 8) -> tuple[int, int]:
    """The size to generate an area of ``width`` x ``height`` at: the area itself
    (rounded to multiples of ``step``, the family's size multiple), or, given ``native``,
    scaled to the model's native pixel count with the same aspect ("only masked")."""
    if native:
        s = native / (width * height) ** 0.5
        return multiple_of(width * s, step), multiple_of(height * s, step)
    return multiple_of(width, step), multiple_of(height, step)


def fit(rgb: np.ndarray, width: int, height: int, mode: str) -> np.ndarray:
    """``rgb`` brought to ``width`` x ``height`` by a resize mode (latent is done in
    latent space by the caller, and here is a plain resize)."""
    h, w = rgb.shape[:2]
    if mode == "crop_and_resize":
        s = max(width / w, height / h)
        scaled = resize_rgb(rgb, max(width, round(w * s)), max(height, round(h * s)))
        y, x = (scaled.shape[0] - height) // 2, (scaled.shape[1] - width) // 2
        return np.ascontiguousarray(scaled[y:y + height, x:x + width])
    if mode == "resize_and_fill":
        s = min(width / w, height / h)
        sw, sh = max(1, min(width, round(w * s))), max(1, min(height, round(h * s)))
        scaled = resize_rgb(rgb, sw, sh)
        top, left = (height - sh) // 2, (width - sw) // 2
        # The bands are filled by stretching the edge pixels outwards, as the WebUI does.
        return cv2.copyMakeBorder(scaled, top, height - sh - top, left, width - sw - left, cv2.BORDER_REPLICATE)
    return resize_rgb(rgb, width, height)
