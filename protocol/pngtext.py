"""Text chunks in PNG files: read them all, and add some to an encoded PNG.

Standard library only (the CLI, the server and both plug-ins use it), and
sans-I/O: bytes in, bytes out. Latin-1 text goes into a tEXt chunk, which
every reader knows (the WebUI's own readers look there first); anything else
into an uncompressed iTXt chunk (UTF-8), as the PNG specification asks.
Readers get tEXt, zTXt and iTXt alike, a later chunk of the same keyword
winning.
"""

from __future__ import annotations

import struct
import zlib
from typing import Mapping

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Text bigger than this is not settings; refusing it bounds what a hostile file costs to read.
MAX_TEXT_BYTES = 4 << 20


class PngTextError(ValueError):
    """The bytes are not a PNG file this module can read."""


def _chunks(png: bytes):
    if not png.startswith(SIGNATURE):
        raise PngTextError("not a PNG file (its first bytes are not the PNG signature)")
    pos = len(SIGNATURE)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        end = pos + 12 + length
        if end > len(png):
            raise PngTextError("the PNG file is cut short")
        yield kind, pos, end, png[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            return
        pos = end


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _keyword(key: str) -> bytes:
    raw = key.encode("latin-1")
    if not 1 <= len(raw) <= 79 or b"\x00" in raw:
        raise ValueError(f"a PNG text keyword is 1 to 79 Latin-1 characters: {key!r}")
    return raw


def text_chunk(key: str, value: str) -> bytes:
    """One chunk: tEXt when ``value`` is Latin-1, else iTXt (UTF-8, uncompressed)."""
    try:
        return _chunk(b"tEXt", _keyword(key) + b"\x00" + value.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated keyword, NUL, text
        return _chunk(b"iTXt", _keyword(key) + b"\x00\x00\x00\x00\x00" + value.encode("utf-8"))


def add_text(png: bytes, items: Mapping[str, str]) -> bytes:
    """``png`` with a text chunk per item, placed before the image data (where
    readers that stop at the first IDAT still see them). Existing chunks with the
    same keywords are dropped, so writing twice does not leave two answers."""
    keys = {_keyword(k) for k in items}
    out = [SIGNATURE]
    added = False
    for kind, start, end, data in _chunks(png):
        if kind in (b"tEXt", b"iTXt", b"zTXt") and data.split(b"\x00", 1)[0] in keys:
            continue
        if kind in (b"IDAT", b"IEND") and not added:
            out.extend(text_chunk(k, v) for k, v in items.items())
            added = True
        out.append(png[start:end])
    return b"".join(out)


def read_text(png: bytes) -> dict[str, str]:
    """Every text chunk's keyword and text. Raises PngTextError for a file that is
    not a PNG; a damaged text chunk is skipped rather than failing the file."""
    out: dict[str, str] = {}
    for kind, _, _, data in _chunks(png):
        try:
            if kind == b"tEXt":
                key, _, text = data.partition(b"\x00")
                out[key.decode("latin-1")] = text.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = data.partition(b"\x00")
                out[key.decode("latin-1")] = _inflate(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = data.partition(b"\x00")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\x00")
                _translated, _, text = rest.partition(b"\x00")
                out[key.decode("latin-1")] = (_inflate(text) if compressed else text).decode("utf-8")
        except (IndexError, UnicodeDecodeError, zlib.error, ValueError):
            continue
    return out


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, MAX_TEXT_BYTES)
    if d.unconsumed_tail:
        raise ValueError("text chunk too large")
    return out
