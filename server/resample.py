"""Lanczos resampling in bounded memory: output tiles, each from its own source window.

One whole-image cv2.resize of an 8192x8192 RGBA picture in float32 holds about
5 GB at its peak (premultiplied input, output, alpha and colour planes) and
cannot be interrupted. Tiled, the float work is one tile at a time; the only
whole-image arrays are the uint8 input and output, and a cancel is seen
between tiles.

Where the size ratio is a simple fraction p/q (x2, x1.5, x4: the usual
upscales), each tile is ``cv2.resize`` of a source window that starts on the
ratio's lattice, and the pixels are those of one whole-image resize. For an
odd ratio each tile is ``cv2.warpAffine`` with the same coordinate mapping
(pixel centres: src = (dst + 0.5) * ratio - 0.5), about three times slower and
equal to within the 1/32-pixel placement of its samples. Either way a source
window reaches past the tile by Lanczos-4's taps, so tiles meet without seams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    xs, ys = _Axis.of(w, width), _Axis.of(h, height)
    tiles = [(x0, y0) for y0 in range(0, height, ys.tile) for x0 in range(0, width, xs.tile)]
    for i, (x0, y0) in enumerate(tiles):
        x1, y1 = min(width, x0 + xs.tile), min(height, y0 + ys.tile)
        if xs.exact and ys.exact:
            out[y0:y1, x0:x1] = _tile_by_resize(rgba, xs, ys, x0, x1, y0, y1)
        else:
            out[y0:y1, x0:x1] = _tile_by_warp(rgba, xs, ys, x0, x1, y0, y1)
        if on_tile is not None:
            on_tile(i + 1, len(tiles))
    return out


@dataclass(frozen=True)
class _Axis:
    """One axis of the resize: ``out / src = p / q`` in lowest terms. Source pixel
    k * q lands exactly on output pixel k * p, so a window that starts at a
    multiple of q resizes (with cv2.resize, separable and fast) to exactly the
    pixels of the whole-image resize. When q is large (an odd ratio) no window
    small enough exists, and tiles are made with warpAffine instead."""

    src: int
    out: int
    p: int
    q: int
    tile: int  # output pixels per tile along this axis

    @classmethod
    def of(cls, src: int, out: int) -> "_Axis":
        g = math.gcd(src, out)
        p, q = out // g, src // g
        tile = max(p, TILE // p * p) if q <= MAX_LATTICE else TILE
        return cls(src, out, p, q, tile)

    @property
    def exact(self) -> bool:
        return self.q <= MAX_LATTICE

    @property
    def ratio(self) -> float:
        return self.src / self.out

    def lattice_window(self, start: int, stop: int) -> tuple[int, int]:
        """A source window on the lattice (multiples of q) covering the taps of
        output pixels start..stop-1; start is a multiple of p."""
        margin = -(-(TAPS_AFTER + 2 * MARGIN) // self.q) * self.q  # whole lattice steps
        first = start // self.p * self.q - margin
        last = -(-stop // self.p) * self.q + margin
        return max(0, first), min(self.src, last)


MAX_LATTICE = 512  # largest q for the exact path: a window of at most a few q a side


def _tile_by_resize(rgba: np.ndarray, xs: _Axis, ys: _Axis, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    sx0, sx1 = xs.lattice_window(x0, x1)
    sy0, sy1 = ys.lattice_window(y0, y1)
    size = ((sx1 - sx0) * xs.p // xs.q, (sy1 - sy0) * ys.p // ys.q)
    premul = cv2.resize(_premultiply(rgba[sy0:sy1, sx0:sx1]), size, interpolation=cv2.INTER_LANCZOS4)
    ox, oy = sx0 * xs.p // xs.q, sy0 * ys.p // ys.q  # where the window's output starts
    return _unpremultiply(np.ascontiguousarray(premul[y0 - oy : y1 - oy, x0 - ox : x1 - ox]))


def _tile_by_warp(rgba: np.ndarray, xs: _Axis, ys: _Axis, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    sx0, sx1 = _window(x0, x1, xs.ratio, xs.src)
    sy0, sy1 = _window(y0, y1, ys.ratio, ys.src)
    # Where output pixel (x0, y0) samples, in the window's coordinates.
    matrix = np.float64([
        [xs.ratio, 0, (x0 + 0.5) * xs.ratio - 0.5 - sx0],
        [0, ys.ratio, (y0 + 0.5) * ys.ratio - 0.5 - sy0],
    ])
    premul = _premultiply(rgba[sy0:sy1, sx0:sx1])
    flags = cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP
    return _unpremultiply(cv2.warpAffine(premul, matrix, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE))


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
