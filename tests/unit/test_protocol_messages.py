"""Messages, images and the msgpack codec: round trips and every way a frame is refused.

Everything goes through real bytes: messages are encoded with the codec (or
hand-built maps packed with msgpack, for what a well-behaved encoder would never
write) and read back with decode_client_message / decode_server_message.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paintwire.protocol.live import LiveApply, LiveError, LiveFrame, LiveStart, LiveStarted, LiveState, LiveStop, LiveStopped
from paintwire.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    Cancelled,
    Capabilities,
    CapabilitiesUpdate,
    ControlInput,
    ControlKindSpec,
    EngineInfo,
    Error,
    ErrorCode,
    Hello,
    ImagePayload,
    JobRequest,
    Layer,
    Limits,
    ModelInfo,
    ModeSpec,
    ParamSpec,
    ParamType,
    Phase,
    PixelFormat,
    Preprocess,
    Preprocessed,
    Preview,
    Progress,
    ProtocolError,
    Queued,
    Recall,
    Rescan,
    Result,
    Started,
    Submit,
    Welcome,
    decode_client_message,
    decode_server_message,
    encode,
    raw_image,
)
from paintwire.protocol.images import ABSOLUTE_MAX_SIDE, PNG_SIGNATURE, Encoding, png_size
from paintwire.protocol.messages import CLIENT_MESSAGES, MAX_JOB_ID, MAX_NAME, SERVER_MESSAGES

# --- helpers -----------------------------------------------------------------------------------


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def png_file(width: int, height: int) -> bytes:
    """A real, decodable RGBA PNG of the given size (standard library only)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x10\x20\x30\xff" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def rgba(width: int, height: int, fill: int = 0) -> ImagePayload:
    return ImagePayload(width, height, PixelFormat.RGBA8, bytes([fill]) * (width * height * 4))


def l8(width: int, height: int) -> ImagePayload:
    return ImagePayload(width, height, PixelFormat.L8, bytes(width * height))


def image_wire(width: int = 2, height: int = 2, fmt: str = "rgba8", **over: Any) -> dict:
    channels = 1 if fmt == "l8" else 4
    wire = {"width": width, "height": height, "format": fmt, "encoding": "raw", "data": bytes(width * height * channels)}
    wire.update(over)
    return wire


def submit_wire(ref: Any = 5, **job: Any) -> dict:
    body = {"engine": "classical", "mode": "inpaint", "image": image_wire(), "mask": image_wire(fmt="l8")}
    body.update(job)
    return {"type": "submit", "ref": ref, "job": body}


def refused(data: Any, code: ErrorCode, field: str | None, *, server: bool = False, max_pixels: int | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        if server:
            decode_server_message(data)
        else:
            decode_client_message(data, max_pixels)
    assert info.value.code is code, f"expected {code.value}, got {info.value}"
    assert info.value.field == field, f"expected field {field!r}, got {info.value}"
    assert info.value.message  # always a sentence for people
    return info.value


# --- round trips ---------------------------------------------------------------------------------

PARAMS = (
    ParamSpec("prompt", ParamType.STRING, "", "Prompt", "What to paint."),
    ParamSpec("steps", ParamType.INT, 20, "Steps", "Denoising steps.", minimum=1, maximum=150),
    ParamSpec("strength", ParamType.FLOAT, 0.75, "Strength", "How much to change.", minimum=0.0, maximum=1.0),
    ParamSpec("tile", ParamType.BOOL, False, "Tile", "Seamless tiling.", group="advanced"),
    ParamSpec("sampler", ParamType.CHOICE, "euler", "Sampler", "", choices=("euler", "ddim")),
    ParamSpec("seed", ParamType.SEED, -1, "Seed", "-1 picks one."),
    ParamSpec("vae", ParamType.STRING, None, "VAE", "Optional override."),
)
CAPS = Capabilities(
    engines=(
        EngineInfo("diffusers", "Diffusers", (
            ModeSpec("txt2img", "Generate", "From the prompt.", needs_image=False, needs_mask=False, params=PARAMS, accepts_mask=False),
            ModeSpec("inpaint", "Inpaint", "Fill the mask.", needs_image=True, needs_mask=True, params=PARAMS, accepts_mask=True),
            ModeSpec("img2img", "Refine", "Rework.", needs_image=True, needs_mask=False, params=PARAMS[:3], accepts_mask=True),
        )),
        EngineInfo("classical", "Classical (no model)", ()),
    ),
    models=(ModelInfo("sd15", "diffusers", "sd15", "SD 1.5"), ModelInfo("opencv", "classical", "builtin", "OpenCV")),
    limits=Limits(max_message_bytes=1 << 24, max_pixels=4096 * 4096, max_side=4096, max_queued_per_client=8),
)
LAYER = Layer(rgba(2, 1, 7), 3, 4, "Inpaint", 123456, {"engine": "diffusers", "steps": 20, "strength": 0.5, "loras": ["a", "b"], "tile": False})

MESSAGES: list[Any] = [
    Hello("paintwire-krita/0.1.0"),
    Hello("demo/1.0", PROTOCOL_VERSION, "s3cret"),
    Submit(1, JobRequest("diffusers", "txt2img", params={"prompt": "a fox", "steps": 4})),
    Submit(2, JobRequest("diffusers", "inpaint", rgba(3, 2), l8(3, 2), "sd15", {"strength": 0.5, "tile": True}, PixelFormat.BGRA8)),
    Submit(3, JobRequest("diffusers", "img2img", ImagePayload(3, 2, PixelFormat.BGRA8, bytes(24)))),
    Submit(4, JobRequest("classical", "inpaint", ImagePayload(2, 3, PixelFormat.RGBA8, png_file(2, 3), Encoding.PNG),
                         ImagePayload(2, 3, PixelFormat.L8, png_file(2, 3), Encoding.PNG))),
    Submit(2**53 - 1, JobRequest("e", "m")),
    Submit(0, JobRequest("e", "m")),
    Cancel("5f0c1e9a7b3d2c41"),
    Cancel("x" * MAX_JOB_ID),
    Hello("demo/1.0", PROTOCOL_VERSION, None, updates=True),
    Rescan(),
    Welcome("paintwire/0.1.0", CAPS),
    Welcome("paintwire/0.1.0", Capabilities((), (), CAPS.limits)),
    CapabilitiesUpdate(CAPS),
    CapabilitiesUpdate(Capabilities((), (ModelInfo("broken", "diffusers", "sd15", "broken", "its tokenizer is missing"),), CAPS.limits)),
    Queued("j1", 1, 0),
    Queued("j1", 2**53 - 1, 255),
    Started("j1"),
    Progress("j1", 0, 1),
    Progress("j1", 3, 20, "decoding"),
    Progress("j1", 3, 20, "denoising", "denoising", 0.25),
    Progress("j1", 0, 1, "loading model", "loading_model", 0.0),
    Preview("j1", rgba(4, 4, 9), 10, 20, 64, 64),
    Preview("j1", rgba(1, 1)),
    Result("j1", (LAYER,), 8, 8),
    Result("j1", (LAYER, Layer(ImagePayload(1, 1, PixelFormat.BGRA8, b"\x01\x02\x03\x04"), 0, 0, "second")), 16, 9),
    Result("j1", (), 1, 1),
    Error(ErrorCode.BAD_FRAME, "Send binary frames."),
    Error(ErrorCode.INVALID_PARAM, "steps must be at most 150, got 999.", "job.params.steps", None, 7),
    Error(ErrorCode.ENGINE_FAILED, "The engine failed.", None, "j1"),
    Cancelled("j1"),
    Recall(3, {"engine": "diffusers", "mode": "txt2img", "params": {"prompt": "a cat", "seed": 7}}, "/api/history/3/image", 64, 64),
    Recall(4),
    # Live streams (protocol/live.py; more in test_protocol_live.py).
    LiveStart(1, "diffusers", "img2img", "sd15", {"prompt": "a fox", "seed": -1}, PixelFormat.BGRA8),
    LiveState(1, 7, rgba(3, 2), l8(3, 2), 10, 20, {"strength": 0.4}),
    LiveStop(1),
    LiveApply(1, 9),
    LiveStarted(1, 42, 4),
    LiveFrame(1, 7, rgba(3, 2), 10, 20, 3, 42, 12.5, 10.25),
    LiveError(1, ErrorCode.BAD_IMAGE, "Bad pixels.", 7, "image.data"),
    LiveStopped(1, "requested"),
    Submit(9, JobRequest("diffusers", "txt2img", controls=(
        ControlInput("canny", rgba(3, 2), "cn-canny", 0.5, 0.1, 0.8, "canny", {"low_threshold": 50}),
        ControlInput("reference", ImagePayload(3, 2, PixelFormat.BGRA8, bytes(24))),
    ))),
    Preprocess(10, "diffusers", ControlInput("scribble", l8(2, 2), preprocessor="none")),
    Preprocessed(10, l8(2, 2)),
    Welcome("paintwire/0.1.0", Capabilities((EngineInfo("diffusers", "Diffusers", (), controls=(
        ControlKindSpec("canny", "Canny edges", "Edges.", ("canny", "none"), PARAMS[1:2]),
        ControlKindSpec("depth", "Depth", "", ("none",), (), "Put a depth ControlNet into models/controlnet."),
    )),), (), CAPS.limits)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{m.TYPE}")
def test_round_trip(message: Any) -> None:
    data = encode(message)
    assert isinstance(data, bytes)
    decode = decode_client_message if message.TYPE in CLIENT_MESSAGES else decode_server_message
    assert decode(data) == message
    assert encode(decode(data)) == data


def test_every_message_type_is_round_tripped() -> None:
    assert {m.TYPE for m in MESSAGES} == set(CLIENT_MESSAGES) | set(SERVER_MESSAGES)


def test_the_wire_form_is_a_plain_map_with_str_and_bin() -> None:
    message = MESSAGES[3]
    raw = msgpack.unpackb(encode(message), raw=True)  # raw=True: str stays apart from bin
    assert raw[b"type"] == b"submit"
    assert isinstance(raw[b"job"][b"image"][b"data"], bytes)
    packed = encode(message)
    # bin 8/16/32 markers carry the pixels; the names are fixstr (0xa0-0xbf).
    assert b"\xc4\x18" + bytes(24) in packed  # bin8, 24 bytes: the 3x2 rgba8 image
    assert b"\xc4\x06" + bytes(6) in packed  # bin8, 6 bytes: its l8 mask
    assert packed.startswith(b"\x83\xa4type\xa6submit")


def test_defaults_are_written_explicitly() -> None:
    wire = msgpack.unpackb(encode(Hello("x")), raw=False)
    assert wire == {"type": "hello", "protocol": PROTOCOL_VERSION, "client": "x", "token": None}
    job = msgpack.unpackb(encode(Submit(1, JobRequest("e", "m"))), raw=False)["job"]
    assert job == {"engine": "e", "mode": "m", "model": None, "image": None, "mask": None, "params": {}, "output_format": "rgba8"}


def test_capability_defaults_are_read_as_documented() -> None:
    mode = ModeSpec.from_wire({"name": "m"})
    assert (mode.label, mode.help, mode.needs_image, mode.needs_mask, mode.mask_allowed, mode.params) == ("m", "", True, False, False, ())
    assert ModeSpec("m", "M", "", True, True).to_wire()["accepts_mask"] is True
    assert ModeSpec("m", "M", "", True, False, accepts_mask=True).mask_allowed is True
    spec = ParamSpec.from_wire({"name": "p", "type": "int"})
    assert (spec.default, spec.label, spec.help, spec.group, spec.minimum, spec.maximum, spec.choices) == (None, "p", "", "basic", None, None, ())
    assert set(ParamSpec("p", ParamType.INT, 1, "P", "").to_wire()) == {"name", "type", "default", "label", "help", "group"}
    assert ModelInfo("m", "e", "sd15").to_wire()["label"] == "m"
    assert EngineInfo.from_wire({"name": "e"}) == EngineInfo("e", "e", ())
    assert Capabilities.from_wire({"limits": CAPS.limits.to_wire()}).engines == ()


def test_readers_ignore_unknown_keys() -> None:
    wire = Queued("j1", 1, 2).to_wire() | {"eta_seconds": 12.5, "future": {"nested": [1, 2]}}
    assert decode_server_message(pack(wire)) == Queued("j1", 1, 2)
    hello = Hello("c").to_wire() | {"features": ["x"]}
    assert decode_client_message(pack(hello)) == Hello("c")
    sub = submit_wire()
    sub["job"]["image"]["colorspace"] = "srgb"
    assert isinstance(decode_client_message(pack(sub)), Submit)


def test_frames_may_be_bytearray_or_memoryview() -> None:
    data = encode(Cancel("j1"))
    assert decode_client_message(bytearray(data)) == Cancel("j1")
    assert decode_client_message(memoryview(data)) == Cancel("j1")


def test_nil_optional_fields_read_as_absent() -> None:
    wire = submit_wire(model=None, params=None, output_format=None)
    wire["job"]["image"]["encoding"] = None
    job = decode_client_message(pack(wire)).job
    assert (job.model, dict(job.params), job.output_format, job.image.encoding) == (None, {}, PixelFormat.RGBA8, Encoding.RAW)
    no_encoding = submit_wire()
    del no_encoding["job"]["image"]["encoding"]
    assert decode_client_message(pack(no_encoding)).job.image.encoding is Encoding.RAW
    assert decode_server_message(pack({"type": "progress", "job": "j", "step": 1, "total": 2, "stage": None})).stage == ""
    preview = decode_server_message(pack({"type": "preview", "job": "j", "image": image_wire(), "x": None}))
    assert (preview.x, preview.y, preview.width, preview.height) == (0, 0, 0, 0)


@settings(max_examples=150, deadline=None)
@given(
    job=st.text(min_size=1, max_size=MAX_JOB_ID),
    ref=st.integers(0, 2**53 - 1),
    position=st.integers(0, 2**31),
    step=st.integers(0, 10_000),
    stage=st.text(max_size=40),
    message=st.text(max_size=200),
    code=st.sampled_from(list(ErrorCode)),
)
def test_round_trip_property(job: str, ref: int, position: int, step: int, stage: str, message: str, code: ErrorCode) -> None:
    for m in (Queued(job, ref, position), Started(job), Progress(job, step, step + 1, stage), Cancelled(job), Error(code, message, stage or None, job, ref)):
        assert decode_server_message(encode(m)) == m
    assert decode_client_message(encode(Cancel(job))) == Cancel(job)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 24), height=st.integers(1, 24), fmt=st.sampled_from([PixelFormat.RGBA8, PixelFormat.BGRA8]),
    seed=st.one_of(st.none(), st.integers(0, 2**32 - 1)), x=st.integers(-100, 100), y=st.integers(-100, 100), data=st.data(),
)
def test_image_round_trip_property(width: int, height: int, fmt: PixelFormat, seed: int | None, x: int, y: int, data: st.DataObject) -> None:
    pixels = data.draw(st.binary(min_size=width * height * 4, max_size=width * height * 4))
    image = ImagePayload(width, height, fmt, pixels)
    mask = ImagePayload(width, height, PixelFormat.L8, pixels[: width * height])
    assert decode_client_message(encode(Submit(1, JobRequest("e", "m", image, mask)))).job.image == image
    result = Result("j", (Layer(image, x, y, "n", seed),), width, height)
    assert decode_server_message(encode(result)) == result


# --- frames that are not messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # the one byte msgpack never uses
        encode(Hello("x"))[:-3],  # truncated
        encode(Hello("x")) + b"\x00",  # trailing bytes: one map per frame
        encode(Hello("x")) * 2,
        b"\xa2\xff\xfe",  # a str that is not UTF-8
        b"\x81\xa4type\xa2\xc3\x28",  # {"type": <invalid UTF-8>}
    ],
    ids=["empty", "reserved-byte", "truncated", "trailing-byte", "two-maps", "bad-utf8", "bad-utf8-in-map"],
)
def test_malformed_msgpack_is_bad_frame(data: bytes) -> None:
    refused(data, ErrorCode.BAD_FRAME, None)
    refused(data, ErrorCode.BAD_FRAME, None, server=True)


@pytest.mark.parametrize("value", [[1, 2], "hello", 7, None, True, b"\x83", 1.5], ids=repr)
def test_a_message_must_be_a_map(value: Any) -> None:
    refused(pack(value), ErrorCode.BAD_FRAME, None)
    refused(pack(value), ErrorCode.BAD_FRAME, None, server=True)


def test_map_keys_must_be_strings() -> None:
    # A key of another type is not a field: here the map has no "type".
    refused(pack({1: "hello"}), ErrorCode.BAD_MESSAGE, "type")
    refused(b"\x81\x91\x01\xa5hello", ErrorCode.BAD_FRAME, None)  # {[1]: "hello"}: an unhashable key


@pytest.mark.parametrize("frame", ['{"type": "hello"}', "hello"])
def test_text_instead_of_bytes_is_bad_frame(frame: str) -> None:
    refused(frame, ErrorCode.BAD_FRAME, None)
    refused(frame, ErrorCode.BAD_FRAME, None, server=True)


@pytest.mark.parametrize("wire", [{}, {"type": 1}, {"type": None}, {"type": b"hello"}, {"type": ["hello"]}, {b"type": "hello"}], ids=repr)
def test_type_must_be_a_string(wire: dict) -> None:
    refused(pack(wire), ErrorCode.BAD_MESSAGE, "type")


@pytest.mark.parametrize("kind", sorted(SERVER_MESSAGES) + ["bogus", "", "HELLO"])
def test_server_message_types_are_unknown_to_the_server(kind: str) -> None:
    refused(pack({"type": kind}), ErrorCode.UNKNOWN_TYPE, "type")


@pytest.mark.parametrize("kind", sorted(CLIENT_MESSAGES) + ["bogus", "Welcome"])
def test_client_message_types_are_unknown_to_the_client(kind: str) -> None:
    refused(pack({"type": kind}), ErrorCode.UNKNOWN_TYPE, "type", server=True)


# --- hello and cancel -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire, field",
    [
        ({"protocol": 1}, "client"),
        ({"protocol": 1, "client": ""}, "client"),
        ({"protocol": 1, "client": "x" * (MAX_NAME + 1)}, "client"),
        ({"protocol": 1, "client": b"bin"}, "client"),
        ({"protocol": 1, "client": 5}, "client"),
        ({"client": "x"}, "protocol"),
        ({"protocol": "1", "client": "x"}, "protocol"),
        ({"protocol": True, "client": "x"}, "protocol"),
        ({"protocol": 1.0, "client": "x"}, "protocol"),
        ({"protocol": 1, "client": "x", "token": 1234}, "token"),
        ({"protocol": 1, "client": "x", "token": b"bin"}, "token"),
    ],
)
def test_hello_field_errors(wire: dict, field: str) -> None:
    refused(pack({"type": "hello", **wire}), ErrorCode.BAD_MESSAGE, field)


def test_hello_limits_and_versions_are_read_not_judged() -> None:
    assert decode_client_message(pack({"type": "hello", "protocol": 1, "client": "x" * MAX_NAME})).client == "x" * MAX_NAME
    # The codec reads any version; refusing it is the connection's job (test_protocol_connection).
    assert decode_client_message(pack({"type": "hello", "protocol": 99, "client": "x"})).protocol == 99


@pytest.mark.parametrize("job", [None, "", "x" * (MAX_JOB_ID + 1), 12, b"j1", True], ids=repr)
def test_cancel_job_errors(job: Any) -> None:
    wire = {"type": "cancel"} if job is None else {"type": "cancel", "job": job}
    refused(pack(wire), ErrorCode.BAD_MESSAGE, "job")


# --- submit: ref, job and its fields ----------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, echoed",
    [(-1, -1), (2**53, 2**53), (2**64 - 1, 2**64 - 1), (-(2**63), -(2**63)), (True, None), (1.0, None), ("1", None), (None, None), ([1], None)],
    ids=repr,
)
def test_bad_ref(ref: Any, echoed: int | None) -> None:
    wire = submit_wire(ref)
    if ref is None:
        del wire["ref"]
    error = refused(pack(wire), ErrorCode.BAD_MESSAGE, "ref")
    assert error.ref == echoed
    assert Error.from_exception(error).ref == echoed


def test_errors_in_a_submit_carry_its_ref() -> None:
    error = refused(pack(submit_wire(42, engine="")), ErrorCode.BAD_MESSAGE, "job.engine")
    assert error.ref == 42
    wire = Error.from_exception(error).to_wire()
    assert (wire["ref"], wire["job"], wire["code"], wire["field"]) == (42, None, "bad_message", "job.engine")


@pytest.mark.parametrize(
    "job_over, field",
    [
        ({"engine": None}, "job.engine"),
        ({"engine": ""}, "job.engine"),
        ({"engine": 3}, "job.engine"),
        ({"engine": "e" * (MAX_NAME + 1)}, "job.engine"),
        ({"mode": None}, "job.mode"),
        ({"mode": True}, "job.mode"),
        ({"mode": b"inpaint"}, "job.mode"),
        ({"model": ""}, "job.model"),
        ({"model": 1}, "job.model"),
        ({"params": [1, 2]}, "job.params"),
        ({"params": "steps=4"}, "job.params"),
        ({"params": {b"steps": 4}}, "job.params"),
        ({"output_format": "l8"}, "job.output_format"),
        ({"output_format": "rgb8"}, "job.output_format"),
        ({"output_format": 4}, "job.output_format"),
    ],
    ids=repr,
)
def test_job_field_errors(job_over: dict, field: str) -> None:
    wire = submit_wire(**job_over)
    for key, value in job_over.items():
        if value is None:
            del wire["job"][key]
    refused(pack(wire), ErrorCode.BAD_MESSAGE, field)


@pytest.mark.parametrize("job", [None, [], "job", 1], ids=repr)
def test_job_must_be_a_map(job: Any) -> None:
    wire = submit_wire()
    wire["job"] = job
    refused(pack(wire), ErrorCode.BAD_MESSAGE, "job")


def test_params_values_are_passed_through_for_check_job() -> None:
    params = {"prompt": "a fox", "steps": 4, "strength": 0.5, "tile": True, "seed": -1, "nested": {"a": [1]}}
    assert dict(decode_client_message(pack(submit_wire(params=params))).job.params) == params


# --- images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "over, code, field",
    [
        ({"data": bytes(15)}, ErrorCode.BAD_IMAGE, "job.image.data"),
        ({"data": bytes(17)}, ErrorCode.BAD_IMAGE, "job.image.data"),
        ({"data": b""}, ErrorCode.BAD_IMAGE, "job.image.data"),
        ({"data": "\x00" * 16}, ErrorCode.BAD_IMAGE, "job.image.data"),  # msgpack str, not bin
        ({"data": list(range(16))}, ErrorCode.BAD_IMAGE, "job.image.data"),
        ({"data": None}, ErrorCode.BAD_IMAGE, "job.image.data"),
        ({"width": 0}, ErrorCode.BAD_IMAGE, "job.image.width"),
        ({"height": 0}, ErrorCode.BAD_IMAGE, "job.image.height"),
        ({"width": -2}, ErrorCode.BAD_IMAGE, "job.image.width"),
        ({"width": True}, ErrorCode.BAD_IMAGE, "job.image.width"),
        ({"height": False}, ErrorCode.BAD_IMAGE, "job.image.height"),
        ({"width": 2.0}, ErrorCode.BAD_IMAGE, "job.image.width"),
        ({"width": "2"}, ErrorCode.BAD_IMAGE, "job.image.width"),
        ({"width": None}, ErrorCode.BAD_IMAGE, "job.image.width"),
        ({"width": ABSOLUTE_MAX_SIDE + 1}, ErrorCode.TOO_LARGE, "job.image.width"),
        ({"height": 2**40}, ErrorCode.TOO_LARGE, "job.image.height"),
        ({"width": 2**64 - 1, "height": 2**64 - 1}, ErrorCode.TOO_LARGE, "job.image.width"),
        ({"format": "rgb8"}, ErrorCode.BAD_IMAGE, "job.image.format"),
        ({"format": "RGBA8"}, ErrorCode.BAD_IMAGE, "job.image.format"),
        ({"format": None}, ErrorCode.BAD_IMAGE, "job.image.format"),
        ({"format": ["rgba8"]}, ErrorCode.BAD_IMAGE, "job.image.format"),
        ({"format": {"name": "rgba8"}}, ErrorCode.BAD_IMAGE, "job.image.format"),
        ({"encoding": "jpeg"}, ErrorCode.BAD_IMAGE, "job.image.encoding"),
        ({"encoding": ""}, ErrorCode.BAD_IMAGE, "job.image.encoding"),
        ({"encoding": ["raw"]}, ErrorCode.BAD_IMAGE, "job.image.encoding"),
        ({"encoding": "png"}, ErrorCode.BAD_IMAGE, "job.image.data"),  # raw bytes are not a PNG
        ({"format": "l8", "data": bytes(4)}, ErrorCode.BAD_IMAGE, "job.image.format"),  # l8 is for masks
    ],
    ids=repr,
)
def test_image_errors(over: dict, code: ErrorCode, field: str) -> None:
    wire = submit_wire(mask=None)
    wire["job"]["image"].update(over)
    refused(pack(wire), code, field)


@pytest.mark.parametrize("image", [[], "pixels", 7, b"\x00" * 16], ids=repr)
def test_image_must_be_a_map(image: Any) -> None:
    refused(pack(submit_wire(image=image, mask=None)), ErrorCode.BAD_IMAGE, "job.image")


def test_byte_counts_follow_the_format() -> None:
    for fmt, channels in (("rgba8", 4), ("bgra8", 4)):
        ok = submit_wire(mask=None, image=image_wire(3, 5, fmt))
        assert len(decode_client_message(pack(ok)).job.image.data) == 3 * 5 * channels
        bad = submit_wire(mask=None, image=image_wire(3, 5, fmt, data=bytes(3 * 5)))
        refused(pack(bad), ErrorCode.BAD_IMAGE, "job.image.data")
    assert ImagePayload(3, 5, PixelFormat.L8, bytes(15)).expected_raw_size == 15
    assert ImagePayload(3, 5, PixelFormat.BGRA8, bytes(60)).pixel_count == 15


def test_largest_side_is_accepted() -> None:
    thin = submit_wire(mask=None, image=image_wire(ABSOLUTE_MAX_SIDE, 1))
    assert decode_client_message(pack(thin)).job.image.width == ABSOLUTE_MAX_SIDE


def test_max_pixels_is_enforced_for_image_and_mask() -> None:
    wire = pack(submit_wire(image=image_wire(4, 4), mask=image_wire(4, 4, "l8")))
    assert decode_client_message(wire, max_pixels=16).job.mask.width == 4
    refused(wire, ErrorCode.TOO_LARGE, "job.image", max_pixels=15)
    just_mask = submit_wire(image=image_wire(4, 4), mask=image_wire(5, 5, "l8"))
    refused(pack(just_mask), ErrorCode.TOO_LARGE, "job.mask", max_pixels=16)


def test_png_images() -> None:
    wire = submit_wire(mask=None, image=image_wire(3, 2, encoding="png", data=png_file(3, 2)))
    image = decode_client_message(pack(wire)).job.image
    assert (image.encoding, image.width, image.height) == (Encoding.PNG, 3, 2)
    assert png_size(png_file(3, 2)) == (3, 2)
    mismatch = submit_wire(mask=None, image=image_wire(3, 3, encoding="png", data=png_file(3, 2)))
    refused(pack(mismatch), ErrorCode.BAD_IMAGE, "job.image.data")
    not_png = submit_wire(mask=None, image=image_wire(3, 2, encoding="png", data=b"GIF89a" + bytes(40)))
    refused(pack(not_png), ErrorCode.BAD_IMAGE, "job.image.data")
    truncated = submit_wire(mask=None, image=image_wire(3, 2, encoding="png", data=png_file(3, 2)[:20]))
    refused(pack(truncated), ErrorCode.BAD_IMAGE, "job.image.data")
    png_mask = submit_wire(mask=image_wire(2, 2, "l8", encoding="png", data=png_file(2, 2)))
    assert decode_client_message(pack(png_mask)).job.mask.encoding is Encoding.PNG


@pytest.mark.parametrize(
    "job_over, code, field",
    [
        ({"mask": image_wire(fmt="rgba8")}, ErrorCode.BAD_MASK, "job.mask.format"),
        ({"mask": image_wire(fmt="bgra8")}, ErrorCode.BAD_MASK, "job.mask.format"),
        ({"mask": image_wire(3, 2, "l8")}, ErrorCode.BAD_MASK, "job.mask"),
        ({"mask": image_wire(2, 3, "l8")}, ErrorCode.BAD_MASK, "job.mask"),
        ({"image": None}, ErrorCode.BAD_MASK, "job.mask"),
        ({"mask": image_wire(fmt="l8", data=bytes(5))}, ErrorCode.BAD_IMAGE, "job.mask.data"),
        ({"mask": image_wire(fmt="l8", width=0)}, ErrorCode.BAD_IMAGE, "job.mask.width"),
        ({"mask": "everything"}, ErrorCode.BAD_IMAGE, "job.mask"),
        ({"image": image_wire(fmt="l8")}, ErrorCode.BAD_IMAGE, "job.image.format"),
    ],
    ids=repr,
)
def test_mask_errors(job_over: dict, code: ErrorCode, field: str) -> None:
    refused(pack(submit_wire(**job_over)), code, field)


def test_raw_image_helper_validates() -> None:
    assert raw_image(2, 1, "bgra8", bytes(8)).format is PixelFormat.BGRA8
    with pytest.raises(ProtocolError) as info:
        raw_image(2, 1, "rgba8", bytes(7))
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_IMAGE, "image.data")
    with pytest.raises(ValueError):
        raw_image(2, 1, "rgb8", bytes(6))


# --- server messages as a client reads them ----------------------------------------------------------


@pytest.mark.parametrize(
    "wire, code, field",
    [
        ({"type": "queued", "job": "j", "ref": 1}, ErrorCode.BAD_MESSAGE, "position"),
        ({"type": "queued", "job": "j", "ref": True, "position": 0}, ErrorCode.BAD_MESSAGE, "ref"),
        ({"type": "queued", "job": 5, "ref": 1, "position": 0}, ErrorCode.BAD_MESSAGE, "job"),
        ({"type": "started"}, ErrorCode.BAD_MESSAGE, "job"),
        ({"type": "progress", "job": "j", "step": "1", "total": 2}, ErrorCode.BAD_MESSAGE, "step"),
        ({"type": "progress", "job": "j", "step": 1, "total": 2.0}, ErrorCode.BAD_MESSAGE, "total"),
        ({"type": "preview", "job": "j"}, ErrorCode.BAD_IMAGE, "image"),
        ({"type": "preview", "job": "j", "image": image_wire(data=bytes(3))}, ErrorCode.BAD_IMAGE, "image.data"),
        ({"type": "preview", "job": "j", "image": image_wire(), "x": 1.5}, ErrorCode.BAD_MESSAGE, "x"),
        ({"type": "result", "job": "j", "layers": {}, "width": 1, "height": 1}, ErrorCode.BAD_MESSAGE, "layers"),
        ({"type": "result", "job": "j", "layers": ["x"], "width": 1, "height": 1}, ErrorCode.BAD_MESSAGE, "layers.0"),
        ({"type": "result", "job": "j", "layers": [{"image": image_wire(), "x": 0, "y": 0}], "width": 1, "height": 1}, ErrorCode.BAD_MESSAGE, "layers.0.name"),
        ({"type": "result", "job": "j", "layers": [{"image": image_wire(data=bytes(3)), "x": 0, "y": 0, "name": "n"}], "width": 1, "height": 1},
         ErrorCode.BAD_IMAGE, "layers.0.image.data"),
        ({"type": "result", "job": "j", "layers": [], "height": 1}, ErrorCode.BAD_MESSAGE, "width"),
        ({"type": "error", "code": "bad_image"}, ErrorCode.BAD_MESSAGE, "message"),
        ({"type": "error", "code": "bad_image", "message": "m", "ref": "7"}, ErrorCode.BAD_MESSAGE, "ref"),
        ({"type": "welcome", "protocol": 1, "server": "s"}, ErrorCode.BAD_MESSAGE, "capabilities"),
        ({"type": "welcome", "protocol": 1, "server": "s", "capabilities": {"engines": []}}, ErrorCode.BAD_MESSAGE, "capabilities"),
        ({"type": "welcome", "protocol": 1, "server": "s", "capabilities": {"engines": ["x"], "limits": CAPS.limits.to_wire()}},
         ErrorCode.BAD_MESSAGE, "capabilities"),
        ({"type": "welcome", "protocol": 1, "server": "s", "capabilities": {
            # A parameter without a type is malformed (one of a type this client does not know is skipped: test_protocol_evolution).
            "engines": [{"name": "e", "modes": [{"name": "m", "params": [{"name": "p"}]}]}], "limits": CAPS.limits.to_wire()}},
         ErrorCode.BAD_MESSAGE, "capabilities"),
        ({"type": "welcome", "server": "s", "capabilities": CAPS.to_wire()}, ErrorCode.BAD_MESSAGE, "protocol"),
        ({"type": "cancelled", "job": None}, ErrorCode.BAD_MESSAGE, "job"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_server_message_errors(wire: dict, code: ErrorCode, field: str) -> None:
    refused(pack(wire), code, field, server=True)


def test_unknown_or_missing_error_code_degrades_to_internal() -> None:
    newer = decode_server_message(pack({"type": "error", "code": "rate_limited", "message": "Slow down.", "job": None}))
    assert (newer.code, newer.message) == (ErrorCode.INTERNAL, "Slow down.")
    assert decode_server_message(pack({"type": "error", "message": "?"})).code is ErrorCode.INTERNAL


def test_every_error_code_round_trips() -> None:
    for code in ErrorCode:
        assert decode_server_message(encode(Error(code, "m", "f", "j", 1))).code is code


def test_protocol_error_text_and_from_exception() -> None:
    exc = ProtocolError(ErrorCode.INVALID_PARAM, "steps must be at most 150, got 999.", "job.params.steps", ref=3)
    assert str(exc) == "invalid_param: steps must be at most 150, got 999. (job.params.steps)"
    assert str(ProtocolError(ErrorCode.BAD_FRAME, "Not msgpack.")) == "bad_frame: Not msgpack."
    assert Error.from_exception(exc) == Error(ErrorCode.INVALID_PARAM, exc.message, "job.params.steps", None, 3)
    assert Error.from_exception(exc, job="j1", ref=9) == Error(ErrorCode.INVALID_PARAM, exc.message, "job.params.steps", "j1", 9)


# --- nothing escapes as anything but ProtocolError --------------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True), st.text(max_size=8), st.binary(max_size=8)
)
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a wire form where a value sits: map keys and list indices."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        out.append(prefix + (key,))
        out += _paths(value, prefix + (key,))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(MESSAGES) - 1), pick=st.integers(0, 10_000), value=_values, delete=st.booleans())
def test_any_field_of_a_real_message_replaced_raises_only_protocol_errors(index: int, pick: int, value: Any, delete: bool) -> None:
    """Take a valid message, change or remove one value anywhere in it: the reader
    either accepts it or raises ProtocolError, never anything else."""
    message = MESSAGES[index]
    wire = msgpack.unpackb(encode(message), raw=False)
    paths = _paths(wire)
    path = paths[pick % len(paths)]
    parent = wire
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    decode = decode_client_message if message.TYPE in CLIENT_MESSAGES else decode_server_message
    try:
        decode(pack(wire))
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    for decode in (decode_client_message, decode_server_message):
        try:
            decode(data)
        except ProtocolError as exc:
            assert isinstance(exc.code, ErrorCode)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 39))
def test_corrupted_real_frames_raise_only_protocol_errors(noise: bytes, at: int) -> None:
    frame = bytearray(encode(MESSAGES[3]))
    at = at % len(frame)
    frame[at : at + len(noise)] = noise
    try:
        decode_client_message(bytes(frame))
    except ProtocolError:
        pass


def test_float_edge_values_cross_the_wire_exactly() -> None:
    for value in (0.1, -0.0, 1e308, 5e-324, math.inf):
        job = decode_client_message(encode(Submit(1, JobRequest("e", "m", params={"v": value})))).job
        assert job.params["v"] == value


# --- progress: phases and the overall fraction -------------------------------------------------


def test_progress_from_an_older_server_reads_without_phase_or_fraction() -> None:
    old = decode_server_message(pack({"type": "progress", "job": "j", "step": 5, "total": 20, "stage": "inpainting"}))
    assert (old.phase, old.fraction) == ("", None)
    assert old.overall == 0.25  # step / total stands in for the fraction
    assert old.describe() == "Inpainting: step 5 of 20"
    assert "phase" not in old.to_wire() and "fraction" not in old.to_wire()


def test_progress_fraction_is_read_clamped() -> None:
    wild = decode_server_message(pack({"type": "progress", "job": "j", "step": 1, "total": 2, "phase": "denoising", "fraction": 7}))
    assert wild.fraction == 1.0
    with pytest.raises(ProtocolError):
        decode_server_message(pack({"type": "progress", "job": "j", "step": 1, "total": 2, "fraction": "half"}))


@pytest.mark.parametrize("event,text", [
    (Progress("j", 0, 1, "loading model", Phase.LOADING_MODEL.value, 0.0), "Loading model"),
    (Progress("j", 2, 5, "loading model", Phase.LOADING_MODEL.value, 0.1), "Loading model: part 2 of 5"),
    (Progress("j", 0, 1, "encoding", Phase.ENCODING.value, 0.2), "Encoding"),
    (Progress("j", 3, 9, "encoding", Phase.ENCODING.value, 0.2), "Encoding: tile 3 of 9"),
    (Progress("j", 3, 20, "denoising", Phase.DENOISING.value, 0.4), "Denoising: step 3 of 20"),
    (Progress("j", 1, 1, "decoding", Phase.DECODING.value, 1.0), "Decoding"),
    (Progress("j", 2, 4, "upscaling", Phase.UPSCALING.value, 0.5), "Upscaling: tile 2 of 4"),
    (Progress("j", 1, 3, "filling", Phase.WORKING.value, 0.3), "Filling: step 1 of 3"),
    (Progress("j", 0, 1, "", "a-newer-phase", 0.3), "Working"),
])
def test_progress_describes_its_phase(event: Progress, text: str) -> None:
    assert event.describe() == text
