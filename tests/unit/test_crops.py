"""Crops (protocol/crops.py): the one rule for what a mode reads, checked against
the server's own inpaint region, and every bad crop refused with BAD_CROP."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from paintwire.hostkit.request import JobSettings, build_request, read_area
from paintwire.hostkit.snapshot import Snapshot
from paintwire.protocol import Crop, ErrorCode, JobRequest, PixelFormat, ProtocolError, check_job, raw_image
from paintwire.protocol.crops import CropRule, bytes_bounds, crop_bytes, needed_box
from paintwire.protocol.rect import Rect
from paintwire.server import masks
from paintwire.server.app import build_capabilities
from paintwire.server.config import LimitsConfig
from paintwire.server.engines.classical import ClassicalEngine
from paintwire.server.engines.common import inpaint_crop
from paintwire.server.region import prepare_region

CAPS = build_capabilities([ClassicalEngine()], LimitsConfig())
RULE = inpaint_crop(min_side=96)


def random_mask(rng: random.Random, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for _ in range(rng.randint(1, 3)):
        w, h = rng.randint(1, width // 2), rng.randint(1, height // 2)
        x, y = rng.randint(0, width - w), rng.randint(0, height - h)
        mask[y:y + h, x:x + w] = rng.choice([255, 128, 40])
    return mask


def test_the_one_rectangle() -> None:
    """paintwire.protocol.Rect: the crop's, the server's boxes', the host kit's regions."""
    r = Rect(10, 20, 30, 40)
    assert (r.right, r.bottom, r.area) == (40, 60, 1200) and r.moved(-10, 5) == Rect(0, 25, 30, 40)
    assert np.arange(100 * 80).reshape(80, 100)[r.slices].shape == (40, 30)
    assert r.padded(15, 100, 70) == Rect(0, 5, 55, 65) and r.contains(Rect(10, 20, 1, 1)) and not r.contains(r.moved(1, 0))
    assert r.union(Rect(0, 0, 1, 1)) == Rect(0, 0, 40, 60)
    assert Rect(-5, 70, 30, 40).clipped(100, 80) == Rect(0, 70, 25, 10) and Rect(200, 0, 5, 5).clipped(100, 80) is None


def test_a_crop_gives_the_same_region_as_the_whole_canvas() -> None:
    """For random masks, canvases, paddings and blurs, the needed box holds the server's
    work area (for any model context up to the rule's), and the region worked out on that
    crop is the whole canvas's, pixel for pixel, in canvas coordinates."""
    rng = random.Random(7)
    for _ in range(300):
        width, height = rng.randint(8, 300), rng.randint(8, 300)
        mask = random_mask(rng, width, height)
        image = np.random.default_rng(rng.randint(0, 99)).integers(0, 255, (height, width, 4), np.uint8)
        params = {"padding": rng.choice([0, 1, 5, 32]), "mask_blur": rng.choice([0, 1, 4, 9]), "invert_mask": False,
                  "mask_blur_outward": False, "inpaint_area": "only_masked"}
        side = rng.choice([0, 17, 32, 96])  # a model's context, up to the rule's min_side
        hard = masks.bounds(mask)
        need = needed_box(RULE, params, Rect(hard.x, hard.y, hard.width, hard.height), width, height)
        rule = dict(blur=params["mask_blur"], invert=False, padding=params["padding"], min_side=side)
        whole = prepare_region(image, mask, **rule)
        area = whole.area
        assert need.contains(Rect(area.x, area.y, area.width, area.height)), (need, area)
        box = (slice(need.y, need.bottom), slice(need.x, need.right))
        cropped = prepare_region(image[box], mask[box], origin=(need.x, need.y), canvas=(width, height), **rule)
        assert (cropped.area, cropped.changed) == (whole.area, whole.changed)
        assert np.array_equal(cropped.image, whole.image) and np.array_equal(cropped.mask, whole.mask)


def test_a_crop_smaller_than_the_work_area_is_refused_by_the_region() -> None:
    mask = np.zeros((200, 200), np.uint8)
    mask[90:110, 90:110] = 255
    with pytest.raises(ProtocolError) as info:
        prepare_region(np.zeros((40, 40, 4), np.uint8), mask[80:120, 80:120], blur=4, invert=False, padding=32, origin=(80, 80), canvas=(200, 200))
    assert info.value.code is ErrorCode.BAD_CROP and "120x120" not in info.value.message and "84x84" in info.value.message


def test_modes_and_parameters_that_read_the_whole_canvas() -> None:
    bounds = Rect(10, 10, 5, 5)
    whole = Rect(0, 0, 100, 80)
    assert needed_box(CropRule(), {}, bounds, 100, 80) == whole
    assert needed_box(RULE, {"padding": 0}, None, 100, 80) == whole
    for key, value in (("invert_mask", True), ("mask_blur_outward", True), ("inpaint_area", "whole_picture")):
        assert needed_box(RULE, {key: value}, bounds, 100, 80) == whole
    assert needed_box(CropRule(whole=False), {}, bounds, 100, 80) == Rect(8, 8, 9, 9)  # the bounds and the slack
    margin = CropRule(whole=False, margin_params=(("mask_blur", 2.5),))
    assert needed_box(margin, {"mask_blur": 3}, bounds, 100, 80) == Rect(0, 0, 25, 25)  # 10 - 8 (7.5 rounded up) - 2 slack, clipped at 0


def test_the_rule_round_trips_and_reads_leniently() -> None:
    assert CropRule.from_wire(RULE.to_wire()) == RULE
    assert CropRule.from_wire(None) == CropRule() and CropRule.from_wire({"ring": "x"}) == CropRule()


def test_bytes_bounds_and_crop_bytes_agree_with_numpy() -> None:
    rng = random.Random(3)
    for _ in range(100):
        w, h = rng.randint(1, 40), rng.randint(1, 40)
        mask = random_mask(rng, max(w, 2), max(h, 2)) if rng.random() < 0.9 else np.zeros((h, w), np.uint8)
        hard = masks.bounds(mask)
        got = bytes_bounds(mask.tobytes(), mask.shape[1], mask.shape[0])
        assert (got is None) == (hard is None)
        if hard is not None:
            assert got == Rect(hard.x, hard.y, hard.width, hard.height)
            rgba = np.dstack([mask] * 4)
            assert crop_bytes(rgba.tobytes(), mask.shape[1], 4, got) == np.ascontiguousarray(rgba[hard.slices]).tobytes()


def crop_job(mode: str = "inpaint", crop: Crop = Crop(10, 10, 100, 100), size: int = 60, at: int = 20, **params) -> JobRequest:
    mask = np.zeros((size, size), np.uint8)
    mask[at:at + 10, at:at + 10] = 255
    return JobRequest("classical", mode, raw_image(size, size, "rgba8", bytes(size * size * 4)),
                      raw_image(size, size, "l8", mask.tobytes()) if mode == "inpaint" else None, params=params, crop=crop)


def refused(job: JobRequest) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        check_job(job, CAPS)
    assert info.value.code is ErrorCode.BAD_CROP and info.value.field == "job.crop"
    return info.value


def test_check_job_accepts_a_covering_crop_and_refuses_the_rest() -> None:
    check_job(crop_job(padding=8), CAPS)  # mask at 30..40 of the canvas, padding 8: 19..51 is inside 10..70
    assert "Send at least" in refused(crop_job(padding=32)).message  # 30-32-2 < 10
    assert "whole canvas with invert_mask=True" in refused(crop_job(padding=8, invert_mask=True)).message
    assert "reads the whole canvas" in refused(crop_job("upscale")).message
    check_job(crop_job("upscale", Crop(0, 0, 60, 60)), CAPS)  # a "crop" that is the whole canvas is the whole canvas


def test_a_crop_with_an_empty_mask_is_refused_at_submit() -> None:
    """Section 6.5, rule 1: a job whose mask selects nothing reads the whole canvas, so a
    crop of it is refused when it is checked, not queued to fail later with bad_mask."""
    job = crop_job(at=0, padding=0)
    empty = dataclasses.replace(job, mask=raw_image(60, 60, "l8", bytes(60 * 60)))
    error = refused(empty)
    assert "selects nothing" in error.message and "100x100" in error.message
    check_job(dataclasses.replace(empty, crop=Crop(0, 0, 60, 60)), CAPS)  # the whole canvas: checked later by the mode


def test_crops_outside_their_canvas_are_refused_when_read() -> None:
    from paintwire.protocol import Submit, decode_client_message, encode

    for crop in (Crop(50, 10, 100, 100), Crop(0, 45, 100, 100)):
        with pytest.raises(ProtocolError) as info:
            decode_client_message(encode(Submit(3, crop_job(crop=crop))))
        assert (info.value.code, info.value.ref) == (ErrorCode.BAD_CROP, 3) and "outside" in info.value.message
    wire = Submit(3, crop_job()).to_wire()
    for bad in ({"x": -1, "y": 0, "canvas_width": 10, "canvas_height": 10}, {"x": 0, "y": 0, "canvas_width": 0, "canvas_height": 10},
                {"x": 0, "y": True, "canvas_width": 10, "canvas_height": 10}, {"x": 0}, [1, 2]):
        wire["job"]["crop"] = bad
        with pytest.raises(ProtocolError) as info:
            from paintwire.protocol.messages import Submit as S
            S.from_wire(wire)
        assert info.value.code is ErrorCode.BAD_CROP
    no_image = {"type": "submit", "ref": 1, "job": {"engine": "classical", "mode": "inpaint", "crop": Crop(0, 0, 5, 5).to_wire()}}
    with pytest.raises(ProtocolError) as info:
        S.from_wire(no_image)
    assert info.value.code is ErrorCode.BAD_CROP


def snapshot(width: int = 300, height: int = 200, area: Rect | None = None) -> tuple[Snapshot, np.ndarray, np.ndarray]:
    image = np.random.default_rng(1).integers(0, 255, (height, width, 4), np.uint8)
    selection = np.zeros((height, width), np.uint8)
    selection[100:120, 150:180] = 255
    box = area or Rect(0, 0, width, height)
    part = (slice(box.y, box.bottom), slice(box.x, box.right))
    snap = Snapshot(width, height, np.ascontiguousarray(image[part]).tobytes(), PixelFormat.RGBA8,
                    np.ascontiguousarray(selection[part]).tobytes(), area=area)
    return snap, image, selection


def test_the_host_kit_sends_only_what_the_mode_reads() -> None:
    snap, image, selection = snapshot()
    settings = JobSettings("inpaint", "classical", None, {"padding": 10})
    request = build_request(snap, CAPS, settings)
    assert request.crop == Crop(138, 88, 300, 200)  # the selection, padding 10 and the slack of 2
    assert (request.image.width, request.image.height) == (54, 44)
    assert bytes(request.image.data) == image[88:132, 138:192].tobytes()
    assert bytes(request.mask.data) == selection[88:132, 138:192].tobytes()
    check_job(request, CAPS)
    # Modes and parameters that read everything get everything, without a crop.
    assert build_request(snap, CAPS, JobSettings("upscale", "classical")).crop is None
    assert build_request(snap, CAPS, dataclasses.replace(settings, params={"invert_mask": True})).crop is None


def test_a_document_read_only_where_the_job_needs_it() -> None:
    settings = JobSettings("inpaint", "classical", None, {"padding": 10})
    area = read_area(CAPS, settings, 300, 200, Rect(150, 100, 30, 20))
    assert area == Rect(138, 88, 54, 44)
    full = build_request(snapshot()[0], CAPS, settings)
    part = build_request(snapshot(area=area)[0], CAPS, settings)
    assert part == full
    assert read_area(CAPS, settings, 300, 200, None) == Rect(0, 0, 300, 200)  # nothing selected: the whole canvas
    with pytest.raises(ValueError):  # read too little for what the job reads: a host bug, said plainly
        build_request(snapshot(area=Rect(140, 90, 50, 40))[0], CAPS, settings)
