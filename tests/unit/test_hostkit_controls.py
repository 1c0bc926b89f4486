"""paintwire.hostkit.controls: control layers from the panels' lists to job.controls."""

from __future__ import annotations

import json
import re

import pytest

from paintwire.hostkit import controls as kc
from paintwire.hostkit.controls import ControlLayer
from paintwire.hostkit.request import JobSettings, build_request
from paintwire.hostkit.snapshot import Snapshot
from paintwire.protocol import (
    Capabilities, EngineInfo, ImagePayload, InputKind, InputSpec, JobRequest, Limits, ModeSpec, ParamSpec, ParamType, PixelFormat,
    ProtocolError, Rect, check_job,
)
from paintwire.protocol.controls import MAX_CONTROLS, ControlKindSpec

W, H = 6, 4
THRESHOLD = ParamSpec("low_threshold", ParamType.INT, 100, "Low threshold", "Edges weaker than this are dropped.", minimum=1, maximum=255)
CANNY = ControlKindSpec("canny", "Canny edges", "Edges of a picture.", ("canny", "none"), (THRESHOLD,))
LINEART = ControlKindSpec("lineart", "Line art", "Clean lines.", ("lineart", "none"))
DEPTH = ControlKindSpec("depth", "Depth", "A depth map.", ("none",), problem="No depth ControlNet: add one to models/controlnet.")
KINDS = (DEPTH, CANNY, LINEART)
IMAGE = InputSpec(InputKind.IMAGE)
CONTROL = InputSpec(InputKind.CONTROL, required=False)
GENERATE = ModeSpec("txt2img", "Generate", "", inputs=(CONTROL,), params=(
    ParamSpec("width", ParamType.INT, 0, "Width", "", minimum=0, maximum=4096),
    ParamSpec("height", ParamType.INT, 0, "Height", "", minimum=0, maximum=4096),
))
REFINE = ModeSpec("img2img", "Refine", "", inputs=(IMAGE, CONTROL))
UPSCALE = ModeSpec("upscale", "Upscale", "", inputs=(IMAGE,))
ENGINE = EngineInfo("guided", "Guided", (GENERATE, REFINE, UPSCALE), controls=KINDS)
CAPS = Capabilities((ENGINE,), (), Limits(1 << 26, 1 << 24, 4096, 4))


def pixels(value: int) -> ImagePayload:
    return ImagePayload(W, H, PixelFormat.BGRA8, bytes([value]) * (W * H * 4))


def test_a_control_round_trips_and_scripts_get_a_sentence_for_each_mistake():
    control = ControlLayer("Lines", "lineart", 0.8, 0.1, 0.6, "none", {"x": 1}, enabled=False)
    assert kc.controls_from_json(kc.controls_to_json([control])) == [control]
    assert kc.controls_from_json('[{"layer": "L", "kind": "canny"}]') == [ControlLayer("L", "canny")]
    assert kc.controls_from_json("  ") == []
    for text, words in (
        ("{broken", "not valid JSON"),
        ('{"layer": "L"}', "must be a JSON list"),
        ('[{"kind": "canny"}]', "controls[0].layer must be a non-empty string"),
        ('[{"layer": "L", "kind": "canny", "strenght": 1}]', "unknown fields strenght"),
        ('[{"layer": "L", "kind": "canny", "strength": "high"}]', "strength must be a number"),
        ('[{"layer": "L", "kind": "canny", "strength": 3}]', "strength must be between 0 and 2"),
        ('[{"layer": "L", "kind": "canny", "start": 0.7, "end": 0.5}]', "0 <= start < end <= 1"),
        ('[{"layer": "L", "kind": "canny", "params": [1]}]', "params must be an object"),
        (json.dumps([{"layer": "L", "kind": "canny"}] * (MAX_CONTROLS + 1)), f"at most {MAX_CONTROLS}"),
    ):
        with pytest.raises(ValueError, match=re.escape(words)):
            kc.controls_from_json(text)


def test_a_stored_list_keeps_what_it_can_read():
    text = json.dumps([{"layer": "A", "kind": "canny"}, {"layer": "B"}, "junk", {"layer": "C", "kind": "depth", "end": 0.5}])
    assert [c.layer for c in kc.stored_controls(text)] == ["A", "C"]
    assert kc.stored_controls("not json") == [] and kc.stored_controls('{"a": 1}') == []


def test_add_starts_from_the_kind_added_last_else_the_first_the_server_can_run():
    assert kc.new_control(KINDS, "Lines") == ControlLayer("Lines", "canny")  # depth has a problem: skipped
    assert kc.new_control(KINDS, "More", ControlLayer("Lines", "lineart", 0.5)).kind == "lineart"
    assert kc.new_control(KINDS, "More", ControlLayer("Lines", "gone")).kind == "canny"
    assert kc.new_control((DEPTH,), "Lines").kind == "depth"  # only kinds with a problem: shown, with the problem
    with pytest.raises(ValueError, match="offers no control layers"):
        kc.new_control((), "Lines")


def test_the_kinds_come_from_the_engine_and_modes_say_whether_they_take_controls():
    assert kc.control_kinds(CAPS, "guided") == KINDS
    assert kc.control_kinds(CAPS, "other") == () and kc.control_kinds(None, "guided") == ()
    assert kc.accepts_controls(GENERATE) and kc.accepts_controls(REFINE)
    assert not kc.accepts_controls(UPSCALE) and not kc.accepts_controls(None)


def test_what_goes_with_a_job_and_why_not():
    lines = ControlLayer("Lines", "lineart")
    off = ControlLayer("Edges", "canny", enabled=False)
    assert kc.controls_for_job(REFINE, KINDS, [lines, off], ["Lines", "Edges"]) == [lines]
    assert kc.controls_for_job(UPSCALE, KINDS, [lines], ["Lines"]) == []  # the list is kept for modes that take it
    for control, layers, words in (
        (ControlLayer("Lines", "pose"), ["Lines"], "no control kind 'pose' here; it offers: depth, canny, lineart"),
        (ControlLayer("Lines", "depth"), ["Lines"], "No depth ControlNet: add one to models/controlnet."),
        (ControlLayer("Lines", "lineart", preprocessor="canny"), ["Lines"], "no preprocessor 'canny'; choose one of: lineart, none"),
        (ControlLayer("Gone", "lineart"), ["Lines"], "layer 'Gone' is gone"),
        (ControlLayer("Lines", "lineart", start=0.5, end=0.5), ["Lines"], "0 <= start < end <= 1"),
    ):
        with pytest.raises(ValueError, match=re.escape(words)):
            kc.controls_for_job(REFINE, KINDS, [lines, control], layers)
    with pytest.raises(ValueError, match="Control layer 2 \\(Gone\\)"):
        kc.controls_for_job(REFINE, KINDS, [lines, ControlLayer("Gone", "lineart")], ["Lines"])
    with pytest.raises(ValueError, match="Upscale takes no control layers"):
        kc.check_for_script(UPSCALE, KINDS, [lines], ["Lines"])
    kc.check_for_script(UPSCALE, KINDS, [], ["Lines"])


def test_controls_travel_at_the_jobs_geometry_and_pass_the_servers_checks():
    snapshot = Snapshot(W, H, bytes(W * H * 4), PixelFormat.BGRA8)
    reads = []

    def read(control, region):
        assert region == Rect(0, 0, W, H)
        reads.append(control.layer)
        return pixels(len(reads))

    chosen = [ControlLayer("Lines", "lineart", 0.7, 0.0, 0.5), ControlLayer("Edges", "canny", params={"low_threshold": 40, "gone": 1})]
    request = build_request(snapshot, CAPS, JobSettings("img2img", "guided"))
    job = kc.with_controls(request, KINDS, chosen, read, (W, H))
    assert reads == ["Lines", "Edges"]
    first, second = job.controls
    assert (first.kind, first.strength, first.start, first.end, first.preprocessor, first.model) == ("lineart", 0.7, 0.0, 0.5, "lineart", None)
    assert first.image == pixels(1)
    assert (second.preprocessor, dict(second.params)) == ("canny", {"low_threshold": 40})  # unknown names dropped
    checked = check_job(JobRequest.from_wire(job.to_wire()), CAPS)  # what the server will accept
    assert [c.preprocessor for c in checked.controls] == ["lineart", "canny"]
    assert kc.with_controls(request, KINDS, [], read, (W, H)) is request


def test_a_job_without_pixels_takes_canvas_sized_controls_and_a_wrong_size_is_caught():
    request = build_request(Snapshot.blank(W, H), CAPS, JobSettings("txt2img", "guided"))
    assert request.image is None
    job = kc.with_controls(request, KINDS, [ControlLayer("Lines", "lineart")], lambda c, r: pixels(9), (W, H))
    assert (job.controls[0].image.width, job.controls[0].image.height) == (W, H)
    small = ImagePayload(2, 2, PixelFormat.BGRA8, bytes(16))
    with pytest.raises(ProtocolError, match="read at 2x2; the job is 6x4"):
        kc.with_controls(request, KINDS, [ControlLayer("Lines", "lineart")], lambda c, r: small, (W, H))


def test_a_control_image_is_cut_to_the_jobs_region():
    canvas = ImagePayload(4, 3, PixelFormat.L8, bytes(range(12)))
    assert kc.crop_image(canvas, Rect(1, 1, 2, 2)).data == bytes([5, 6, 9, 10])
    assert kc.crop_image(canvas, Rect(0, 0, 4, 3)) is canvas
    rgba = ImagePayload(2, 2, PixelFormat.RGBA8, bytes(range(16)))
    assert kc.crop_image(rgba, Rect(1, 0, 1, 2)).data == bytes([4, 5, 6, 7, 12, 13, 14, 15])


def test_a_cropped_job_takes_its_controls_from_the_same_part_of_the_canvas():
    from paintwire.protocol.crops import Crop

    crop = ImagePayload(2, 2, PixelFormat.BGRA8, bytes(16))
    request = JobRequest("guided", "img2img", image=crop, crop=Crop(3, 1, W, H))
    assert kc.job_region(request, (W, H)) == Rect(3, 1, 2, 2)
    seen = []
    job = kc.with_controls(request, KINDS, [ControlLayer("Lines", "lineart")], lambda c, r: seen.append(r) or kc.crop_image(pixels(5), r), (W, H))
    assert seen == [Rect(3, 1, 2, 2)] and (job.controls[0].image.width, job.controls[0].image.height) == (2, 2)
