"""The live stream messages' readers: what they refuse, and that a refused state
still names its stream and seq so the refusal reaches the right stream."""

from __future__ import annotations

import msgpack
import pytest

from paintwire.protocol import Capabilities, ClientConnection, ErrorCode, ImagePayload, PixelFormat, ProtocolError, decode_client_message, encode
from paintwire.protocol import Limits, Welcome
from paintwire.protocol.live import LiveFrame, LiveStart, LiveState, LiveStateError, LiveStop, LiveStopped

IMAGE = ImagePayload(2, 2, PixelFormat.RGBA8, bytes(16))
MASK = ImagePayload(2, 2, PixelFormat.L8, bytes(4))


def frame(**fields) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def state_wire(**changes) -> dict:
    wire = LiveState(4, 17, IMAGE, MASK, 3, 5).to_wire()
    wire.update(changes)
    return wire


@pytest.mark.parametrize("changes, code, field", [
    ({"image": None}, ErrorCode.BAD_IMAGE, "image"),
    ({"image": {**IMAGE.to_wire(), "data": bytes(3)}}, ErrorCode.BAD_IMAGE, "image.data"),
    ({"image": MASK.to_wire(), "mask": None}, ErrorCode.BAD_IMAGE, "image.format"),
    ({"mask": ImagePayload(1, 2, PixelFormat.L8, bytes(2)).to_wire()}, ErrorCode.BAD_MASK, "mask"),
    ({"mask": IMAGE.to_wire()}, ErrorCode.BAD_MASK, "mask.format"),
    ({"x": -1}, ErrorCode.BAD_MESSAGE, "x"),
    ({"params": {1: 2}}, ErrorCode.BAD_MESSAGE, "params"),
])
def test_a_bad_state_is_refused_naming_its_stream_and_seq(changes, code, field):
    with pytest.raises(LiveStateError) as caught:
        decode_client_message(frame(**state_wire(**changes)))
    assert (caught.value.code, caught.value.field, caught.value.stream, caught.value.seq) == (code, field, 4, 17)


def test_a_state_over_the_pixel_limit_is_too_large():
    with pytest.raises(LiveStateError) as caught:
        decode_client_message(frame(**state_wire()), max_pixels=3)
    assert caught.value.code is ErrorCode.TOO_LARGE


@pytest.mark.parametrize("wire", [
    {"type": "live_stop", "stream": -1},
    {"type": "live_stop", "stream": 2**53},
    {"type": "live_stop", "stream": True},
    {"type": "live_start", "stream": 1, "engine": "e"},
    {"type": "live_start", "stream": 1, "engine": "e", "mode": "m", "output_format": "l8"},
    {**state_wire(), "seq": -3},
])
def test_bad_ids_and_missing_fields_are_bad_messages(wire):
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame(**wire))
    assert caught.value.code is ErrorCode.BAD_MESSAGE


def test_the_client_connection_passes_live_messages_through_and_checks_the_size():
    conn = ClientConnection()
    conn.hello("t")
    conn.receive(encode(Welcome("s", Capabilities((), (), Limits(200, 100, 100, 1)))))
    assert decode_client_message(conn.live(LiveStop(1))) == LiveStop(1)  # a blob frame: the welcome says the server reads them
    with pytest.raises(ProtocolError) as caught:
        conn.live(LiveState(1, 1, ImagePayload(8, 8, PixelFormat.RGBA8, bytes(256))))
    assert caught.value.code is ErrorCode.TOO_LARGE
    assert isinstance(conn.receive(encode(LiveFrame(1, 1, IMAGE, 0, 0))), LiveFrame)
    assert isinstance(conn.receive(encode(LiveStopped(1))), LiveStopped)
    assert conn.live(LiveStart(2, "e", "m"))
