"""msgpack framing: one websocket binary message carries one protocol message,
as a msgpack map or as a blob frame (a msgpack header with the pixels after it;
protocol/transfer.py)."""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import ErrorCode, ProtocolError
from .messages import CLIENT_MESSAGES, SERVER_MESSAGES, Submit
from .transfer import SegmentReader, SegmentWriter, attach, is_blob_frame, pack, split


def encode(message: Any, blobs: bool = False, writer: SegmentWriter | None = None) -> bytes:
    """Serialise a message dataclass to the bytes of one binary frame: plain msgpack,
    or with ``blobs`` a blob frame whose pixels follow the header (with ``writer``,
    whose pixels go to a shared-memory segment). Use blobs only with a peer that
    said it reads them."""
    if blobs or writer is not None:
        return pack(message.to_wire(), writer)
    return msgpack.packb(message.to_wire(), use_bin_type=True)


def _check_map(obj: object) -> dict:
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "A message must be a msgpack map with a 'type' field.")
    if not isinstance(obj.get("type"), str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "A message must have a string 'type' field.", "type")
    return obj


def _unpack(data: bytes, max_pixels: int | None = None, reader: SegmentReader | None = None, max_segment_bytes: int | None = None) -> dict:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(ErrorCode.BAD_FRAME, "Messages must be binary websocket frames holding msgpack, not text.")
    if is_blob_frame(data):
        obj, blobs = split(data)
        _check_map(obj)
        try:
            attach(obj, blobs, max_pixels, reader, max_segment_bytes)
        except ProtocolError as exc:
            ref = obj.get("ref") if obj["type"] == Submit.TYPE else None
            exc.ref = ref if isinstance(ref, int) and not isinstance(ref, bool) else None
            raise
        return obj
    try:
        # Non-str keys are read (not refused here) so that a submit with one in its
        # params is answered with its ref; the readers then refuse or ignore them.
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(ErrorCode.BAD_FRAME, f"The frame is not valid msgpack ({type(exc).__name__}).") from None
    return _check_map(obj)


def _read(obj: dict, table: dict[str, type], side: str, **kwargs: Any) -> Any:
    kind = table.get(obj["type"])
    if kind is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {obj['type']!r}; a {side} sends: {', '.join(table)}.", "type")
    try:
        return kind.from_wire(obj, **kwargs)
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # Readers validate field by field; this is a last guard so that no shape
        # of input escapes as anything but a ProtocolError.
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Malformed {obj['type']} message ({exc}).") from None


def decode_client_message(data: bytes, max_pixels: int | None = None, reader: SegmentReader | None = None,
                          max_segment_bytes: int | None = None) -> Any:
    """Read a frame a client sent. Raises ProtocolError for anything invalid.

    When the frame is a submit whose job is invalid, the error carries the
    submit's ``ref`` so the rejection can name it. ``reader`` reads segment
    references (None: this connection has no shared memory).
    """
    obj = _unpack(data, max_pixels, reader, max_segment_bytes)
    if obj["type"] == Submit.TYPE:
        try:
            return _read(obj, CLIENT_MESSAGES, "client", max_pixels=max_pixels)
        except ProtocolError as exc:
            ref = obj.get("ref")
            exc.ref = ref if isinstance(ref, int) and not isinstance(ref, bool) else None
            raise
    return _read(obj, CLIENT_MESSAGES, "client")


def decode_server_message(data: bytes) -> Any:
    """Read a frame a server sent. Raises ProtocolError for anything invalid."""
    return _read(_unpack(data), SERVER_MESSAGES, "server")
