"""Tiled Lanczos: the same pixels as one whole-image resize, in bounded memory, cancellable."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from paintwire.server import resample
from paintwire.server.resample import TILE, lanczos_resize


def whole_image_reference(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """What the untiled implementation computed: one cv2.resize of the premultiplied picture."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    premul = np.concatenate([rgba[..., :3].astype(np.float32) * alpha, alpha * 255], axis=2)
    resized = cv2.resize(premul, (width, height), interpolation=cv2.INTER_LANCZOS4)
    a = np.clip(resized[..., 3:4], 0, 255)
    colour = resized[..., :3] / np.maximum(a / 255, 1e-6)
    return np.clip(np.concatenate([colour, a], axis=2) + 0.5, 0, 255).astype(np.uint8)


def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    img[: height // 3, :, 3] = 255
    img[height // 2 :, : width // 2, 3] = 0  # a transparent corner
    return img


def smooth_picture(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 4), np.uint8)
    img[..., 0] = 127 + 100 * np.sin(x / 7)
    img[..., 1] = 127 + 100 * np.cos(y / 5)
    img[..., 2] = 255 * (x + y) / (width + height)
    img[..., 3] = 255 - 135 * (x / max(1, width - 1))  # opaque to half transparent
    return img


SIZES = [((300, 200), (1337, 901)), ((256, 256), (512, 512)), ((500, 400), (120, 90)), ((1, 1), (3, 2))]


@pytest.mark.parametrize("size, out", SIZES)
def test_tiles_meet_without_seams(monkeypatch, size, out):
    img = smooth_picture(*size)
    monkeypatch.setattr(resample, "TILE", 1 << 20)
    one_tile = lanczos_resize(img, *out)
    monkeypatch.setattr(resample, "TILE", 128)  # many tiles, seams everywhere
    tiled = lanczos_resize(img, *out)
    diff = np.abs(tiled.astype(int) - one_tile.astype(int))
    # Each tile places its samples to 1/32 pixel from its own origin: rounding-level
    # differences, and nothing along the tile edges.
    assert diff.max() <= 2, diff.max()


@pytest.mark.parametrize("size, out", SIZES)
def test_tiles_agree_with_one_whole_image_resize(monkeypatch, size, out):
    monkeypatch.setattr(resample, "TILE", 128)
    img = smooth_picture(*size)
    diff = np.abs(lanczos_resize(img, *out).astype(int) - whole_image_reference(img, *out).astype(int))
    # warpAffine places samples to 1/32 pixel where resize is exact: rounding-level differences.
    assert diff.max() <= 3 and diff.mean() < 0.5, (diff.max(), diff.mean())


def test_progress_per_tile_and_cancel_between_tiles():
    img = picture(TILE, TILE)
    seen: list[tuple[int, int]] = []
    lanczos_resize(img, 2 * TILE + 1, TILE, on_tile=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    class Stop(Exception):
        pass

    def stop_at_two(i: int, n: int) -> None:
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        lanczos_resize(img, 2 * TILE, 2 * TILE, on_tile=stop_at_two)


def test_peak_memory_is_input_plus_output_plus_one_tile():
    img = picture(2048, 2048)
    out_w = out_h = 4096
    tracemalloc.start()
    try:
        lanczos_resize(img, out_w, out_h)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    output = out_w * out_h * 4
    # The documented bound: the uint8 output plus about 48 bytes a pixel of one tile
    # and its window (the input already exists). The whole-image resize peaked at
    # over 60 bytes per output pixel: about 1 GiB here.
    bound = output + 48 * TILE * TILE + (8 << 20)
    assert peak < bound, f"peak {peak / 2**20:.0f} MiB over the bound {bound / 2**20:.0f} MiB"


@pytest.mark.parametrize("size, out", [((300, 200), (600, 400)), ((300, 200), (450, 300)), ((256, 256), (1024, 1024)), ((257, 131), (514, 393))])
def test_simple_ratios_give_the_whole_image_resize_pixels(monkeypatch, size, out):
    monkeypatch.setattr(resample, "TILE", 96)  # windows on the ratio's lattice, many of them
    img = picture(*size)  # noise and hard alpha edges: any misplaced sample shows
    diff = np.abs(lanczos_resize(img, *out).astype(int) - whole_image_reference(img, *out).astype(int))
    assert diff.max() <= 1, diff.max()  # rounding of the straight-alpha division only
