"""Krita's pixels in and out: colour depths, masks read from layers, and
result layers clipped to the canvas. Krita-only (GIMP's GEGL converts depths
and clips by itself), kept apart from document.py so it is tested without Krita.
Byte slicing only; what needs a per-pixel operation (the union of the
selection and sketch strokes) is imaging.py's, with QPainter, off the UI thread.
"""

from __future__ import annotations

from dataclasses import replace

from paintwire.hostkit.placement import PlacedLayer


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


# The colour depths the plug-in brings to 8 bits.
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


def clip_to_canvas(layer: PlacedLayer, width: int, height: int) -> PlacedLayer | None:
    """The part of ``layer`` inside a ``width`` x ``height`` canvas, or None if none is."""
    x0, y0 = max(layer.x, 0), max(layer.y, 0)
    x1, y1 = min(layer.x + layer.width, width), min(layer.y + layer.height, height)
    if x1 <= x0 or y1 <= y0:
        return None
    if (x0, y0, x1, y1) == (layer.x, layer.y, layer.x + layer.width, layer.y + layer.height):
        return layer
    bpp = layer.pixel_format.channels
    stride = layer.width * bpp
    rows = []
    for row in range(y0 - layer.y, y1 - layer.y):
        start = row * stride + (x0 - layer.x) * bpp
        rows.append(layer.pixels[start : start + (x1 - x0) * bpp])
    return replace(layer, x=x0, y=y0, width=x1 - x0, height=y1 - y0, pixels=b"".join(rows))
