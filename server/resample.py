"""Lanczos resampling in bounded memory: output tiles, each from its own source window.

One whole-image cv2.resize of an 8192x8192 RGBA picture in float32 holds about
5 GB at its peak (premultiplied input, output, alpha and colour planes) and
cannot be interrupted. Tiled, the float work is one tile at a time; the only
whole-image arrays are the uint8 input and output, and a cancel is seen
between tiles.

Each tile is ``cv2.warpAffine`` with the same coordinate mapping as
``cv2.resize`` (pixel centres: src = (dst + 0.5) * ratio - 0.5) over a source
window wide enough for Lanczos-4's eight taps, so tiles meet without seams and
agree with a whole-image resize to within float rounding.
"""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

TILE = 1024  # output pixels a side: about 0.2 s of work on one core, 16 MiB of float32
TAPS_BEFORE, TAPS_AFTER = 3, 4  # Lanczos-4 reads source pixels floor(s) - 3 .. floor(s) + 4
MARGIN = 1  # one more pixel each side against rounding of the window's edge


def lanczos_resize(rgba: np.ndarray, width: int, height: int, on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Resize RGBA with Lanczos on premultiplied colour, so transparent pixels do
    not bleed dark fringes into the edges of opaque ones. ``on_tile(i, n)`` is
    called after each of the n tiles (progress; it may raise to stop).

    Peak memory: input + output (uint8, 4 bytes a pixel each) + about 48 bytes
    per pixel of one TILE x TILE tile and its source window (at most 48 MiB)."""
    h, w = rgba.shape[:2]
    out = np.empty((height, width, 4), np.uint8)
    ratio_x, ratio_y = w / width, h / height
    tiles = [(x0, y0) for y0 in range(0, height, TILE) for x0 in range(0, width, TILE)]
    for i, (x0, y0) in enumerate(tiles):
        x1, y1 = min(width, x0 + TILE), min(height, y0 + TILE)
        sx0, sx1 = _window(x0, x1, ratio_x, w)
        sy0, sy1 = _window(y0, y1, ratio_y, h)
        # Where output pixel (x0, y0) samples, in the window's coordinates.
        matrix = np.float64([
            [ratio_x, 0, (x0 + 0.5) * ratio_x - 0.5 - sx0],
            [0, ratio_y, (y0 + 0.5) * ratio_y - 0.5 - sy0],
        ])
        premul = _premultiply(rgba[sy0:sy1, sx0:sx1])
        tile = cv2.warpAffine(premul, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        out[y0:y1, x0:x1] = _unpremultiply(tile)
        if on_tile is not None:
            on_tile(i + 1, len(tiles))
    return out


def _window(start: int, stop: int, ratio: float, size: int) -> tuple[int, int]:
    """The source range that output pixels start..stop-1 read."""
    first = math.floor((start + 0.5) * ratio - 0.5) - TAPS_BEFORE - MARGIN
    last = math.floor((stop - 0.5) * ratio - 0.5) + TAPS_AFTER + MARGIN
    return max(0, first), min(size, last + 1)


def _premultiply(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    return np.concatenate([rgba[..., :3].astype(np.float32) * alpha, alpha * 255], axis=2)


def _unpremultiply(premul: np.ndarray) -> np.ndarray:
    """Back to straight alpha, rounded to uint8; works in place on ``premul``."""
    a = premul[..., 3:4]
    np.clip(a, 0, 255, out=a)
    premul[..., :3] *= 255 / np.maximum(a, 255e-6)
    premul += 0.5
    np.clip(premul, 0, 255, out=premul)
    return premul.astype(np.uint8)
