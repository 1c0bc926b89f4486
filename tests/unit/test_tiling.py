"""Overlapping tiles and their blend: coverage, weights, seams, and the memory one row of tiles costs."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from paintwire.server.engines.diffusion.tiling import TileBlender, TileGrid, axis_weights, starts


@pytest.mark.parametrize("size,tile,overlap", [(100, 100, 16), (50, 100, 16), (300, 100, 16), (301, 100, 32), (1000, 256, 32), (130, 64, 0)])
def test_tiles_cover_the_axis_and_overlap_at_least_as_asked(size, tile, overlap):
    origins = starts(size, tile, overlap)
    length = min(tile, size)
    assert origins[0] == 0 and origins[-1] + length == size
    for a, b in zip(origins, origins[1:]):
        assert a + length - b >= overlap  # neighbours share at least the overlap


@pytest.mark.parametrize("size,tile,overlap,scale", [(300, 100, 16, 1), (301, 100, 32, 4), (130, 64, 0, 2), (120, 100, 90, 1)])
def test_axis_weights_sum_to_one_and_ramp_across_overlaps(size, tile, overlap, scale):
    origins = starts(size, tile, overlap)
    weights = axis_weights(origins, tile, size, scale)
    total = np.zeros(size * scale)
    for o, w in zip(origins, weights):
        assert len(w) == tile * scale and (w > 0).all()
        total[o * scale:o * scale + len(w)] += w
    assert np.allclose(total, 1.0, atol=1e-6)
    if len(origins) > 1 and overlap:
        first = weights[0]
        assert first[0] == pytest.approx(1.0) and first[-1] < 0.1  # full weight at the image edge, fading into the next tile


def _tiles_of(image: np.ndarray, grid: TileGrid, scale: int, offsets: list[float] | None = None):
    for i, box in enumerate(grid.boxes()):
        crop = image[box.y * scale:(box.y + box.height) * scale, box.x * scale:(box.x + box.width) * scale].astype(np.float32)
        yield box, crop + (offsets[i] if offsets else 0.0)


@pytest.mark.parametrize("scale", [1, 2])
def test_tiles_that_agree_blend_to_the_same_image(scale):
    rng = np.random.default_rng(1)
    grid = TileGrid(150, 110, 48, 12)
    image = rng.integers(0, 256, (110 * scale, 150 * scale, 3), dtype=np.uint8)
    blender = TileBlender(grid, scale)
    for box, tile in _tiles_of(image, grid, scale):
        blender.add(box, tile)
    assert np.array_equal(blender.result(), image)


def test_tiles_that_disagree_meet_without_a_seam():
    """Each tile brightened by its own amount (as separate diffusion passes differ): blended,
    no step between neighbouring pixels comes near the difference between two tiles."""
    grid = TileGrid(200, 160, 64, 24)
    flat = np.full((160, 200, 3), 100, np.uint8)
    offsets = [40.0 * (i % 2) + 20.0 * ((i // len(grid.xs)) % 2) for i in range(len(grid))]
    blender = TileBlender(grid, 1)
    for box, tile in _tiles_of(flat, grid, 1, offsets):
        blender.add(box, tile)
    out = blender.result().astype(np.int32)
    steps = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    assert steps <= 3  # 40 levels spread over 24 px of overlap
    hard = flat.astype(np.int32).copy()  # the same tiles pasted without blending: a 40-level seam
    for (box, tile) in _tiles_of(flat, grid, 1, offsets):
        hard[box.y:box.y + box.height, box.x:box.x + box.width] = tile
    assert np.abs(np.diff(hard, axis=1)).max() >= 40


def _blend_peak(height: int) -> int:
    grid = TileGrid(256, height, 64, 16)
    tile = np.zeros((128, 512, 3), np.uint8)  # the tile at scale 2
    tracemalloc.start()
    blender = TileBlender(grid, 2)
    out_bytes = blender.out.nbytes
    tracemalloc.reset_peak()
    for box in grid.boxes():
        blender.add(box, tile[:box.height * 2, :box.width * 2])
    blender.result()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - out_bytes


def test_blending_holds_one_row_of_tiles_whatever_the_height():
    short, tall = _blend_peak(256), _blend_peak(2048)  # 5 rows of tiles, then 43
    row_bytes = 128 * 512 * 3 * 4  # one row of tiles (64 px at scale 2, 256 px wide) in float32
    assert tall < 4 * row_bytes
    assert tall < short * 1.5
