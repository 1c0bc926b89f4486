"""The one "over" rule (paintwire.protocol.compositing): the shared cases in
tests/vectors/over.json, which the web page's copy of the rule is checked against
too (tests/browser), held against exact rational maths and against the module."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from paintwire.protocol.compositing import over, place_over

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "over.json"


def cases() -> list[dict]:
    return json.loads(VECTOR.read_text(encoding="utf-8"))["cases"]


def exact_over(top: list[int], under: list[int]) -> list[int]:
    """The rule in exact fractions, rounded halves up: the reference the vector must hold to."""
    a, b = Fraction(top[3], 255), Fraction(under[3], 255)
    if a == 0:
        return list(under)
    out_a = a + b * (1 - a)
    nearest = lambda v: math.floor(v + Fraction(1, 2))  # noqa: E731
    return [nearest((top[i] * a + under[i] * b * (1 - a)) / out_a) for i in range(3)] + [nearest(out_a * 255)]


def test_the_shared_vector_holds_the_rule() -> None:
    assert len(cases()) > 40
    for case in cases():
        assert case["out"] == exact_over(case["top"], case["under"]), case["name"]


def test_over_gives_the_vector_byte_for_byte() -> None:
    top = np.array([[c["top"] for c in cases()]], np.uint8)
    under = np.array([[c["under"] for c in cases()]], np.uint8)
    assert over(top, under)[0].tolist() == [c["out"] for c in cases()]


def test_over_an_opaque_picture_is_the_plain_blend_and_exact_at_the_ends() -> None:
    rng = np.random.default_rng(5)
    top = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    under = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    under[..., 3] = 255
    top[:8, :, 3], top[8:16, :, 3] = 0, 255
    out = over(top, under)
    a = top[..., 3:4].astype(np.uint32)
    blend = (top[..., :3].astype(np.uint32) * a + under[..., :3].astype(np.uint32) * (255 - a) + 127) // 255
    assert np.array_equal(out[..., :3], blend) and (out[..., 3] == 255).all()
    assert np.array_equal(out[:8], under[:8]) and np.array_equal(out[8:16], top[8:16])


def test_place_over_clips_to_the_canvas_and_leaves_the_rest() -> None:
    canvas = np.zeros((4, 5, 4), np.uint8)
    canvas[..., 2:] = 255
    layer = np.full((3, 3, 4), (10, 20, 30, 255), np.uint8)
    out = place_over(canvas, layer, 3, -1)
    assert out[:2, 3:].tolist() == [[[10, 20, 30, 255]] * 2] * 2
    assert np.array_equal(out[2:], canvas[2:]) and np.array_equal(out[:, :3], canvas[:, :3])
    assert canvas[0, 3].tolist() == [0, 0, 255, 255]  # a new array; the canvas is untouched
    assert np.array_equal(place_over(canvas, layer, 9, 9), canvas)


def test_over_refuses_arrays_of_different_sizes() -> None:
    with pytest.raises(ValueError):
        over(np.zeros((2, 2, 4), np.uint8), np.zeros((2, 3, 4), np.uint8))


def test_the_cli_and_the_history_write_the_layer_over_the_input_by_this_rule(tmp_path: Path) -> None:
    """Their callers: the CLI's output file and the history's stored picture of a
    half-transparent layer over a half-transparent input."""
    from PIL import Image

    from paintwire.cli.images import save_result
    from paintwire.protocol import ImagePayload, JobRequest, Layer, PixelFormat, Result
    from paintwire.server.history.recorder import _composited

    half = next(c for c in cases() if c["name"] == "half over half")
    under = np.zeros((6, 8, 4), np.uint8)
    under[...] = half["under"]
    top = np.zeros((2, 3, 4), np.uint8)
    top[...] = half["top"]
    layer = Layer(ImagePayload(3, 2, PixelFormat.RGBA8, top.tobytes()), 4, 3, "l", 1, {})
    save_result(Result("job", (layer,), 8, 6), under, tmp_path / "out.png", None)
    written = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(written, place_over(under, top, 4, 3))
    assert written[3, 4].tolist() == half["out"] and written[0, 0].tolist() == under[0, 0].tolist()
    request = JobRequest("classical", "inpaint", ImagePayload(8, 6, PixelFormat.RGBA8, under.tobytes()))
    stored = _composited(top, under, layer, request)
    assert stored.shape == (2, 3, 4) and stored[0, 0].tolist() == half["out"]
