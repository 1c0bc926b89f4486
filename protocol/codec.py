"""msgpack framing: one websocket binary message carries one protocol message,
as a msgpack map or as a blob frame (a msgpack header with the pixels after it;
protocol/transfer.py)."""

from __future__ import annotations

from typing import Any

import msgpack

from .controls import Preprocess
from .errors import ErrorCode, ProtocolError
from .live import LiveState, LiveStateError
from .messages import CLIENT_MESSAGES, SERVER_MESSAGES, Submit
from .transfer import SegmentReader, SegmentWriter, attach, cut_blobs, is_blob_frame, pack, read_header


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


def _addressed(error: ProtocolError, obj: dict) -> ProtocolError:
    """``error``, found in a message whose map could be read, as that message's own: a
    submit's or preprocess's refusal carries its ref (section 5 promises each one
    answer), a live state's goes to its stream."""
    if obj["type"] == LiveState.TYPE:
        return LiveStateError.about(error, obj)
    if obj["type"] in (Submit.TYPE, Preprocess.TYPE):
        ref = obj.get("ref")
        error.ref = ref if isinstance(ref, int) and not isinstance(ref, bool) else None
    return error


def _unpack(data: bytes, max_pixels: int | None = None, reader: SegmentReader | None = None, max_segment_bytes: int | None = None,
            from_client: bool = True) -> dict:
    """The message map with every image's pixels in its ``data``. A fault found once the
    map can be read (a blob frame's lengths, blob indexes, segments) is addressed to it.
    A server's plain frames carry their pixels inline: only a client's are looked through
    for blob and segment references (a few microseconds a frame)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(ErrorCode.BAD_FRAME, "Messages must be binary websocket frames holding msgpack, not text.")
    if is_blob_frame(data):
        obj, lengths, view, start = read_header(data)
        _check_map(obj)
        try:
            attach(obj, cut_blobs(view, start, lengths), max_pixels, reader, max_segment_bytes)
        except ProtocolError as exc:
            raise _addressed(exc, obj) from None
        return obj
    try:
        # Non-str keys are read (not refused here) so that a submit with one in its
        # params is answered with its ref; the readers then refuse or ignore them.
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(ErrorCode.BAD_FRAME, f"The frame is not valid msgpack ({type(exc).__name__}).") from None
    _check_map(obj)
    if from_client:
        try:
            attach(obj, [], max_pixels, reader, max_segment_bytes)  # a plain frame is a blob frame without blobs
        except ProtocolError as exc:
            raise _addressed(exc, obj) from None
    return obj


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

    When the frame is a submit (or a preprocess) that is invalid, the error
    carries its ``ref`` so the rejection can name it. ``reader`` reads segment
    references (None: this connection has no shared memory).
    """
    obj = _unpack(data, max_pixels, reader, max_segment_bytes)
    if obj["type"] == LiveState.TYPE:  # pixels: the same limit as a job's
        return _read(obj, CLIENT_MESSAGES, "client", max_pixels=max_pixels)
    if obj["type"] in (Submit.TYPE, Preprocess.TYPE):
        try:
            return _read(obj, CLIENT_MESSAGES, "client", max_pixels=max_pixels)
        except ProtocolError as exc:
            raise _addressed(exc, obj) from None
    return _read(obj, CLIENT_MESSAGES, "client")


def decode_server_message(data: bytes) -> Any:
    """Read a frame a server sent. Raises ProtocolError for anything invalid."""
    return _read(_unpack(data, from_client=False), SERVER_MESSAGES, "server")
