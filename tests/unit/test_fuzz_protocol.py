"""Fuzzing the protocol decoder and the job validation with hypothesis.

Whatever bytes a client sends, ``decode_client_message``, the server's
connection state machine and ``check_job`` either accept them or raise a
ProtocolError whose code is one of ErrorCode. Any other exception is a bug.

CI runs a bounded number of examples per test. For a longer run:

    PAINTWIRE_FUZZ_EXAMPLES=20000 ./run test tests/unit/test_fuzz_protocol.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paintwire.protocol import (
    Capabilities,
    ConnectionState,
    ErrorCode,
    Hello,
    JobRequest,
    PixelFormat,
    ProtocolError,
    ServerConnection,
    Submit,
    check_job,
    decode_client_message,
    encode,
    raw_image,
)
from paintwire.server.app import PaintwireServer
from paintwire.server.config import LimitsConfig, ServerConfig

# Popped, not read: the server takes every PAINTWIRE_* variable as a setting, and
# servers that other tests start inherit this environment.
EXAMPLES = int(os.environ.pop("PAINTWIRE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    derandomize=EXAMPLES <= 300,  # CI: the same examples every run, so a failure reproduces
)
MAX_PIXELS = 4096 * 4096
DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _capabilities() -> Capabilities:
    """The server's real capabilities, built as `paintwire serve` builds them (the
    diffusers engine where it is installed), with no models: the user's Hugging
    Face cache is pointed at an empty folder while the engines scan."""
    old = os.environ.get("HF_HUB_CACHE")
    with tempfile.TemporaryDirectory() as empty:
        os.environ["HF_HUB_CACHE"] = empty
        try:
            return PaintwireServer(ServerConfig(limits=LimitsConfig(max_pixels=MAX_PIXELS), engines=["classical", "diffusers"])).capabilities
        finally:
            if old is None:
                os.environ.pop("HF_HUB_CACHE", None)
            else:
                os.environ["HF_HUB_CACHE"] = old


CAPS = _capabilities()
ENGINES = [e.name for e in CAPS.engines]
MODES = sorted({m.name for e in CAPS.engines for m in e.modes})
PARAMS = {p.name: p for e in CAPS.engines for m in e.modes for p in m.params}
DOCUMENTED = DOCS.read_text(encoding="utf-8") if DOCS.exists() else None


def assert_documented(exc: ProtocolError) -> None:
    assert isinstance(exc.code, ErrorCode), f"not an ErrorCode: {exc.code!r}"
    assert isinstance(exc.message, str) and exc.message
    assert exc.field is None or isinstance(exc.field, str)
    if DOCUMENTED is not None:
        assert f"`{exc.code.value}`" in DOCUMENTED or exc.code.value in DOCUMENTED, f"{exc.code.value} is not in docs/protocol.md"


def decode_and_check(data: bytes) -> Any:
    """What the server does with a frame after hello; returns the outcome."""
    try:
        message = decode_client_message(data, MAX_PIXELS)
    except ProtocolError as exc:
        assert_documented(exc)
        return exc
    if isinstance(message, Submit):
        try:
            return check_job(message.job, CAPS)
        except ProtocolError as exc:
            assert_documented(exc)
            return exc
    return message


# --- strategies ------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.binary(max_size=64),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25,
)
some_side = st.one_of(st.integers(-3, 70), st.sampled_from([0, 1, 16384, 16385, 2**31, 2**63]), anything)


@st.composite
def images(draw, mask: bool = False) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(anything)
    width, height = draw(some_side), draw(some_side)
    fmt = draw(st.one_of(st.sampled_from([f.value for f in PixelFormat]), anything))
    out: dict[str, Any] = {"width": width, "height": height, "format": fmt}
    channels = 1 if fmt == "l8" else 4
    if isinstance(width, int) and isinstance(height, int) and 0 < width <= 64 and 0 < height <= 64 and draw(st.booleans()):
        size = width * height * channels + draw(st.sampled_from([0, 0, 0, -1, 1]))
        out["data"] = bytes(max(0, size))
    else:
        out["data"] = draw(st.one_of(st.binary(max_size=64), anything))
    if draw(st.booleans()):
        out["encoding"] = draw(st.one_of(st.sampled_from(["raw", "png"]), anything))
    if out.get("encoding") == "png" and draw(st.booleans()):
        out["data"] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + draw(st.binary(min_size=8, max_size=40))
    return out


@st.composite
def params(draw) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(anything)
    names = draw(st.lists(st.one_of(st.sampled_from(sorted(PARAMS)), st.text(max_size=8)), max_size=4))
    out = {}
    for name in names:
        spec = PARAMS.get(name)
        choices = [spec.default] + list(spec.choices) if spec else []
        if spec is not None and spec.minimum is not None:
            choices += [spec.minimum, spec.maximum, spec.minimum - 1, (spec.maximum or 0) + 1]
        out[name] = draw(st.one_of(st.sampled_from(choices), scalars, anything)) if choices else draw(anything)
    return out


@st.composite
def jobs(draw) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(anything)
    job: dict[str, Any] = {}
    for key, values in (
        ("engine", st.one_of(st.sampled_from(ENGINES), st.text(max_size=8), anything)),
        ("mode", st.one_of(st.sampled_from(MODES), st.text(max_size=8), anything)),
        ("model", st.one_of(st.none(), st.sampled_from(["opencv", "x", "../../etc/passwd"]), anything)),
        ("image", images()),
        ("mask", images(mask=True)),
        ("params", params()),
        ("output_format", st.one_of(st.sampled_from(["rgba8", "bgra8", "l8"]), anything)),
    ):
        if draw(st.integers(0, 5)) > 0:
            job[key] = draw(values)
    return job


@st.composite
def client_maps(draw) -> dict:
    kind = draw(st.one_of(st.sampled_from(["hello", "submit", "cancel"]), st.text(max_size=10), anything))
    out: dict[str, Any] = {"type": kind}
    if kind == "hello" or draw(st.booleans()):
        out["client"] = draw(st.one_of(st.just("fuzz/1"), st.text(max_size=250), anything))
        out["protocol"] = draw(st.one_of(st.integers(-2, 3), anything))
        if draw(st.booleans()):
            out["token"] = draw(st.one_of(st.text(max_size=30), anything))
    if kind == "submit" or draw(st.booleans()):
        out["ref"] = draw(st.one_of(st.integers(-5, 2**64 - 1), anything))
        out["job"] = draw(jobs())
    if kind == "cancel" or draw(st.booleans()):
        out["job"] = draw(st.one_of(st.text(max_size=80), anything))
    extra = draw(st.dictionaries(st.text(max_size=8), anything, max_size=2))
    return {**extra, **out}


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def valid_submit_frame() -> bytes:
    image = raw_image(8, 8, "rgba8", bytes(range(256)))
    mask = raw_image(8, 8, "l8", bytes([0, 255] * 32))
    return encode(Submit(1, JobRequest("classical", "inpaint", image, mask, params={"method": "fill"})))


# --- the tests -------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data):
    decode_and_check(data)


@FUZZ
@given(anything)
def test_arbitrary_msgpack_values(value):
    decode_and_check(pack(value))


@FUZZ
@given(client_maps())
def test_structured_but_wrong_messages(obj):
    decode_and_check(pack(obj))


@FUZZ
@given(st.data())
def test_mutated_valid_frames(data):
    frame = bytearray(valid_submit_frame())
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del frame[pos:pos + data.draw(st.integers(1, 16))]
        else:
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    decode_and_check(bytes(frame))


@settings(FUZZ, max_examples=max(50, EXAMPLES // 3))
@given(st.lists(st.one_of(client_maps().map(pack), st.binary(max_size=64), st.just(encode(Hello("fuzz/1")))), max_size=8))
def test_server_connection_state_machine(frames):
    """A sequence of frames never breaks the server's side of a connection."""
    conn = ServerConnection(max_pixels=MAX_PIXELS)
    for frame in frames:
        state = conn.state
        try:
            message = conn.receive(frame)
        except ProtocolError as exc:
            assert_documented(exc)
            continue
        if state is ConnectionState.START:
            assert isinstance(message, Hello)
            conn.state = ConnectionState.READY  # what accept() does once the token is checked
        else:
            assert not isinstance(message, Hello)
    assert conn.state in (ConnectionState.START, ConnectionState.READY, ConnectionState.CLOSED)


def test_the_valid_frame_is_valid():
    # The mutation test starts from a frame that passes; keep it that way.
    checked = decode_and_check(valid_submit_frame())
    assert not isinstance(checked, ProtocolError), checked


@pytest.mark.parametrize(
    "obj, code",
    [
        ({"type": "submit", "ref": 1, "job": {"engine": "classical", "mode": "inpaint", "image": {"width": 2**31, "height": 1, "format": "rgba8", "data": b""}}}, ErrorCode.TOO_LARGE),
        ({"type": "submit", "ref": 1, "job": {"engine": "classical", "mode": "inpaint", "image": {"width": 4097, "height": 4097, "format": "rgba8", "data": b""}}}, ErrorCode.TOO_LARGE),
        ({"type": "submit", "ref": 1, "job": {"engine": "classical", "mode": "upscale", "image": {"width": 1, "height": 1, "format": [1], "data": b""}}}, ErrorCode.BAD_IMAGE),
        ({"type": "submit", "ref": 1, "job": {"engine": "classical", "mode": "upscale", "params": {"scale": float("nan")}, "image": {"width": 1, "height": 1, "format": "rgba8", "data": b"\0" * 4}}}, ErrorCode.INVALID_PARAM),
        ({"type": "cancel", "job": {"a": 1}}, ErrorCode.BAD_MESSAGE),
        ({"type": ["hello"]}, ErrorCode.BAD_MESSAGE),
        ([1, 2], ErrorCode.BAD_FRAME),
    ],
)
def test_known_edge_cases(obj, code):
    outcome = decode_and_check(pack(obj))
    assert isinstance(outcome, ProtocolError) and outcome.code is code, outcome
