"""All access to GIMP's image: reading pixels and the selection, writing results.
GimpDocument is this plug-in's adapter for hostkit's Document, _Canvas its
primitives for hostkit's write_placement.

Pixels cross as 8-bit straight RGBA ("R'G'B'A u8", the protocol's rgba8) and
the selection as "Y u8" (the protocol's l8, feathering kept); GEGL converts
from and to whatever precision the image has, so 16-bit and float images work
without code here.
"""

from __future__ import annotations

from contextlib import contextmanager

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

from paintwire.hostkit.document import BOUNDS_MARGIN, WriteError, write_placement  # noqa: E402
from paintwire.hostkit.placement import PlacedLayer, Placement  # noqa: E402
from paintwire.hostkit.snapshot import Snapshot  # noqa: E402
from paintwire.hostkit.sources import InputSource  # noqa: E402
from paintwire.protocol import Encoding, ImagePayload, PixelFormat, Preview  # noqa: E402
from paintwire.protocol.rect import Rect  # noqa: E402

from actions import PluginError  # noqa: E402

RGBA = "R'G'B'A u8"
MASK = "Y u8"
PREVIEW_LAYER = "Paintwire preview"

_LAYER_TYPES = {
    Gimp.ImageBaseType.RGB: Gimp.ImageType.RGBA_IMAGE,
    Gimp.ImageBaseType.GRAY: Gimp.ImageType.GRAYA_IMAGE,
}


def _read(drawable, x: int, y: int, width: int, height: int, fmt: str) -> bytes:
    # AbyssPolicy.NONE: outside the drawable reads as transparent (zeros), so a
    # layer smaller than the canvas gives a canvas-sized image with empty borders.
    rect = Gegl.Rectangle.new(x, y, width, height)
    return bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE))


class GimpDocument:
    """One GIMP image as the plug-in sees it."""

    def __init__(self, image, drawables, interactive: bool) -> None:
        self.image = image
        self.drawables = list(drawables or [])
        self.interactive = interactive
        self._preview: _PreviewImage | None = None  # the temporary preview image while a job runs

    def check(self) -> None:
        if self.image.get_base_type() not in _LAYER_TYPES:
            raise PluginError("Paintwire works on RGB and grayscale images. Convert this one with Image > Mode > RGB first.")

    def size(self) -> tuple[int, int]:
        return self.image.get_width(), self.image.get_height()

    # -- reading --------------------------------------------------------------------------

    def snapshot(self, source: InputSource, area: Rect | None = None) -> Snapshot:
        """The pixels and the selection, of ``area`` only when given (what the job reads)."""
        width, height = self.size()
        box = area or Rect(0, 0, width, height)
        if source is InputSource.LAYER and len(self.drawables) == 1:
            pixels = self._drawable_pixels(self.drawables[0], box)
        else:
            pixels = self._visible_pixels(box)
        return Snapshot(width, height, pixels, PixelFormat.RGBA8, selection=self.selection(box), area=area)

    def layer_names(self) -> list[str]:
        """Every layer's name, top first, groups' children after their group (GIMP keeps names unique)."""
        return [layer.get_name() for layer in self._layers()]

    def layer_image(self, control, region: Rect) -> ImagePayload:
        """A control layer's pixels in the job's ``region`` of the canvas, read as it is,
        visible or not, transparent where the layer does not reach."""
        layer = next((item for item in self._layers() if item.get_name() == control.layer), None)
        if layer is None:
            raise PluginError(f"The image has no layer {control.layer!r} to use as a control layer.")
        _, off_x, off_y = layer.get_offsets()
        return ImagePayload(region.width, region.height, PixelFormat.RGBA8,
                            _read(layer, region.x - off_x, region.y - off_y, region.width, region.height, RGBA))

    def _layers(self) -> list:
        out = []

        def walk(items) -> None:
            for item in items:
                out.append(item)
                if item.is_group():
                    walk(item.get_children())

        walk(self.image.get_layers())
        return out

    def selection_bounds(self) -> Rect | None:
        """The canvas rectangle holding the selection (with a margin of BOUNDS_MARGIN for a
        soft edge's last pixels), or None when nothing is selected."""
        if Gimp.Selection.is_empty(self.image):
            return None
        non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(self.image)[-5:]  # (ok,) non_empty, x1, y1, x2, y2
        if not non_empty or x2 <= x1 or y2 <= y1:
            return None
        width, height = self.size()
        return Rect(x1, y1, x2 - x1, y2 - y1).padded(BOUNDS_MARGIN, width, height)

    def selection(self, box: Rect | None = None) -> bytes | None:
        """The selection as one byte per pixel of ``box`` (the canvas), or None when nothing is selected."""
        if Gimp.Selection.is_empty(self.image):
            return None
        box = box or Rect(0, 0, *self.size())
        return _read(self.image.get_selection(), box.x, box.y, box.width, box.height, MASK)

    def _drawable_pixels(self, drawable, box: Rect) -> bytes:
        _, off_x, off_y = drawable.get_offsets()
        return _read(drawable, box.x - off_x, box.y - off_y, box.width, box.height, RGBA)

    def _visible_pixels(self, box: Rect) -> bytes:
        # A temporary layer that is never inserted: no undo step, nothing to clean up in the image.
        layer = Gimp.Layer.new_from_visible(self.image, self.image, "Paintwire input")
        try:
            _, off_x, off_y = layer.get_offsets()
            return _read(layer, box.x - off_x, box.y - off_y, box.width, box.height, RGBA)
        finally:
            layer.delete()

    # -- writing --------------------------------------------------------------------------

    def write(self, placement: Placement):
        """Insert the result (hostkit's write_placement). Returns (new image or None, the top inserted layer).

        In the artist's image everything happens in one undo group, so one Undo
        removes the whole result (and, for an expand, the canvas growth);
        original layers keep their pixels. A grown canvas (expand) grows this
        image in place, the layers keeping their place on the old canvas; a
        result of another size (an upscale) opens as a new image.
        """
        try:
            written = write_placement(_Canvas(self.image, self.interactive), placement)
        except WriteError as exc:
            raise PluginError(str(exc)) from None
        return (written.canvas.image if written.new_document else None), written.top

    # -- the preview while a job runs -----------------------------------------------------

    def preview(self, event: Preview) -> None:
        """Show the job's latest preview in a temporary image of its own (in a window
        when GIMP is interactive), never in the artist's image.

        GIMP ends the plug-in's process when the artist cancels from the progress bar,
        so nothing the plug-in adds to the artist's image could be taken away again:
        a preview layer there would be left behind. A separate image costs the
        document nothing; end_preview deletes it whatever the outcome.
        """
        img = event.image
        if img.encoding is not Encoding.RAW or img.format is not PixelFormat.RGBA8:
            return  # the server sends raw rgba8 previews; anything else is skipped, not an error
        if self._preview is not None and not self._preview.fits(img.width, img.height):
            self.end_preview()
        if self._preview is None:
            self._preview = _PreviewImage.open(img.width, img.height, self.interactive)
        self._preview.show(img.data, img.width, img.height)

    def end_preview(self) -> None:
        preview, self._preview = self._preview, None
        if preview is not None:
            preview.close()

class _Canvas:
    """GIMP's side of hostkit's write_placement: one image, the artist's or a new one."""

    pixel_format = PixelFormat.RGBA8

    def __init__(self, image, interactive: bool, new: bool = False) -> None:
        self.image, self.interactive, self.new = image, interactive, new
        # -1 with no parent: above the active layer; 0: on top (a new image's first layers).
        self.position = 0 if new else -1

    def size(self) -> tuple[int, int]:
        return self.image.get_width(), self.image.get_height()

    @contextmanager
    def undo_group(self):
        if self.new:  # a new image starts with an empty undo history
            self.image.undo_disable()
            try:
                yield
            finally:
                self.image.undo_enable()
            return
        self.image.undo_group_start()
        try:
            yield
        finally:
            self.image.undo_group_end()

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        self.image.resize(width, height, offset_x, offset_y)

    def resize(self, width: int, height: int) -> None:
        raise WriteError("GIMP opens a resized result as a new image.")  # write() never asks to resize in place

    def new_document(self, width: int, height: int) -> "_Canvas":
        base = Gimp.ImageBaseType.GRAY if self.image.get_base_type() == Gimp.ImageBaseType.GRAY else Gimp.ImageBaseType.RGB
        return _Canvas(Gimp.Image.new(width, height, base), self.interactive, new=True)

    def add_group(self, name: str):
        group = Gimp.GroupLayer.new(self.image, name)
        self.image.insert_layer(group, None, self.position)
        return group

    def add_layer(self, placed: PlacedLayer, group, above):
        layer_type = _LAYER_TYPES[self.image.get_base_type()]
        layer = Gimp.Layer.new(self.image, placed.name, placed.width, placed.height, layer_type, 100.0, Gimp.LayerMode.NORMAL)
        # Bottom to top: each goes on top of its group, or above the layer inserted before it (the active one).
        self.image.insert_layer(layer, group, 0 if group is not None else self.position)
        layer.set_offsets(placed.x, placed.y)
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, placed.width, placed.height), RGBA, placed.pixels)
        buffer.flush()
        layer.update(0, 0, placed.width, placed.height)
        return layer

    def remove(self, node) -> None:
        self.image.remove_layer(node)

    def show(self) -> None:
        if self.new and self.interactive:
            Gimp.Display.new(self.image)
        if self.interactive or not self.new:
            Gimp.displays_flush()


class GimpProgress:
    """GIMP's progress bar (the status bar in the image window, the console in batch mode).

    Cancel: the progress bar's cancel button makes GIMP close this plug-in's
    process. The websocket then drops, the server cancels the job, and since
    layers are only written after a complete result arrives, the image is left
    as it was.
    """

    def start(self, text: str) -> None:
        Gimp.progress_init(text)

    def text(self, text: str) -> None:
        Gimp.progress_set_text(text)

    def fraction(self, value: float) -> None:
        Gimp.progress_update(value)

    def end(self) -> None:
        Gimp.progress_end()


class _PreviewImage:
    """A temporary image holding one preview layer, with a display when interactive."""

    def __init__(self, image, layer, display) -> None:
        self.image, self.layer, self.display = image, layer, display

    @classmethod
    def open(cls, width: int, height: int, interactive: bool) -> "_PreviewImage":
        image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
        image.undo_disable()  # a scratch image: no history to keep
        layer = Gimp.Layer.new(image, PREVIEW_LAYER, width, height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, None, 0)
        display = Gimp.Display.new(image) if interactive else None
        return cls(image, layer, display)

    def fits(self, width: int, height: int) -> bool:
        return (self.image.get_width(), self.image.get_height()) == (width, height)

    def show(self, data: bytes, width: int, height: int) -> None:
        buffer = self.layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, width, height), RGBA, data)
        buffer.flush()
        self.layer.update(0, 0, width, height)
        Gimp.displays_flush()

    def close(self) -> None:
        if self.display is not None and self.display.is_valid():
            self.display.delete()  # deleting the last display of an image deletes the image too
        elif self.image.is_valid():
            self.image.delete()
        Gimp.displays_flush()
