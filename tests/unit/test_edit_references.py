"""The edit mode's pieces that need no model: which kinds edit, the reference pictures
read from edit reference layers, and the shapes each family takes them in."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from paintwire.protocol import ErrorCode, ProtocolError  # noqa: E402
from paintwire.server.engines.base import DecodedControl  # noqa: E402
from paintwire.server.engines.diffusion import families  # noqa: E402
from paintwire.server.engines.diffusion.families.base import EDIT, INPAINT  # noqa: E402
from paintwire.server.engines.diffusion.params import EDIT as EDIT_MODE  # noqa: E402
from paintwire.server.engines.diffusion.references import at_least, edit_references, side_by_side  # noqa: E402


def layer(x: int, y: int, w: int, h: int, colour=(200, 20, 20), size=(96, 80)) -> np.ndarray:
    out = np.zeros((size[1], size[0], 4), np.uint8)
    out[y:y + h, x:x + w] = (*colour, 255)
    return out


def control(rgba: np.ndarray, kind: str = "edit_reference", strength: float = 1.0) -> DecodedControl:
    return DecodedControl(kind, rgba, "none", {}, strength=strength)


def test_the_kinds_that_edit_are_those_whose_family_has_an_edit_pipeline():
    assert families.edit_kinds() == ("flux-kontext", "flux2-klein", "flux2-klein-base")
    assert {str(getattr(k, "value", k)) for k in EDIT_MODE.model_kinds} == set(families.edit_kinds())
    for kind in ("sd15", "sd15-inpaint", "sdxl-inpaint", "flux", "flux-schnell", "flux-fill"):
        assert not families.family_of(kind).edits(kind), kind


def test_edit_references_are_the_painted_parts_in_order_and_strength_zero_leaves_one_out():
    pictures = edit_references([
        control(layer(60, 4, 30, 20)),
        control(layer(0, 0, 10, 10), kind="scribble"),  # another kind: not an edit reference
        control(layer(5, 5, 40, 40, (0, 0, 200))),
        control(layer(1, 1, 20, 20), strength=0.0),
    ])
    assert [p.size for p in pictures] == [(30, 20), (40, 40)]
    assert np.asarray(pictures[1])[0, 0].tolist() == [0, 0, 200]


@pytest.mark.parametrize("rgba,field,words", [
    (np.zeros((80, 96, 4), np.uint8), "job.controls.1.image", "empty"),
    (layer(0, 10, 90, 10), "job.controls.1.image", "8 times"),
])
def test_an_empty_or_thin_reference_is_refused_with_its_field(rgba, field, words):
    with pytest.raises(ProtocolError) as info:
        edit_references([control(layer(10, 10, 20, 20)), control(rgba)])
    assert info.value.code is ErrorCode.BAD_IMAGE and info.value.field == field and words in info.value.message


def test_side_by_side_keeps_each_shape_at_one_height_and_bounds_the_area():
    a, b = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (20, 10), "blue")
    row = side_by_side([a, b], 48)
    assert row.size == (64 + 96, 48)
    pixels = np.asarray(row)
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[0, 64].tolist() == [0, 0, 255]
    big = side_by_side([Image.new("RGB", (800, 800)), Image.new("RGB", (800, 800))], 800, max_area=640_000)
    assert big.width * big.height <= 640_000 and abs(big.width / big.height - 2) < 0.01
    assert at_least(Image.new("RGB", (20, 40))).size == (64, 128)
    assert at_least(Image.new("RGB", (70, 90))).size == (70, 90)


def test_kontext_reads_one_picture_with_the_references_beside_it():
    family = families.FLUX
    source, ref = Image.new("RGB", (64, 48), "green"), Image.new("RGB", (30, 30), "red")
    edit = family.reference_kwargs(EDIT, source, [ref])
    assert set(edit) == {"image"} and edit["image"].size == (64 + 48, 48)
    assert family.reference_kwargs(EDIT, source, [])["image"].size == (64, 48)
    # A selection: the inpaint pipeline reads the region it is given unless told another picture.
    assert family.reference_kwargs(INPAINT, source, []) == {}
    assert family.reference_kwargs(INPAINT, source, [ref])["image_reference"].size == (64 + 48, 48)


def test_klein_reads_a_list_each_at_least_64_px_and_a_selections_references_in_one():
    family = families.FLUX2
    source, ref = Image.new("RGB", (48, 48), "green"), Image.new("RGB", (30, 60), "red")
    edit = family.reference_kwargs(EDIT, source, [ref])
    assert [p.size for p in edit["image"]] == [(64, 64), (64, 128)]
    assert family.reference_kwargs(INPAINT, source, []) == {}
    (one,) = family.reference_kwargs(INPAINT, source, [ref, ref]).values()
    assert one.size == (64, 64)  # two 24 x 48 pictures side by side, enlarged to 64 px high
    with pytest.raises(KeyError):
        families.SD15.reference_kwargs(EDIT, source, [ref])
