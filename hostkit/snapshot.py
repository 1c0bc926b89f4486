"""What a plug-in read from its document, in 8-bit form, and the mask rules.

The same rules hold in every host: what counts as the mask when nothing is
selected, how a layer becomes a mask, how 16-bit documents come to 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from paintwire.protocol import ImagePayload, PixelFormat


@dataclass(frozen=True)
class Snapshot:
    """``pixels`` is the whole canvas (or the chosen layer, canvas-sized) in
    ``pixel_format``; ``selection`` is one byte per canvas pixel (0 = not
    selected, 255 = selected, feathering in between) or None when nothing is
    selected; ``mask_layer`` is a canvas-sized l8 mask read from a layer the
    artist chose, which replaces the selection.
    """

    width: int
    height: int
    pixels: bytes
    pixel_format: PixelFormat
    selection: bytes | None = None
    mask_layer: bytes | None = None

    def __post_init__(self) -> None:
        ImagePayload(self.width, self.height, self.pixel_format, self.pixels).validate("snapshot.pixels")
        for name in ("selection", "mask_layer"):
            data = getattr(self, name)
            if data is not None and len(data) != self.width * self.height:
                raise ValueError(f"snapshot.{name} must be {self.width * self.height} bytes (one per pixel), got {len(data)}")

    @classmethod
    def blank(cls, width: int, height: int) -> "Snapshot":
        """A canvas-sized snapshot without pixels worth reading, for modes that take no image."""
        return cls(width, height, bytes(width * height * 4), PixelFormat.RGBA8)

    def image(self) -> ImagePayload:
        return ImagePayload(self.width, self.height, self.pixel_format, self.pixels)

    def mask(self) -> bytes:
        """The mask a job uses: the chosen mask layer, else the selection, else the whole canvas."""
        if self.mask_layer is not None:
            return self.mask_layer
        if self.has_selection:
            assert self.selection is not None
            return self.selection
        return whole_canvas_mask(self.width, self.height)

    @property
    def has_selection(self) -> bool:
        return self.selection is not None and any(self.selection)


def whole_canvas_mask(width: int, height: int) -> bytes:
    """The mask used when nothing is selected: everything."""
    return b"\xff" * (width * height)


def union_masks(a: bytes, b: bytes) -> bytes:
    """Per-pixel maximum of two l8 masks of the same size (a selection plus sketch strokes)."""
    if len(a) != len(b):
        raise ValueError("masks differ in size")
    if not any(a):
        return bytes(b)
    if not any(b):
        return bytes(a)
    return bytes(map(max, a, b))


def alpha_of(pixels: bytes) -> bytes:
    """The alpha channel of 4-channel 8-bit pixels (rgba8 or bgra8) as an l8 mask."""
    return pixels[3::4]


def mask_from_layer(pixels: bytes) -> bytes:
    """An l8 mask from a layer's 4-channel 8-bit pixels.

    A layer with transparency (strokes painted on an empty layer) masks where
    it is painted: its alpha. A fully opaque layer (a greyscale mask painted
    white on black) masks by its grey level; the green byte stands for grey,
    as it sits at the same place in rgba8 and bgra8.
    """
    alpha = pixels[3::4]
    if alpha.count(255) != len(alpha):
        return alpha
    return pixels[1::4]


# Krita's and GIMP's colour depths that a plug-in brings to 8 bits.
SUPPORTED_DEPTHS = ("U8", "U16")
UNSUPPORTED_DEPTH_HINT = (
    "Paintwire works on 8-bit and 16-bit integer RGBA documents. Convert this one with "
    "Image > Convert Image Color Space (RGB/Alpha, 8 or 16 bits integer) first."
)


def to_8bit(data: bytes, depth: str) -> bytes:
    """Pixels of ``depth`` (little-endian channels) brought to 8 bits, keeping channel order.

    16-bit integers keep their high byte (exact for values that came from 8 bits).
    Raises ValueError for float depths, which carry linear light and need a
    colour-managed conversion that the host does better.
    """
    if depth == "U8":
        return bytes(data)
    if depth == "U16":
        return bytes(data[1::2])
    raise ValueError(UNSUPPORTED_DEPTH_HINT)


def from_8bit(data: bytes, depth: str) -> bytes:
    """8-bit pixels widened to ``depth`` for writing into such a document (v -> v * 257 for U16)."""
    if depth == "U8":
        return bytes(data)
    if depth == "U16":
        out = bytearray(len(data) * 2)
        out[0::2] = data
        out[1::2] = data
        return bytes(out)
    raise ValueError(UNSUPPORTED_DEPTH_HINT)
