"""Edges of the protocol that docs/protocol.md states exactly: map keys, nesting, refs."""

from __future__ import annotations

import msgpack
import pytest

from paintwire.protocol import ErrorCode, JobRequest, ProtocolError, Submit, decode_client_message, encode

def test_a_non_string_parameter_name_is_refused_with_the_submits_ref():
    obj = msgpack.unpackb(encode(Submit(7, JobRequest("classical", "upscale"))), raw=False)
    obj["job"]["params"] = {1: 2}
    with pytest.raises(ProtocolError) as info:
        decode_client_message(msgpack.packb(obj, use_bin_type=True))
    assert (info.value.code, info.value.field, info.value.ref) == (ErrorCode.BAD_MESSAGE, "job.params", 7)

def test_a_non_string_key_elsewhere_is_ignored_like_an_unknown_field():
    obj = msgpack.unpackb(encode(Submit(7, JobRequest("classical", "upscale"))), raw=False)
    obj[5] = "extra"
    obj["job"][b"bin-key"] = 1
    message = decode_client_message(msgpack.packb(obj, use_bin_type=True))
    assert isinstance(message, Submit) and message.ref == 7

def test_a_map_key_that_is_an_array_is_bad_frame():
    with pytest.raises(ProtocolError) as info:
        decode_client_message(b"\x81\x91\x01\x02")  # {[1]: 2}
    assert info.value.code is ErrorCode.BAD_FRAME

@pytest.mark.parametrize("depth, code", [(1000, ErrorCode.UNKNOWN_TYPE), (1025, ErrorCode.BAD_FRAME)])
def test_nesting_up_to_1024_levels_is_read_and_deeper_is_bad_frame(depth, code):
    nested = b"\x91" * (depth - 1) + b"\xc0"
    frame = b"\x82\xa4type\xa4nope\xa1x" + nested  # {"type": "nope", "x": [[[...nil...]]]}
    with pytest.raises(ProtocolError) as info:
        decode_client_message(frame)
    assert info.value.code is code
