"""All access to Krita documents: reading pixels, the selection and layers,
writing result layers. Nothing else in the plug-in calls the document API.

Krita facts this relies on (5.1 and 5.2): ``pixelData`` of an 8-bit RGBA
document or node is B, G, R, A bytes, 16-bit integer ones are the same order
with little-endian 16-bit channels; ``Selection.pixelData`` is one byte per
pixel with feathering kept; ``Document.pixelData`` reads the projection (what
the canvas shows), current once ``waitForDone`` returns. ``Node.setPixelData``
does not repaint: a layer written before ``addChildNode`` shows when it is
added, and a layer already in the document shows only after
``Document.refreshProjection``, which recomposites the whole image (about
0.4 s at 4096x4096), hence the preview's rate below.
"""

from __future__ import annotations

import time
from typing import Callable

from krita import Krita

from paintwire.hostkit.placement import Placement, PlacedLayer
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import PixelFormat, PlacementKind
from paintwire.protocol.crops import Rect

from .imaging import RawSnapshot
from .pixels import SUPPORTED_DEPTHS, UNSUPPORTED_DEPTH_HINT, clip_to_canvas, from_8bit

SUPPORTED_MODEL = "RGBA"


class DocumentError(Exception):
    """The document cannot be used as it is; the message says what to do."""


def active_document():
    return Krita.instance().activeDocument()


def is_open(doc) -> bool:
    return doc is not None and any(d == doc for d in Krita.instance().documents())


def check_supported(doc) -> str:
    """The document's colour depth, or DocumentError saying what is supported."""
    if doc is None:
        raise DocumentError("Open or create a document first.")
    model, depth = doc.colorModel(), doc.colorDepth()
    if model != SUPPORTED_MODEL or depth not in SUPPORTED_DEPTHS:
        raise DocumentError(f"This document is {model} {depth}. {UNSUPPORTED_DEPTH_HINT}")
    return depth


def paint_layers(doc) -> list:
    """Every paint layer, top first, with its path for display ("Group/Layer")."""
    out = []

    def walk(node, prefix: str) -> None:
        for child in reversed(node.childNodes()):
            path = f"{prefix}{child.name()}"
            if child.type() == "paintlayer":
                out.append((path, child))
            elif child.type() == "grouplayer":
                walk(child, path + "/")

    if doc is not None:
        walk(doc.rootNode(), "")
    return out


def find_layer(doc, path: str):
    return next((node for p, node in paint_layers(doc) if p == path), None)


def read_snapshot(doc, input_source: str, mask_layer: str | None = None, sketch_layer: str | None = None,
                  area_for: Callable[[Rect | None], Rect] | None = None) -> RawSnapshot:
    """Read what a job needs from ``doc``: the input pixels (visible image or
    active layer), the selection and, when chosen, a layer used as the mask
    or as the strokes of an inpaint sketch (added to the selection).

    ``area_for`` turns the bounds of what is selected (selection plus sketch
    strokes) into the part of the canvas the job reads (hostkit's read_area);
    only that part is read then, which is most of the UI thread's time on a big
    canvas. A mask layer is read whole: whether it masks by alpha or by grey
    depends on all of it.

    Only Krita's own reads happen here, on the UI thread (they are C++ copies);
    the bytes are turned into a Snapshot later, in the worker thread
    (RawSnapshot.finish), so no per-pixel Python work blocks Krita.
    """
    depth = check_supported(doc)
    w, h = doc.width(), doc.height()
    sel = doc.selection()
    sketch_node = None
    if sketch_layer:
        sketch_node = find_layer(doc, sketch_layer)
        if sketch_node is None:
            raise DocumentError(f"The sketch layer {sketch_layer!r} is gone; choose another.")
    area = None
    if area_for is not None and not mask_layer:
        area = area_for(_selected_bounds(sel, sketch_node, w, h))
        if area == Rect(0, 0, w, h):
            area = None
    x, y, aw, ah = (area.x, area.y, area.width, area.height) if area is not None else (0, 0, w, h)
    if input_source == InputSource.LAYER:
        node = doc.activeNode()
        if node is None:
            raise DocumentError("There is no active layer.")
        raw = node.pixelData(x, y, aw, ah)
    else:
        # What the canvas shows, once Krita's pending updates are done. (A full
        # refreshProjection would recomposite the whole image on the UI thread.)
        doc.waitForDone()
        raw = doc.pixelData(x, y, aw, ah)
    selection = sel.pixelData(x, y, aw, ah) if sel is not None else None
    mask = None
    if mask_layer:
        node = find_layer(doc, mask_layer)
        if node is None:
            raise DocumentError(f"The mask layer {mask_layer!r} is gone; choose another.")
        mask = node.pixelData(0, 0, w, h)
    sketch = sketch_node.pixelData(x, y, aw, ah) if sketch_node is not None else None
    return RawSnapshot(w, h, depth, raw, selection, mask, sketch, area)


# Krita's selection bounds are exact; a margin keeps the last pixels of a soft edge
# inside whatever it reports.
BOUNDS_MARGIN = 2


def _selected_bounds(sel, sketch_node, width: int, height: int) -> Rect | None:
    """The canvas rectangle holding the selection and the sketch strokes, or None when
    nothing is selected (the job then reads the whole canvas)."""
    boxes = []
    if sel is not None and sel.width() > 0 and sel.height() > 0:
        boxes.append(Rect(sel.x(), sel.y(), sel.width(), sel.height()))
    if sketch_node is not None:
        b = sketch_node.bounds()
        if b.width() > 0 and b.height() > 0:
            boxes.append(Rect(b.x(), b.y(), b.width(), b.height()))
    if not boxes:
        return None
    box = boxes[0] if len(boxes) == 1 else boxes[0].union(boxes[1])
    return box.padded(BOUNDS_MARGIN, width, height)


def _to_bgra(layer: PlacedLayer) -> bytes:
    # Jobs ask the server for bgra8 (state.OUTPUT_FORMAT), Krita's own byte order,
    # so results are written as they come, with no conversion here.
    if layer.pixel_format is not PixelFormat.BGRA8:
        raise DocumentError(f"The server sent a {layer.pixel_format.value} layer; expected bgra8.")
    return layer.pixels


def write_placement(doc, placement: Placement, title: str = "Paintwire result", resize_target: str = PlacementKind.RESIZE.value):
    """Put the result's layers where its placement says and return the document written to.

    - layers: new layers in ``doc``, at their place;
    - grow: ``doc``'s canvas grows in place (its layers keep their pixels and
      move by the offset), then the new layers go on top;
    - resize: ``doc`` is scaled to the result's size, then the new layers go on
      top; or a new document, when ``resize_target`` says so;
    - new_document (and a result of another size that fits none of these): a new document.

    Only new nodes are created, on top of the layer stack; the artist's layers
    keep their pixels. If writing fails half-way the new nodes are removed again.
    Krita's scripting API has no undo macro: growing or resizing is one undo
    step of its own (as Image > Resize Canvas / Scale Image), the new layers another.
    """
    app = Krita.instance()
    size = (doc.width(), doc.height())
    grow = placement.grows(size)
    resize = placement.kind is PlacementKind.RESIZE and resize_target == PlacementKind.RESIZE.value
    new_document = placement.new_document and not grow and not resize
    if new_document:
        doc = app.createDocument(placement.width, placement.height, title, doc.colorModel(), doc.colorDepth(), doc.colorProfile(), doc.resolution())
    depth = check_supported(doc)
    if placement.new_document and grow:
        doc.resizeImage(-placement.offset_x, -placement.offset_y, placement.width, placement.height)
        doc.waitForDone()
    elif placement.new_document and resize:
        doc.scaleImage(placement.width, placement.height, doc.resolution(), doc.resolution(), "Bicubic")
        doc.waitForDone()
    _add_layers(doc, placement, depth)  # written before they are added: adding them repaints their area
    if new_document:
        window = app.activeWindow()
        if window is not None:
            window.addView(doc)
    return doc


def where_placed(placement: Placement, size: tuple[int, int], resize_target: str) -> str:
    """Words for the status line: where write_placement put the result."""
    if not placement.new_document:
        return "as new layer(s)"
    if placement.grows(size):
        return "on the grown canvas"
    if placement.kind is PlacementKind.RESIZE and resize_target == PlacementKind.RESIZE.value:
        return "to the resized document"
    return "as a new document"


def _add_layers(target, placement: Placement, depth: str) -> None:
    root = target.rootNode()
    created = []
    try:
        parent = root
        top = root.childNodes()[-1] if root.childNodes() else None
        if placement.group is not None:
            group = target.createNode(placement.group, "grouplayer")
            root.addChildNode(group, top)
            created.append(group)
            parent, top = group, None
        for layer in placement.layers:
            clipped = clip_to_canvas(layer, placement.width, placement.height)
            if clipped is None:
                continue
            node = target.createNode(clipped.name, "paintlayer")
            node.setPixelData(from_8bit(_to_bgra(clipped), depth), clipped.x, clipped.y, clipped.width, clipped.height)
            parent.addChildNode(node, top)
            created.append(node)
            top = node
    except Exception:
        for node in reversed(created):
            node.remove()
        raise


def size(doc) -> tuple[int, int]:
    return doc.width(), doc.height()


def title(doc, what: str) -> str:
    """The title of a new document made from ``doc`` ("photo.kra (Upscale)")."""
    return f"{doc.name() or 'Untitled'} ({what})"


# -- the live preview on the canvas ---------------------------------------------------------

PREVIEW_LAYER = "Paintwire preview"


# The canvas preview may take at most this share of the UI thread's time: after
# a repaint that took t seconds, the next waits at least t / share (the docker's
# own preview shows every one).
PREVIEW_UI_SHARE = 0.1


class CanvasPreview:
    """A temporary layer on top of the document that shows the job's previews.

    It is removed when the job ends, whatever the outcome (``clear``), and a
    layer of that name left by a crashed Krita is removed when the next preview
    starts. The pixels arrive already scaled to their region and in Krita's
    byte order (worker thread), so writing one is a single C++ copy here; the
    repaint (a whole-image refreshProjection: Krita's scripting API has no
    partial one) is rationed by PREVIEW_UI_SHARE.

    Adding and removing the layer are steps in Krita's undo history (its
    scripting API has no other way to add a layer), so undoing past a job's
    result shows the removed preview layer once more.
    """

    def __init__(self) -> None:
        self._doc = None
        self._node = None
        self._next_repaint = 0.0

    @property
    def showing(self) -> bool:
        return self._node is not None

    def show(self, doc, bgra: bytes, x: int, y: int, width: int, height: int) -> None:
        if not is_open(doc) or doc.colorDepth() != "U8":
            return  # other depths: the docker's own preview is enough
        if self._node is None or self._doc != doc:
            self.clear()
            for old in [n for n in doc.rootNode().childNodes() if n.name() == PREVIEW_LAYER]:
                old.remove()
            node = doc.createNode(PREVIEW_LAYER, "paintlayer")
            node.setPixelData(bgra, x, y, width, height)  # before adding it: adding repaints its area
            children = doc.rootNode().childNodes()
            doc.rootNode().addChildNode(node, children[-1] if children else None)
            self._doc, self._node = doc, node
            return
        self._node.setPixelData(bgra, x, y, width, height)
        now = time.monotonic()
        if now >= self._next_repaint:
            doc.refreshProjection()
            cost = time.monotonic() - now
            self._next_repaint = now + cost / PREVIEW_UI_SHARE

    def clear(self) -> None:
        node, doc = self._node, self._doc
        self._node = self._doc = None
        self._next_repaint = 0.0
        if node is not None and is_open(doc):
            node.remove()  # removing a layer repaints its area


# The docker's canvas preview (one job at a time runs from a docker).
_canvas_preview = CanvasPreview()


def show_preview(doc, preview) -> None:
    """Show a preview prepared in the worker thread (imaging.PreparedPreview) on ``doc``'s canvas."""
    if getattr(preview, "bgra", None) is not None:
        _canvas_preview.show(doc, preview.bgra, preview.x, preview.y, preview.width, preview.height)


def end_preview() -> None:
    _canvas_preview.clear()


# -- history saved in the document -----------------------------------------------------------

HISTORY_ANNOTATION = "paintwire/history"


def load_history(doc) -> bytes | None:
    """The history stored in ``doc`` (saved in its .kra), or None."""
    if doc is None or HISTORY_ANNOTATION not in doc.annotationTypes():
        return None
    return bytes(doc.annotation(HISTORY_ANNOTATION))


def save_history(doc, data: bytes) -> None:
    if is_open(doc):
        doc.setAnnotation(HISTORY_ANNOTATION, "Paintwire history: settings, seeds and thumbnails", data)
