"""Overlapping tiles and their seam-free blend, for work too big to do on a whole image at once.

Both upscaler models and the SD upscale refine pass cut the image into a grid
of overlapping tiles, process each, and blend the results. The weights are
linear ramps across each overlap, normalised per axis so that they sum to
exactly 1 at every output pixel: where neighbouring tiles agree the blend is
their common value, where they differ (a model with a wide receptive field, a
diffusion pass with its own noise) the change is spread over the overlap
instead of showing as a seam.

Rows of tiles arrive in order, and only one row is held in floating point
(``TileBlender``): memory is bounded by the tile height times the output width,
whatever the image's height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paintwire.protocol import Rect


def starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: every ``tile - overlap`` pixels, the last one flush with the end."""
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    return sorted(set(list(range(0, size - tile, stride)) + [size - tile]))


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles of ``tile`` pixels covering a ``width`` x ``height`` image, row by row."""

    width: int
    height: int
    tile: int
    overlap: int

    @property
    def xs(self) -> list[int]:
        return starts(self.width, self.tile, self.overlap)

    @property
    def ys(self) -> list[int]:
        return starts(self.height, self.tile, self.overlap)

    @property
    def tile_width(self) -> int:
        return min(self.tile, self.width)

    @property
    def tile_height(self) -> int:
        return min(self.tile, self.height)

    def boxes(self) -> list[Rect]:
        return [Rect(x, y, self.tile_width, self.tile_height) for y in self.ys for x in self.xs]

    def __len__(self) -> int:
        return len(self.xs) * len(self.ys)


def axis_weights(origins: list[int], length: int, size: int, scale: int = 1) -> list[np.ndarray]:
    """Per-tile blend weights along one axis, in output pixels (``scale`` times the input's).

    Each tile ramps up linearly across its overlap with the previous tile and
    down across its overlap with the next one (flat elsewhere, and at the
    image's own edges); the weights are then divided by their sum, so that they
    add up to 1 at every pixel even where three tiles meet."""
    out_size = size * scale
    ramps = []
    for i, start in enumerate(origins):
        n = length * scale
        w = np.ones(n, np.float64)
        pos = np.arange(n) + 0.5
        if i > 0:
            lead = (origins[i - 1] + length - start) * scale  # overlap with the previous tile
            if lead > 0:
                w = np.minimum(w, pos / lead)
        if i + 1 < len(origins):
            trail = (start + length - origins[i + 1]) * scale  # overlap with the next tile
            if trail > 0:
                w = np.minimum(w, (n - pos) / trail)
        ramps.append(w)
    total = np.zeros(out_size, np.float64)
    for start, w in zip(origins, ramps):
        total[start * scale:start * scale + len(w)] += w
    return [(w / total[start * scale:start * scale + len(w)]).astype(np.float32) for start, w in zip(origins, ramps)]


class TileBlender:
    """Blends the processed tiles of a grid into one (H*scale, W*scale, C) uint8 image.

    Tiles must be added row by row, in the grid's order. Output rows that no
    later tile can touch are rounded into the result as soon as a new row of
    tiles starts, so at most one row of tiles is held in float32."""

    def __init__(self, grid: TileGrid, scale: int, channels: int = 3) -> None:
        self.grid, self.scale = grid, scale
        self.out = np.empty((grid.height * scale, grid.width * scale, channels), np.uint8)
        self._wx = dict(zip(grid.xs, axis_weights(grid.xs, grid.tile_width, grid.width, scale)))
        self._wy = dict(zip(grid.ys, axis_weights(grid.ys, grid.tile_height, grid.height, scale)))
        self._row_y: int | None = None
        self._top = 0  # output row where the float buffer starts
        self._acc = np.zeros((0, grid.width * scale, channels), np.float32)

    def add(self, box: Rect, pixels: np.ndarray) -> None:
        """``pixels``: the processed tile at ``box`` (input coordinates), (h*scale, w*scale, C), any dtype."""
        s = self.scale
        if box.y != self._row_y:
            self._start_row(box.y)
        weight = self._wy[box.y][:, None, None] * self._wx[box.x][None, :, None]
        rows = slice(box.y * s - self._top, (box.y + box.height) * s - self._top)
        self._acc[rows, box.x * s:(box.x + box.width) * s] += pixels.astype(np.float32) * weight

    def _start_row(self, y: int) -> None:
        s = self.scale
        top, bottom = y * s, (y + self.grid.tile_height) * s
        self._flush(top)
        carry = self._acc
        self._acc = np.zeros((bottom - top, self.out.shape[1], self.out.shape[2]), np.float32)
        self._acc[:len(carry)] = carry  # the overlap with the previous row of tiles
        self._top, self._row_y = top, y

    def _flush(self, upto: int) -> None:
        """Round the finished rows above output row ``upto`` into the result."""
        done = max(0, min(upto, self._top + len(self._acc)) - self._top)
        if done:
            self.out[self._top:self._top + done] = np.clip(self._acc[:done] + 0.5, 0, 255).astype(np.uint8)
            self._acc = self._acc[done:]
            self._top += done

    def result(self) -> np.ndarray:
        self._flush(self.out.shape[0])
        return self.out
