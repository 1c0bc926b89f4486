"""Image payloads: raw pixels with their shape, as they cross the wire.

Images travel as raw bytes in the host's own layout (Krita hands out BGRA,
GIMP RGBA, selections one byte per pixel), so no side has to encode PNG on the
local hot path. PNG is accepted for slow links; its header is checked here and
the pixels are decoded by the server.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import ErrorCode, ProtocolError


class PixelFormat(str, enum.Enum):
    RGBA8 = "rgba8"  # R, G, B, A bytes; straight (not premultiplied) alpha
    BGRA8 = "bgra8"  # B, G, R, A bytes, as Krita's 8-bit RGBA documents store them
    L8 = "l8"  # one byte per pixel: masks and selections (0 = keep, 255 = regenerate)

    @property
    def channels(self) -> int:
        return 1 if self is PixelFormat.L8 else 4


class Encoding(str, enum.Enum):
    RAW = "raw"  # width * height * channels bytes, rows top to bottom, no padding
    PNG = "png"  # a PNG file; its size must match width and height


# A side of 16384 matches Krita's and GIMP's practical maximum for 8-bit canvases.
ABSOLUTE_MAX_SIDE = 16384
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImagePayload:
    """One image on the wire."""

    width: int
    height: int
    format: PixelFormat
    data: bytes
    encoding: Encoding = Encoding.RAW

    @property
    def pixel_count(self) -> int:
        return self.width * self.height

    @property
    def expected_raw_size(self) -> int:
        return self.width * self.height * self.format.channels

    def to_wire(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "format": self.format.value,
            "encoding": self.encoding.value,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, obj: object, field: str, max_pixels: int | None = None) -> "ImagePayload":
        """Build and validate an image from its wire form.

        Raises ProtocolError(BAD_IMAGE or TOO_LARGE) naming ``field``.
        """
        if not isinstance(obj, dict):
            raise ProtocolError(ErrorCode.BAD_IMAGE, "An image must be a map with width, height, format and data.", field)
        width, height = obj.get("width"), obj.get("height")
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ProtocolError(ErrorCode.BAD_IMAGE, f"Image {name} must be an integer.", f"{field}.{name}")
            if value < 1:
                raise ProtocolError(ErrorCode.BAD_IMAGE, f"Image {name} must be at least 1 pixel, got {value}.", f"{field}.{name}")
            if value > ABSOLUTE_MAX_SIDE:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"Image {name} {value} is over the maximum side of {ABSOLUTE_MAX_SIDE} pixels.",
                    f"{field}.{name}",
                )
        assert isinstance(width, int) and isinstance(height, int)
        if max_pixels is not None and width * height > max_pixels:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"Image is {width}x{height} = {width * height} pixels; this server accepts at most {max_pixels}.",
                field,
            )
        try:
            fmt = PixelFormat(obj.get("format"))
        except ValueError:
            allowed = ", ".join(f.value for f in PixelFormat)
            raise ProtocolError(ErrorCode.BAD_IMAGE, f"Unknown pixel format {obj.get('format')!r}; use one of {allowed}.", f"{field}.format") from None
        try:
            encoding = Encoding(Encoding.RAW.value if obj.get("encoding") is None else obj["encoding"])  # absent or nil: raw
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_IMAGE, f"Unknown encoding {obj.get('encoding')!r}; use raw or png.", f"{field}.encoding") from None
        data = obj.get("data")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProtocolError(ErrorCode.BAD_IMAGE, "Image data must be binary (msgpack bin), not a string or list.", f"{field}.data")
        # A view into the received frame stays a view: the pixels are not copied here.
        payload = cls(width, height, fmt, data if isinstance(data, (bytes, memoryview)) else bytes(data), encoding)
        payload.validate(field)
        return payload

    def validate(self, field: str = "image") -> None:
        """Check that the bytes agree with the declared shape."""
        if self.encoding is Encoding.RAW:
            if len(self.data) != self.expected_raw_size:
                raise ProtocolError(
                    ErrorCode.BAD_IMAGE,
                    f"A {self.width}x{self.height} {self.format.value} image needs {self.expected_raw_size} bytes, got {len(self.data)}.",
                    f"{field}.data",
                )
            return
        size = png_size(self.data)
        if size is None:
            raise ProtocolError(ErrorCode.BAD_IMAGE, "Image data is not a PNG file.", f"{field}.data")
        if size != (self.width, self.height):
            raise ProtocolError(
                ErrorCode.BAD_IMAGE,
                f"The PNG is {size[0]}x{size[1]} but the image says {self.width}x{self.height}.",
                f"{field}.data",
            )


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None if it is not a PNG."""
    data = bytes(data[:24])  # bytes or a view of a frame
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def raw_image(width: int, height: int, fmt: PixelFormat | str, data: bytes) -> ImagePayload:
    """Convenience for clients: a raw payload, validated."""
    payload = ImagePayload(width, height, PixelFormat(fmt), bytes(data))
    payload.validate()
    return payload
