"""Pixel work that Krita's UI thread must not do: finishing a snapshot (colour
depth, masks from layers, selection plus sketch strokes), scaling previews to
their place on the canvas, and history thumbnails. (pixels.py holds the
Qt-free byte helpers it uses.)

Everything here runs in the worker thread. It uses QImage and QPainter, which
Qt allows outside the GUI thread, and never touches Krita's API: document.py
reads the raw bytes on the UI thread (C++ copies) and hands them over as a
:class:`RawSnapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass

from paintwire.hostkit.controls import crop_image
from paintwire.hostkit.snapshot import Snapshot
from paintwire.protocol import Encoding, ImagePayload, PixelFormat, Preview, Result
from paintwire.protocol.rect import Rect

from .pixels import alpha_of, mask_from_layer, to_8bit
from .qt import QBuffer, QByteArray, QImage, QIODevice, QPainter, Qt

PREVIEW_SIDE = 256  # the docker's own preview, a side at most
THUMBNAIL_SIDE = 64  # history thumbnails (stored in the document as PNG)


@dataclass(frozen=True)
class RawSnapshot:
    """What document.read_snapshot read from Krita, not yet converted: each
    buffer is what Krita's pixelData returned (a QByteArray or bytes)."""

    width: int
    height: int
    depth: str
    pixels: object
    selection: object | None = None
    mask_layer: object | None = None
    sketch_layer: object | None = None
    area: Rect | None = None  # where the pixels, selection and sketch were read; None: the whole canvas

    def finish(self) -> Snapshot:
        """The Snapshot a request is built from (8-bit pixels, l8 masks)."""
        w, h, depth = self.width, self.height, self.depth
        box = self.area or Rect(0, 0, w, h)
        selection = bytes(self.selection) if self.selection is not None else None
        mask = mask_from_layer(to_8bit(bytes(self.mask_layer), depth)) if self.mask_layer is not None else None
        if self.sketch_layer is not None:
            strokes = alpha_of(to_8bit(bytes(self.sketch_layer), depth))
            base = mask if mask is not None else selection
            mask = strokes if base is None or base.count(0) == len(base) else union_masks(base, strokes, box.width, box.height)
        return Snapshot(w, h, to_8bit(bytes(self.pixels), depth), PixelFormat.BGRA8, selection, mask, self.area)


@dataclass(frozen=True)
class RawLayers:
    """Control layers as document.read_layers read them (Krita's bytes, not yet
    converted), by layer path; all read at the same canvas rectangle
    (x, y, width, height) and depth."""

    width: int
    height: int
    depth: str
    pixels: dict
    x: int = 0
    y: int = 0

    def payload(self, path: str, region: Rect | None = None) -> ImagePayload:
        """One layer as a bgra8 image, the job's ``region`` of the canvas (worker thread: byte work)."""
        image = ImagePayload(self.width, self.height, PixelFormat.BGRA8, to_8bit(bytes(self.pixels[path]), self.depth))
        if region is None or region == Rect(self.x, self.y, self.width, self.height):
            return image
        return crop_image(image, region.moved(-self.x, -self.y))


def union_masks(a: bytes, b: bytes, width: int, height: int) -> bytes:
    """Per-pixel maximum of two l8 masks (a selection plus sketch strokes).

    QPainter's Lighten composition of two opaque greyscale images is exactly
    max(a, b), done by Qt's raster engine in C++ rather than a Python loop
    (which took about 1.2 s on a 4096x4096 mask).
    """
    if len(a) != width * height or len(b) != width * height:
        raise ValueError("masks differ in size")
    dst = QImage(a, width, height, width, QImage.Format.Format_Grayscale8).copy()
    src = QImage(b, width, height, width, QImage.Format.Format_Grayscale8)
    painter = QPainter(dst)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Lighten)
    painter.drawImage(0, 0, src)
    painter.end()
    return _image_bytes(dst, width)


def _image_bytes(image: QImage, row_bytes: int) -> bytes:
    """An image's pixels without the padding Qt adds to align its rows."""
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    data = bytes(bits)
    stride = image.bytesPerLine()
    if stride == row_bytes:
        return data[: row_bytes * image.height()]
    return b"".join(data[y * stride : y * stride + row_bytes] for y in range(image.height()))


def to_qimage(payload) -> QImage | None:
    """A QImage (of its own) from a protocol image: raw rgba8/bgra8/l8 or PNG."""
    if payload.encoding is Encoding.PNG:
        image = QImage.fromData(payload.data, "PNG")
        return None if image.isNull() else image
    fmt = {PixelFormat.RGBA8: QImage.Format.Format_RGBA8888, PixelFormat.BGRA8: QImage.Format.Format_ARGB32, PixelFormat.L8: QImage.Format.Format_Grayscale8}
    if payload.format not in fmt:
        return None
    return QImage(payload.data, payload.width, payload.height, payload.width * payload.format.channels, fmt[payload.format]).copy()


@dataclass(frozen=True)
class PreparedPreview:
    """A preview made ready in the worker thread: ``bgra`` covers the region
    (x, y, width, height) of the document in Krita's byte order; ``small`` is
    the docker's copy."""

    event: Preview
    bgra: bytes | None
    x: int
    y: int
    width: int
    height: int
    small: QImage | None


def prepare_preview(event: Preview) -> PreparedPreview:
    image = to_qimage(event.image)
    if image is None:
        return PreparedPreview(event, None, 0, 0, 0, 0, None)
    small = image.scaled(PREVIEW_SIDE, PREVIEW_SIDE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    w, h = event.width or image.width(), event.height or image.height()
    region = image.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation).convertToFormat(QImage.Format.Format_ARGB32)
    # Format_ARGB32 is 0xAARRGGBB words: B, G, R, A bytes on little-endian machines, as Krita's U8 layers.
    return PreparedPreview(event, _image_bytes(region, w * 4), event.x, event.y, w, h, small)


def thumbnail_png(result: Result, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small PNG of the result's first layer, for the history list."""
    if not result.layers:
        return b""
    image = to_qimage(result.layers[0].image)
    if image is None:
        return b""
    small = image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    small.save(buffer, "PNG")
    buffer.close()
    return bytes(data)


def decode_png_bgra(data: bytes) -> tuple[int, int, bytes] | None:
    """A PNG's size and pixels in Krita's byte order (B, G, R, A), or None when Qt cannot read it."""
    image = QImage.fromData(data, "PNG")
    if image.isNull():
        return None
    image = image.convertToFormat(QImage.Format.Format_ARGB32)
    return image.width(), image.height(), _image_bytes(image, image.width() * 4)
