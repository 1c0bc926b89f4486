"""The model-free preprocessors do what their help says (server/engines/diffusion/control/preprocess.py)."""

from __future__ import annotations

import numpy as np
import pytest

from paintwire.protocol import ErrorCode, ProtocolError
from paintwire.server.engines.diffusion.control import preprocess
from paintwire.server.engines.diffusion.control.kinds import BY_NAME, kind_from_name

W = H = 64


def layer(background: tuple[int, int, int, int] = (0, 0, 0, 0), stroke: tuple[int, int, int, int] = (0, 0, 0, 255), width: int = 9) -> np.ndarray:
    """A layer with one vertical stroke ``width`` pixels wide down the middle."""
    img = np.zeros((H, W, 4), np.uint8)
    img[:] = background
    x = W // 2 - width // 2
    img[8:56, x:x + width] = stroke
    return img


def params(kind: str, **over) -> dict:
    values = {p.name: p.default for p in BY_NAME[kind].params}
    values.update(over)
    return values


@pytest.mark.parametrize("background", [(0, 0, 0, 0), (255, 255, 255, 255)], ids=["transparent", "white"])
@pytest.mark.parametrize("width", [1, 3, 5])
def test_scribble_normalises_any_stroke_to_the_line_width(background, width):
    for stroke_width in (3, 9, 17):
        out = preprocess.run("scribble", layer(background, width=stroke_width), params("scribble", line_width=width))
        assert out.dtype == np.uint8 and out.shape == (H, W)
        assert set(np.unique(out)) <= {0, 255}
        across = (out[32] > 0).sum()  # the line's width, measured across the middle of the stroke
        assert abs(across - width) <= 1, (stroke_width, width, across)
        assert out[:4].max() == 0 and out[:, :8].max() == 0  # nothing where nothing was painted


def test_invert_reads_light_strokes_on_dark():
    light_on_dark = layer((0, 0, 0, 255), (255, 255, 255, 255))
    inverted = preprocess.run("lineart", light_on_dark, params("lineart", invert=True))
    assert inverted[32, W // 2] == 255 and inverted[32, 4] == 0
    plain = preprocess.run("lineart", light_on_dark, params("lineart"))
    assert plain[32, W // 2] == 0  # read as dark paint, the stroke itself is the unpainted part


def test_the_threshold_decides_what_counts_as_ink():
    grey_stroke = layer(stroke=(150, 150, 150, 255))  # ink 105 of 255
    assert preprocess.run("scribble", grey_stroke, params("scribble", threshold=100)).max() == 255
    assert preprocess.run("scribble", grey_stroke, params("scribble", threshold=128)).max() == 0


def test_half_transparent_paint_is_half_the_ink():
    faint = layer(stroke=(0, 0, 0, 100))  # ink 100
    assert preprocess.run("scribble", faint, params("scribble", threshold=90)).max() == 255
    assert preprocess.run("scribble", faint, params("scribble", threshold=110)).max() == 0


def test_canny_finds_the_edges_of_a_shape_and_only_them():
    img = np.full((H, W, 4), 255, np.uint8)
    img[16:48, 16:48, :3] = 0
    out = preprocess.run("canny", img, params("canny"))
    assert out.shape == (H, W) and set(np.unique(out)) <= {0, 255}
    assert out[32, 14:18].max() == 255 and out[32, 46:50].max() == 255  # the left and right edges
    assert out[24:40, 24:40].max() == 0 and out[:8].max() == 0  # nothing inside or far outside
    assert preprocess.run("canny", img, params("canny", low_threshold=255, high_threshold=255)).sum() <= out.sum()


def test_softedge_is_bright_at_edges_dark_on_flat_ground():
    img = np.full((H, W, 4), 255, np.uint8)
    img[:, W // 2:, :3] = 0
    out = preprocess.run("softedge", img, {})
    assert out[32, W // 2 - 1] > 200 and out[32, 4] < 10
    assert 0 < out[32, W // 2 - 4] < out[32, W // 2 - 1]  # soft: it falls off around the edge
    assert preprocess.run("softedge", np.full((H, W, 4), 128, np.uint8), {}).max() == 0


def test_none_uses_the_layer_as_it_is_over_black():
    img = np.zeros((H, W, 4), np.uint8)
    img[..., 0], img[..., 3] = 200, 255
    img[:8, :, 3] = 0
    out = preprocess.run("none", img, {})
    assert out.shape == (H, W, 3)
    assert (out[10:, :, 0] == 200).all() and (out[:8] == 0).all()


def test_an_unknown_preprocessor_is_refused():
    with pytest.raises(ProtocolError) as info:
        preprocess.run("depth_anything", layer(), {})
    assert info.value.code is ErrorCode.INVALID_PARAM


@pytest.mark.parametrize("name, kind", [
    ("control_v11p_sd15_canny", "canny"), ("control_v11p_sd15_lineart", "lineart"), ("control_v11p_sd15s2_lineart_anime", "lineart"),
    ("control_v11p_sd15_scribble", "scribble"), ("controlnet-sdxl-softedge-hed", "softedge"), ("control_v11f1p_sd15_depth", "depth"),
    ("control_v11p_sd15_normalbae", "normal"), ("thibaud_xl_openpose", "pose"), ("control_v11p_sd15_seg", "segmentation"),
    ("controlnet-union-sdxl-1.0", None),
])
def test_the_kind_of_a_controlnet_comes_from_its_name(name, kind):
    assert kind_from_name(name) == kind


# -- the CLI's --control and --reference ------------------------------------------------------


def test_control_specs_are_read_from_the_right():
    from pathlib import Path

    from paintwire.cli.controls import ControlSpec, parse_control, parse_reference

    assert parse_control("canny=edges.png") == ControlSpec("canny", Path("edges.png"))
    assert parse_control("depth=C:/maps/d.png:0.5") == ControlSpec("depth", Path("C:/maps/d.png"), 0.5)
    assert parse_control("scribble/none=a:b.png:1.2:0.1:0.6") == ControlSpec("scribble", Path("a:b.png"), 1.2, 0.1, 0.6, "none")
    assert parse_reference("ref.jpg:0.7") == ControlSpec("reference", Path("ref.jpg"), 0.7)
    for bad in ("canny", "=x.png", "canny=x.png:0.5:0.1"):
        with pytest.raises(ValueError):
            parse_control(bad)


def test_control_images_take_the_input_size(tmp_path):
    from PIL import Image

    from paintwire.cli.controls import ControlSpec, control_input

    Image.new("RGBA", (40, 20), (255, 0, 0, 255)).save(tmp_path / "wide.png")
    stretched = control_input(ControlSpec("depth", tmp_path / "wide.png"), (64, 64))
    assert (stretched.image.width, stretched.image.height) == (64, 64)
    ref = control_input(ControlSpec("reference", tmp_path / "wide.png", 0.5), (64, 64))
    rgba = np.frombuffer(ref.image.data, np.uint8).reshape(64, 64, 4)
    assert rgba[32, 32, 3] == 255 and rgba[2, 32, 3] == 0 and ref.strength == 0.5  # fitted, its shape kept, transparent around
