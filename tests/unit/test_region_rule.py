"""The default region rule: a selection is worked on with its context, not the whole canvas."""

from __future__ import annotations

import numpy as np

from paintwire.protocol.rect import Rect
from paintwire.server.region import context_side, prepare_region, region_layer


def canvas_with(side: int, box: Rect) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(1).integers(0, 255, (side, side, 4), dtype=np.uint8)
    mask = np.zeros((side, side), np.uint8)
    mask[box.slices] = 255
    return image, mask


def test_the_context_is_half_the_native_side():
    assert context_side(512) == 256 and context_side(1024) == 512


def test_a_small_selection_gets_context_around_it_on_any_canvas():
    for side in (1024, 4096):
        image, mask = canvas_with(side, Rect(500, 600, 40, 30))
        region = prepare_region(image, mask, blur=4, invert=False, padding=32, min_side=256)
        assert (region.area.width, region.area.height) == (256, 256)
        # Centred on the selection: the same context on every side, give or take a pixel.
        cx, cy = region.changed.x + region.changed.width / 2, region.changed.y + region.changed.height / 2
        assert abs(region.area.x + 128 - cx) <= 1 and abs(region.area.y + 128 - cy) <= 1
        assert region.image.shape[:2] == (256, 256)  # the work is the region's, whatever the canvas


def test_the_context_stays_on_the_canvas_and_never_exceeds_it():
    image, mask = canvas_with(1024, Rect(0, 1000, 20, 24))  # a corner
    region = prepare_region(image, mask, blur=0, invert=False, padding=32, min_side=256)
    assert region.area == Rect(0, 1024 - 256, 256, 256)
    small, small_mask = canvas_with(200, Rect(90, 90, 10, 10))  # a canvas smaller than the context
    assert prepare_region(small, small_mask, blur=0, invert=False, padding=32, min_side=256).area == Rect(0, 0, 200, 200)


def test_a_big_selection_keeps_just_its_padding():
    image, mask = canvas_with(2048, Rect(300, 400, 900, 700))
    region = prepare_region(image, mask, blur=0, invert=False, padding=32, min_side=256)
    assert region.area == Rect(268, 368, 964, 764)


def test_a_thin_selection_is_widened_on_its_thin_axis_only():
    image, mask = canvas_with(2048, Rect(100, 1000, 1200, 8))
    region = prepare_region(image, mask, blur=0, invert=False, padding=32, min_side=256)
    assert (region.area.width, region.area.height) == (1264, 256)


def test_the_context_changes_the_work_area_but_not_the_result_layer():
    image, mask = canvas_with(1024, Rect(500, 600, 40, 30))
    layers = []
    for min_side in (0, 256):
        region = prepare_region(image, mask, blur=4, invert=False, padding=32, min_side=min_side)
        generated = np.zeros((region.area.height, region.area.width, 3), np.uint8)
        layers.append((region.area, region_layer(region, generated, "x")))
    (small, a), (big, b) = layers
    assert small != big and (big.width, big.height) == (256, 256)
    assert (a.x, a.y) == (b.x, b.y) == (500, 600)  # the layer covers the selection only
    assert np.array_equal(a.pixels, b.pixels)  # the same alpha: the rest of the canvas stays exact
