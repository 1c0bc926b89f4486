"""The shared mask and image code."""

from __future__ import annotations

import numpy as np
import pytest

from paintwire.protocol import ImagePayload, PixelFormat
from paintwire.server import masks
from paintwire.server.layers import OutputLayer
from paintwire.server.resample import lanczos_resize
from paintwire.server.imaging import array_to_payload, encode_png, payload_to_array, swap_red_blue
from paintwire.protocol.images import Encoding
from paintwire.protocol.rect import Rect
from paintwire.server.region import flatten, prepare_region, region_layer


def test_bounds_of_a_mask():
    m = np.zeros((50, 60), np.uint8)
    assert masks.bounds(m) is None
    m[10:20, 5:7] = 1
    assert masks.bounds(m) == Rect(5, 10, 2, 10)


def test_pad_is_clipped_to_the_image():
    assert Rect(5, 10, 2, 10).padded(8, 60, 50) == Rect(0, 2, 15, 26)
    assert Rect(50, 40, 10, 10).padded(8, 60, 50) == Rect(42, 32, 18, 18)


def test_blur_feathers_and_grows_the_mask():
    m = np.zeros((40, 40), np.uint8)
    m[15:25, 15:25] = 255
    soft = masks.blur(m, 2)
    assert soft[20, 20] > 240 and 0 < soft[20, 14] < 128 and soft[0, 0] == 0
    b = masks.bounds(soft)
    assert b.x < 15 and b.x + b.width > 25
    assert masks.blur(m, 0) is m


def test_invert():
    assert masks.invert(np.array([[0, 255, 10]], np.uint8)).tolist() == [[255, 0, 245]]


def test_crop_and_paste_round_trip():
    img = np.arange(5 * 6 * 4, dtype=np.uint8).reshape(5, 6, 4)
    box = Rect(1, 2, 3, 2)
    patch = masks.crop(img, box).copy()
    target = np.zeros_like(img)
    masks.paste(target, patch, box)
    assert np.array_equal(target[2:4, 1:4], img[2:4, 1:4]) and target[0, 0].sum() == 0


def test_fill_takes_colour_from_the_surroundings_and_keeps_the_rest():
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:, :32] = (200, 0, 0)
    rgb[:, 32:] = (0, 0, 200)
    rgb[20:44, 20:44] = (0, 255, 0)  # the object to remove
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 20:44] = 255
    out = masks.fill(rgb, mask)
    assert np.array_equal(out[mask == 0], rgb[mask == 0])
    assert out[32, 22, 0] > out[32, 22, 2] and out[32, 41, 2] > out[32, 41, 0]  # red side stays red, blue side blue
    assert out[20:44, 20:44, 1].max() < 60  # no green left
    passes = []
    assert np.array_equal(masks.fill(rgb, mask, 4, on_pass=lambda i, n: passes.append((i, n))), masks.fill(rgb, mask, 4))
    assert passes == [(1, 4), (2, 4), (3, 4), (4, 4)]
    passes.clear()
    assert masks.fill(rgb, np.full((64, 64), 255, np.uint8), on_pass=lambda i, n: passes.append((i, n))).max() == 127
    assert passes == [(8, 8)]  # still reported, so a job keeps its progress and cancel checkpoint


def test_region_layer_keeps_unmasked_pixels_exact():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (80, 90, 4), dtype=np.uint8)
    img[..., 3] = 255
    mask = np.zeros((80, 90), np.uint8)
    mask[25:55, 25:65] = 255
    region = prepare_region(img, mask, blur=2, invert=False, padding=4)
    assert region.area.x == region.changed.x - 4
    generated = np.zeros((region.area.height, region.area.width, 3), np.uint8)
    layer = region_layer(region, generated, "test")
    out = flatten(img, layer)
    assert np.array_equal(out[mask == 0], img[mask == 0])
    assert out[40, 45, :3].tolist() == [0, 0, 0]  # the middle of the mask is all generated


def test_flatten_over_a_transparent_base():
    base = np.zeros((4, 4, 4), np.uint8)
    layer = OutputLayer(np.full((2, 2, 4), (10, 20, 30, 255), np.uint8), 1, 1, "x")
    out = flatten(base, layer)
    assert out[1, 1].tolist() == [10, 20, 30, 255] and out[0, 0, 3] == 0


def test_payload_conversion_round_trips():
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (7, 9, 4), dtype=np.uint8)
    for fmt in (PixelFormat.RGBA8, PixelFormat.BGRA8):
        payload = array_to_payload(rgba, fmt)
        assert np.array_equal(payload_to_array(payload), rgba)
    bgra = array_to_payload(rgba, PixelFormat.BGRA8)
    assert bgra.data[:4] == bytes(rgba[0, 0, [2, 1, 0, 3]])
    big = rng.integers(0, 256, (300, 517, 4), dtype=np.uint8)
    for view in (big, big[3:200:2, 5:400], big[::-1]):  # contiguous or not, the swap is exact
        swapped = swap_red_blue(view)
        assert np.array_equal(swapped, view[..., [2, 1, 0, 3]]) and swapped.flags.writeable
        read_only = np.frombuffer(memoryview(np.ascontiguousarray(view).tobytes()).toreadonly(), np.uint8).reshape(view.shape)
        assert np.array_equal(payload_to_array(ImagePayload(view.shape[1], view.shape[0], PixelFormat.BGRA8, read_only.data)), swapped)
    mask = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    assert np.array_equal(payload_to_array(array_to_payload(mask, PixelFormat.L8)), mask)
    png = ImagePayload(9, 7, PixelFormat.RGBA8, encode_png(rgba), Encoding.PNG)
    assert np.array_equal(payload_to_array(png), rgba)


def test_lanczos_resize_does_not_darken_edges_next_to_transparency():
    img = np.zeros((20, 20, 4), np.uint8)
    img[:, 10:] = (255, 255, 255, 255)  # white, next to transparent black
    out = lanczos_resize(img, 40, 40)
    edge = out[:, 18:24]
    visible = edge[..., 3] > 30
    assert (edge[visible][:, :3] > 230).all()


@pytest.mark.parametrize("radius", [0, 1, 4, 9.5])
@pytest.mark.parametrize("where", ["middle", "corner", "edge"])
def test_blur_around_equals_blurring_the_whole_canvas(radius, where):
    mask = np.zeros((300, 400), np.uint8)
    x, y = {"middle": (150, 120), "corner": (0, 0), "edge": (380, 100)}[where]
    mask[y : y + 20, x : x + 20] = 255
    mask[y + 5, x + 5] = 90  # soft values too
    soft, box = masks.blur_around(mask, radius)
    full = masks.blur(mask, radius)
    placed = np.zeros_like(full)
    masks.paste(placed, soft, box)
    assert np.array_equal(placed, full)
    assert masks.blur_around(np.zeros((10, 10), np.uint8), radius) is None


def test_prepare_region_matches_the_whole_canvas_mask_maths():
    img = np.zeros((200, 300, 4), np.uint8)
    mask = np.zeros((200, 300), np.uint8)
    mask[50:60, 100:180] = 255
    for whole in (False, True):
        for outward in (False, True):
            region = prepare_region(img, mask, blur=6, invert=False, padding=40, whole_picture=whole, blur_outward=outward)
            full = masks.feather(mask, 6, outward)
            assert region.changed == masks.bounds(full)
            assert np.array_equal(region.mask, masks.crop(full, region.area))


@pytest.mark.parametrize("radius", [0, 1, 4, 9.5])
@pytest.mark.parametrize("where", ["middle", "corner", "thin"])
def test_feather_within_stays_inside_and_ramps_smoothly(radius, where):
    mask = np.zeros((120, 160), np.uint8)
    if where == "thin":
        mask[50:53, 20:140] = 255  # a 3-pixel stroke: still selected, never emptied
    else:
        x, y = (60, 40) if where == "middle" else (0, 0)
        mask[y : y + 40, x : x + 50] = 255
    soft = masks.feather(mask, radius)
    assert (soft[mask == 0] == 0).all()  # nothing outside the selection
    assert (soft <= mask).all() and (soft[mask > 0] > 0).all()
    if radius and where != "thin":
        reach = int(np.ceil(masks.FEATHER_REACH * radius))
        assert soft.max() == 255 or 2 * reach > 40  # full strength where the selection is deep enough
        box = masks.bounds(mask)
        # Rises from the edge inwards; on the canvas border there is no edge to fade.
        row = soft[box.y + box.height // 2, box.x + box.width - 1 - reach : box.x + box.width]
        assert (np.diff(row.astype(int)) <= 0).all() and row[-1] < (64 if radius >= 4 else 128)
        if where == "corner":
            assert soft[5, 0] == 255


def test_large_opencv_inpaints_run_at_a_bounded_scale():
    import cv2

    from paintwire.server.engines.classical import INPAINT_BUDGET, bounded_inpaint

    rgb = np.zeros((600, 600, 3), np.uint8)
    rgb[:, :300] = (200, 40, 40)
    rgb[:, 300:] = (40, 40, 200)
    small = np.zeros((600, 600), np.uint8)
    small[290:310, 100:120] = 255
    # Within the budget: exactly OpenCV's result.
    assert np.array_equal(bounded_inpaint(rgb, small, 5, cv2.INPAINT_TELEA), cv2.inpaint(rgb, small, 5, cv2.INPAINT_TELEA))
    big = np.zeros((600, 600), np.uint8)
    big[100:500, 100:500] = 255
    assert np.count_nonzero(big) * 64 * 64 > INPAINT_BUDGET
    out = bounded_inpaint(rgb, big, 64, cv2.INPAINT_TELEA)
    assert np.array_equal(out[big == 0], rgb[big == 0])
    # The hole takes its colours from its sides: red on the left, blue on the right.
    assert out[300, 130, 0] > out[300, 130, 2] and out[300, 470, 2] > out[300, 470, 0]
