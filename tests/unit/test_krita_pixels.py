"""Krita's pixel helpers (plugins/krita/paintwire_krita/pixels.py), without Krita:
colour depths, masks from layers, result layers clipped to the canvas."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))

from paintwire_krita.pixels import clip_to_canvas, from_8bit, mask_from_layer, to_8bit  # noqa: E402

from paintwire.hostkit.placement import place_result  # noqa: E402
from paintwire.protocol import Result  # noqa: E402

from test_hostkit import H, W, layer  # noqa: E402


def test_mask_from_layer_uses_alpha_when_the_layer_has_transparency():
    pixels = bytes([10, 20, 30, 0, 10, 20, 30, 200])
    assert mask_from_layer(pixels) == bytes([0, 200])


def test_mask_from_an_opaque_layer_is_its_grey_level():
    pixels = bytes([0, 0, 0, 255, 255, 255, 255, 255, 90, 90, 90, 255])
    assert mask_from_layer(pixels) == bytes([0, 255, 90])


def test_sixteen_bit_pixels_round_trip_through_eight_bits():
    eight = bytes([0, 1, 128, 255])
    sixteen = from_8bit(eight, "U16")
    assert sixteen == bytes([0, 0, 1, 1, 128, 128, 255, 255])  # v * 257, little-endian
    assert to_8bit(sixteen, "U16") == eight
    assert to_8bit(bytes([0x34, 0x12]), "U16") == bytes([0x12])  # the high byte
    assert to_8bit(eight, "U8") == eight


@pytest.mark.parametrize("depth", ["F16", "F32"])
def test_float_depths_are_refused_with_a_hint(depth):
    with pytest.raises(ValueError, match="8-bit and 16-bit integer"):
        to_8bit(b"\x00" * 8, depth)


def test_clip_to_canvas_keeps_the_inside_part_at_the_right_place():
    full = place_result(Result("j", (layer(-1, 4, 3, 3),), W, H), (W, H)).layers[0]
    clipped = clip_to_canvas(full, W, H)
    assert (clipped.x, clipped.y, clipped.width, clipped.height) == (0, 4, 2, 2)
    # Row 0 of the clip is row 0 of the layer from its column 1.
    assert clipped.pixels[:8] == full.pixels[4:12]
    assert clipped.pixels[8:16] == full.pixels[16:24]
    assert clip_to_canvas(full, W, H) is not full
    inside = place_result(Result("j", (layer(1, 1, 2, 2),), W, H), (W, H)).layers[0]
    assert clip_to_canvas(inside, W, H) is inside
    outside = place_result(Result("j", (layer(W, 0, 2, 2),), W, H), (W, H)).layers[0]
    assert clip_to_canvas(outside, W, H) is None
