"""How pixels travel: inline in msgpack, as blobs after a small header, or in a
shared-memory segment. Sans-I/O: reading a segment is the caller's function.

A blob frame is one websocket binary message:

    b"PWB1" | header length (uint32, big-endian) | header | blob 0 | blob 1 | ...

The header is msgpack: a two-element array of the message map and the list of
the blobs' lengths. In the message, an image map carries ``"blob": i`` instead
of ``"data"``; its bytes are blob ``i``. Neither side copies pixels into or out
of msgpack, and the receiver checks every length against the frame before it
looks at a pixel. A frame that starts with anything else is a plain msgpack
message (every message map starts with a byte from 0x80 to 0x8f, 0xde or 0xdf).

A segment reference replaces ``"data"`` with ``"shm": {"name": N, "offset": O}``:
the image's bytes (its raw size, from its width, height and format) lie at
``O`` in the shared-memory segment ``N`` (see protocol/shm.py).

An image names exactly one source of its pixels (``data``, ``blob`` or ``shm``),
and every blob of a frame belongs to exactly one image. A plain msgpack frame
is read as a blob frame without blobs: its segment references are read the same
way, and a ``blob`` in it names nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import msgpack

from .errors import ErrorCode, ProtocolError
from .images import ABSOLUTE_MAX_SIDE, Encoding, PixelFormat

MAGIC = b"PWB1"
_HEAD = struct.Struct(">4sI")
MAX_BLOBS = 16  # images in one message (image, mask, controls): far more than any mode reads
MIN_BLOB = 4096  # smaller pixels stay inline: a blob's bookkeeping is not worth it
_MAX_DEPTH = 8  # how deep in a message images are looked for

PIXEL_SOURCES = ("data", "blob", "shm")  # where an image's bytes are: inline, after the header, in a segment


class SegmentReader(Protocol):
    """Reads segment references for one connection (protocol/shm.py ``SegmentReads``)."""

    def named(self, name: str) -> None:
        """A message named segment ``name``, whether or not it is read: it is removed
        when the connection ends."""

    def __call__(self, name: str, offset: int, size: int, field: str) -> Any:
        """``size`` bytes at ``offset`` of segment ``name`` (``field`` names the
        reference for errors); raises ProtocolError(BAD_SEGMENT)."""


# Puts the given byte strings in one new segment; returns its name and each one's offset.
SegmentWriter = Callable[[list[Any]], tuple[str, list[int]]]


@dataclass(frozen=True)
class TransferOffer:
    """What a client offers in hello (``transfer``): it reads blob frames, and
    optionally a shared-memory probe: a segment it made holding ``token``."""

    blobs: bool = True
    probe: str | None = None  # segment name
    token: str | None = None  # hex text the probe segment holds, as bytes

    def to_wire(self) -> dict:
        out: dict[str, Any] = {"blobs": self.blobs}
        if self.probe is not None:
            out["shm"] = {"name": self.probe, "token": self.token}
        return out

    @classmethod
    def from_wire(cls, obj: object) -> "TransferOffer":
        if not isinstance(obj, dict):
            return NO_OFFER
        shm = obj.get("shm")
        probe = token = None
        if isinstance(shm, dict) and isinstance(shm.get("name"), str) and isinstance(shm.get("token"), str) and len(shm["token"]) <= 128:
            probe, token = shm["name"], shm["token"]
        return cls(blobs=obj.get("blobs") is True, probe=probe, token=token)


NO_OFFER = TransferOffer(blobs=False)


@dataclass(frozen=True)
class TransferTerms:
    """The server's answer in welcome (``transfer``): it reads blob frames (always,
    from this version on), and whether this client may send segment references;
    ``note`` says why not when it offered and was refused."""

    blobs: bool = True
    shm: bool = False
    note: str = ""

    def to_wire(self) -> dict:
        return {"blobs": self.blobs, "shm": self.shm, "note": self.note}

    @classmethod
    def from_wire(cls, obj: object) -> "TransferTerms":
        if not isinstance(obj, dict):
            return OLD_SERVER
        return cls(blobs=obj.get("blobs") is True, shm=obj.get("shm") is True, note=str(obj.get("note") or ""))


OLD_SERVER = TransferTerms(blobs=False)  # a welcome without ``transfer``: inline msgpack only


def _images(obj: Any, path: str, depth: int = 0) -> Iterator[tuple[dict, str]]:
    """Every image map in ``obj`` (one with width, height and format), with its dotted path.
    A job's ``params`` are never images, whatever keys they have."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(obj, dict):
        if "width" in obj and "height" in obj and "format" in obj:
            yield obj, path
        for key, value in obj.items():
            if isinstance(value, (dict, list)) and key not in ("params", "settings"):
                yield from _images(value, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, (dict, list)):
                yield from _images(value, f"{path}.{i}", depth + 1)


def pack(wire: dict, writer: SegmentWriter | None = None) -> bytes:
    """The frame for a message's wire map: blobs after a header, or with ``writer``,
    the pixels in a shared-memory segment and only the header on the wire.
    ``wire`` is changed in place (it is the fresh map of ``to_wire``)."""
    found = [(image, image["data"]) for image, _ in _images(wire, "")
             if isinstance(image.get("data"), (bytes, bytearray, memoryview)) and len(image["data"]) >= MIN_BLOB]
    # Segments carry raw pixels only (their size comes from the shape); a PNG goes as a blob.
    shared = [(image, data) for image, data in found if image.get("encoding", Encoding.RAW.value) in (None, Encoding.RAW.value)]
    if writer is not None and shared:
        name, offsets = writer([data for _, data in shared])
        for (image, _), offset in zip(shared, offsets):
            del image["data"]
            image["shm"] = {"name": name, "offset": offset}
        found = [(image, data) for image, data in found if "shm" not in image]
    blobs = []
    for i, (image, data) in enumerate(found):
        del image["data"]
        image["blob"] = i
        blobs.append(data)
    header = msgpack.packb([wire, [len(memoryview(b).cast("B")) for b in blobs]], use_bin_type=True)
    return b"".join([_HEAD.pack(MAGIC, len(header)), header, *blobs])


def is_blob_frame(data: bytes | bytearray | memoryview) -> bool:
    return bytes(data[:4]) == MAGIC


def unpack(data: bytes | bytearray | memoryview, max_pixels: int | None = None, reader: SegmentReader | None = None,
           max_segment_bytes: int | None = None) -> dict:
    """The message map of a blob frame, with each image's ``data`` a view of its
    blob (no copy) or the bytes read from its segment. Every length is checked
    against the frame, and every segment's size against the image's declared
    shape and ``max_pixels``, before anything is read. Raises ProtocolError."""
    message, blobs = split(data)
    attach(message, blobs, max_pixels, reader, max_segment_bytes)
    return message


def split(data: bytes | bytearray | memoryview) -> tuple[dict, list[memoryview]]:
    """A blob frame's message map (images still naming their blobs) and its blobs."""
    message, lengths, view, start = read_header(data)
    return message, cut_blobs(view, start, lengths)


def read_header(data: bytes | bytearray | memoryview) -> tuple[dict, object, memoryview, int]:
    """A blob frame's message map, its list of blob lengths (not yet checked), the
    frame and where the blobs start. Raises BAD_FRAME when the map cannot be read:
    only these faults are the connection's; every later one is the message's."""
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    if len(view) < _HEAD.size:
        raise ProtocolError(ErrorCode.BAD_FRAME, "The blob frame is shorter than its 8-byte preamble.")
    _, size = _HEAD.unpack(view[:_HEAD.size])
    start = _HEAD.size + size
    if start > len(view):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"The blob frame's header claims {size} bytes; the frame has only {len(view) - _HEAD.size} after its preamble.")
    try:
        header = msgpack.unpackb(view[_HEAD.size:start], raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(ErrorCode.BAD_FRAME, f"The blob frame's header is not valid msgpack ({type(exc).__name__}).") from None
    if not (isinstance(header, list) and len(header) == 2 and isinstance(header[0], dict)):
        raise ProtocolError(ErrorCode.BAD_FRAME, "A blob frame's header must be a msgpack array of the message map and the list of blob lengths.")
    return header[0], header[1], view, start


def cut_blobs(view: memoryview, start: int, lengths: object) -> list[memoryview]:
    """The blobs after the header, once their lengths are checked against the frame."""
    if not isinstance(lengths, list):
        raise ProtocolError(ErrorCode.BAD_FRAME, "A blob frame's header must be a msgpack array of the message map and the list of blob lengths.")
    if len(lengths) > MAX_BLOBS or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"A blob frame lists at most {MAX_BLOBS} blob lengths, each a non-negative integer.")
    if sum(lengths) != len(view) - start:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"The blob lengths add up to {sum(lengths)} bytes but {len(view) - start} follow the header.")
    blobs, at = [], start
    for n in lengths:
        blobs.append(view[at:at + n].toreadonly())
        at += n
    return blobs


def _sources(image: dict) -> list[str]:
    return [key for key in PIXEL_SOURCES if image.get(key) is not None]  # nil is the same as absent


def _named_segments(message: dict, reader: SegmentReader) -> None:
    """Tell ``reader`` every segment the message names before anything is checked, so
    that a message refused for any reason still leaves none of them behind."""
    for image, _ in _images(message, ""):
        ref = image.get("shm")
        if isinstance(ref, dict) and isinstance(ref.get("name"), str):
            reader.named(ref["name"])


def attach(message: dict, blobs: list[memoryview], max_pixels: int | None = None, reader: SegmentReader | None = None,
           max_segment_bytes: int | None = None) -> None:
    """Put each image's pixels in its ``data``: its blob, or what ``reader`` reads from its
    segment. ``max_segment_bytes`` bounds what one message may read from segments (the
    server's max_message_bytes: shared memory carries no more than a frame could)."""
    if reader is not None:
        _named_segments(message, reader)
    used: set[int] = set()
    segments = read = 0
    for image, path in _images(message, ""):
        sources = _sources(image)
        if len(sources) > 1:
            raise ProtocolError(ErrorCode.BAD_IMAGE, f"An image carries its pixels in one of data, blob or shm; this one has {' and '.join(sources)}.", path)
        if sources == ["blob"]:
            index = image.pop("blob")
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(blobs) or index in used:
                have = f"0 to {len(blobs) - 1}" if blobs else "none: it is not a blob frame, or lists no blobs"
                raise ProtocolError(ErrorCode.BAD_FRAME, f"Blob index {index!r} is not one of the frame's unused blobs ({have}).", f"{path}.blob")
            used.add(index)
            image["data"] = blobs[index]
        elif sources == ["shm"]:
            segments += 1
            if segments > MAX_BLOBS:
                raise ProtocolError(ErrorCode.BAD_SEGMENT, f"A message refers to at most {MAX_BLOBS} segment images.", path)
            ref = image.pop("shm")
            if reader is None:
                raise ProtocolError(ErrorCode.BAD_SEGMENT, "This connection did not agree on shared memory in hello; send the pixels in the frame.", f"{path}.shm")
            if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not isinstance(ref.get("offset"), int) or isinstance(ref.get("offset"), bool) or ref["offset"] < 0:
                raise ProtocolError(ErrorCode.BAD_SEGMENT, "A segment reference is a map of name (text) and offset (a non-negative integer).", f"{path}.shm")
            size = declared_raw_size(image, path, max_pixels)
            read += size
            if max_segment_bytes is not None and read > max_segment_bytes:
                raise ProtocolError(ErrorCode.TOO_LARGE, f"The message's segment images add up to over {max_segment_bytes} bytes, this server's message limit.", path)
            image["data"] = reader(ref["name"], ref["offset"], size, f"{path}.shm")
    unused = [i for i in range(len(blobs)) if i not in used]
    if unused:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"Blob {unused[0]} of the frame is used by no image; send only the blobs the message's images name.")


def declared_raw_size(image: dict, path: str, max_pixels: int | None) -> int:
    """The byte count of a raw image from its declared shape, checked against the limits
    before anything of that size is allocated."""
    width, height = image.get("width"), image.get("height")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= ABSOLUTE_MAX_SIDE:
            raise ProtocolError(ErrorCode.BAD_IMAGE, f"Image {name} must be an integer from 1 to {ABSOLUTE_MAX_SIDE}.", f"{path}.{name}")
    assert isinstance(width, int) and isinstance(height, int)
    if max_pixels is not None and width * height > max_pixels:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"Image is {width}x{height} = {width * height} pixels; this server accepts at most {max_pixels}.", path)
    if image.get("encoding", Encoding.RAW.value) not in (None, Encoding.RAW.value):
        raise ProtocolError(ErrorCode.BAD_SEGMENT, "Only raw images can be sent in a segment.", f"{path}.encoding")
    try:
        fmt = PixelFormat(image.get("format"))
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"Unknown pixel format {image.get('format')!r}.", f"{path}.format") from None
    return width * height * fmt.channels
