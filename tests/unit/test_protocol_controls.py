"""Control layers on the wire: ControlKindSpec and ControlInput, the checks of
job.controls against an engine's published kinds, and the preprocess exchange
in both sans-I/O state machines. Frames are real bytes from the codec."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from paintwire.protocol import (
    MAX_CONTROLS,
    Capabilities,
    ClientConnection,
    ConnectionState,
    ControlInput,
    ControlKindSpec,
    EngineInfo,
    Error,
    ErrorCode,
    ImagePayload,
    InputKind,
    InputSpec,
    JobRequest,
    Limits,
    ModelInfo,
    ModeSpec,
    ParamSpec,
    ParamType,
    PixelFormat,
    Preprocess,
    Preprocessed,
    ProtocolError,
    ServerConnection,
    Welcome,
    check_job,
    decode_client_message,
    encode,
)
from paintwire.protocol.messages import Hello, Submit

THRESHOLD = ParamSpec("low_threshold", ParamType.INT, 100, "Low threshold", "", minimum=0, maximum=255)
CANNY = ControlKindSpec("canny", "Canny edges", "Edges.", ("canny", "none"), (THRESHOLD,))
DEPTH = ControlKindSpec("depth", "Depth", "", ("none",), (), "Put a depth ControlNet (.safetensors) into models/controlnet/.")
TXT2IMG = ModeSpec("txt2img", "Generate", "", inputs=(InputSpec(InputKind.CONTROL, required=False),))
IMG2IMG = ModeSpec("img2img", "Refine", "", inputs=(InputSpec(InputKind.IMAGE), InputSpec(InputKind.CONTROL, required=False)))
UPSCALE = ModeSpec("upscale", "Upscale", "", inputs=(InputSpec(InputKind.IMAGE),))
CAPS = Capabilities(
    engines=(EngineInfo("diffusers", "Diffusers", (TXT2IMG, IMG2IMG, UPSCALE), controls=(CANNY, DEPTH)),),
    models=(ModelInfo("sd15", "diffusers", "sd15"), ModelInfo("cn-canny", "diffusers", "controlnet")),
    limits=Limits(max_message_bytes=1 << 20, max_pixels=1 << 16, max_side=64, max_queued_per_client=4),
)


def rgba(w: int, h: int) -> ImagePayload:
    return ImagePayload(w, h, PixelFormat.RGBA8, bytes(w * h * 4))


def control(**over: Any) -> ControlInput:
    values: dict[str, Any] = {"kind": "canny", "image": rgba(4, 4)}
    values.update(over)
    return ControlInput(**values)


def refused(job: JobRequest, code: ErrorCode, field: str) -> str:
    with pytest.raises(ProtocolError) as info:
        check_job(job, CAPS)
    assert (info.value.code, info.value.field) == (code, field), str(info.value)
    return info.value.message


def test_a_valid_control_is_checked_and_filled_in() -> None:
    checked = check_job(JobRequest("diffusers", "img2img", rgba(4, 4), controls=(control(), control(preprocessor="none", params={"low_threshold": 7}))), CAPS)
    assert [c.preprocessor for c in checked.controls] == ["canny", "none"]  # the kind's first is the default
    assert [c.params for c in checked.controls] == [{"low_threshold": 100}, {"low_threshold": 7}]


def test_txt2img_takes_a_control_image_of_any_size() -> None:
    assert len(check_job(JobRequest("diffusers", "txt2img", controls=(control(image=rgba(5, 3)),)), CAPS).controls) == 1


@pytest.mark.parametrize("over, code, field, words", [
    ({"kind": "pose"}, ErrorCode.INVALID_PARAM, "job.controls.0.kind", "takes: canny, depth"),
    ({"kind": "depth"}, ErrorCode.UNKNOWN_MODEL, "job.controls.0.kind", "models/controlnet/"),
    ({"model": "nope"}, ErrorCode.UNKNOWN_MODEL, "job.controls.0.model", "'nope'"),
    ({"preprocessor": "scribble"}, ErrorCode.INVALID_PARAM, "job.controls.0.preprocessor", "offers: canny, none"),
    ({"strength": 2.5}, ErrorCode.INVALID_PARAM, "job.controls.0.strength", "between 0 and 2"),
    ({"strength": -0.1}, ErrorCode.INVALID_PARAM, "job.controls.0.strength", "between 0 and 2"),
    ({"strength": float("nan")}, ErrorCode.INVALID_PARAM, "job.controls.0.strength", "between"),
    ({"end": 1.5}, ErrorCode.INVALID_PARAM, "job.controls.0.end", "between 0 and 1"),
    ({"start": 0.6, "end": 0.4}, ErrorCode.INVALID_PARAM, "job.controls.0.start", "below its end"),
    ({"start": 0.5, "end": 0.5}, ErrorCode.INVALID_PARAM, "job.controls.0.start", "below its end"),
    ({"image": rgba(4, 3)}, ErrorCode.BAD_IMAGE, "job.controls.0.image", "4x3 but the image is 4x4"),
    ({"params": {"high": 1}}, ErrorCode.INVALID_PARAM, "job.controls.0.params.high", "Unknown parameter"),
    ({"params": {"low_threshold": 300}}, ErrorCode.INVALID_PARAM, "job.controls.0.params.low_threshold", "at most 255"),
])
def test_bad_controls_are_refused_with_a_sentence(over: dict, code: ErrorCode, field: str, words: str) -> None:
    assert words in refused(JobRequest("diffusers", "img2img", rgba(4, 4), controls=(control(**over),)), code, field)


def test_a_control_image_over_the_max_side_is_too_large() -> None:
    refused(JobRequest("diffusers", "txt2img", controls=(control(image=rgba(65, 2)),)), ErrorCode.TOO_LARGE, "job.controls.0.image")


def test_a_mode_without_a_control_input_refuses_controls() -> None:
    refused(JobRequest("diffusers", "upscale", rgba(4, 4), controls=(control(),)), ErrorCode.INVALID_PARAM, "job.controls")


def test_the_second_control_is_named_in_the_field() -> None:
    refused(JobRequest("diffusers", "img2img", rgba(4, 4), controls=(control(), control(kind="x"))), ErrorCode.INVALID_PARAM, "job.controls.1.kind")


# --- the wire ---------------------------------------------------------------------------


def submit_frame(controls: Any) -> bytes:
    job = JobRequest("diffusers", "txt2img").to_wire()
    job["controls"] = controls
    return msgpack.packb({"type": "submit", "ref": 3, "job": job}, use_bin_type=True)


def test_no_controls_leaves_the_key_out() -> None:
    assert "controls" not in JobRequest("e", "m").to_wire()
    assert "controls" not in EngineInfo("e", "E", ()).to_wire()


def test_nil_controls_mean_none() -> None:
    assert decode_client_message(submit_frame(None)).job.controls == ()


@pytest.mark.parametrize("controls, code, field", [
    ("canny", ErrorCode.BAD_MESSAGE, "job.controls"),
    ([5], ErrorCode.BAD_MESSAGE, "job.controls.0"),
    ([{"image": rgba(1, 1).to_wire()}], ErrorCode.BAD_MESSAGE, "job.controls.0.kind"),
    ([{"kind": "canny"}], ErrorCode.BAD_MESSAGE, "job.controls.0.image"),
    ([{"kind": "canny", "image": {"width": 1}}], ErrorCode.BAD_IMAGE, "job.controls.0.image.height"),
    ([{"kind": "canny", "image": rgba(1, 1).to_wire(), "strength": "x"}], ErrorCode.BAD_MESSAGE, "job.controls.0.strength"),
    ([{"kind": "canny", "image": rgba(1, 1).to_wire(), "strength": True}], ErrorCode.BAD_MESSAGE, "job.controls.0.strength"),
    ([{"kind": "canny", "image": rgba(1, 1).to_wire(), "params": {1: 2}}], ErrorCode.BAD_MESSAGE, "job.controls.0.params"),
    ([{"kind": "canny", "image": rgba(1, 1).to_wire()}] * (MAX_CONTROLS + 1), ErrorCode.INVALID_PARAM, "job.controls"),
])
def test_malformed_controls_are_refused_with_the_submits_ref(controls: Any, code: ErrorCode, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(submit_frame(controls))
    assert (info.value.code, info.value.field, info.value.ref) == (code, field, 3)


def test_control_pixels_count_against_max_pixels() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(submit_frame([{"kind": "canny", "image": rgba(8, 8).to_wire()}]), max_pixels=63)
    assert (info.value.code, info.value.field) == (ErrorCode.TOO_LARGE, "job.controls.0.image")


def test_a_bad_preprocess_is_refused_with_its_ref() -> None:
    frame = msgpack.packb({"type": "preprocess", "ref": 11, "engine": "diffusers", "control": {"kind": "canny"}}, use_bin_type=True)
    with pytest.raises(ProtocolError) as info:
        decode_client_message(frame)
    assert (info.value.field, info.value.ref) == ("control.image", 11)


def test_a_newer_servers_control_kind_fields_are_ignored() -> None:
    wire = CANNY.to_wire() | {"icon": "edges.svg"}
    assert ControlKindSpec.from_wire(wire) == CANNY
    assert ControlKindSpec.from_wire({"name": "glow"}) == ControlKindSpec("glow", "glow")


# --- the preprocess exchange --------------------------------------------------------------


def ready_pair() -> tuple[ClientConnection, ServerConnection]:
    client, server = ClientConnection(), ServerConnection()
    assert isinstance(server.receive(client.hello("test/1")), Hello)
    client.receive(server.accept(Welcome("paintwire/test", CAPS)))
    assert client.state is ConnectionState.READY
    return client, server


def test_preprocess_round_trip_through_both_ends() -> None:
    client, server = ready_pair()
    ref, frame = client.preprocess("diffusers", control(preprocessor="none"))
    message = server.receive(frame)
    assert message == Preprocess(ref, "diffusers", control(preprocessor="none"))
    answer = Preprocessed(ref, ImagePayload(4, 4, PixelFormat.L8, bytes(16)))
    assert client.receive(server.send(answer)) == answer
    with pytest.raises(ProtocolError):  # a second answer to the same ref is a broken server
        client.receive(encode(answer))
    assert client.state is ConnectionState.ERROR


def test_preprocess_and_submit_refs_never_collide() -> None:
    client, _ = ready_pair()
    first, _ = client.preprocess("diffusers", control())
    second, _ = client.submit(JobRequest("diffusers", "txt2img"))
    assert first != second


def test_an_error_ends_a_preprocess() -> None:
    client, server = ready_pair()
    ref, _ = client.preprocess("diffusers", control())
    client.receive(server.send(Error(ErrorCode.INVALID_PARAM, "No.", "control.kind", None, ref)))
    with pytest.raises(ProtocolError):  # the ref is over: an answer now is unasked for
        client.receive(encode(Preprocessed(ref, rgba(1, 1))))


def test_an_unasked_preprocessed_is_a_broken_server() -> None:
    client, _ = ready_pair()
    with pytest.raises(ProtocolError):
        client.receive(encode(Preprocessed(99, rgba(1, 1))))
    assert client.state is ConnectionState.ERROR


def test_submit_with_controls_survives_the_codec() -> None:
    job = JobRequest("diffusers", "img2img", rgba(4, 4), controls=(control(strength=0.0, start=0.25, end=0.75, model="cn-canny"),))
    assert decode_client_message(encode(Submit(1, job))).job == job
