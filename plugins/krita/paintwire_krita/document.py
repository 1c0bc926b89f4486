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
from contextlib import contextmanager, nullcontext
from typing import Callable

from krita import Krita

from paintwire.hostkit.document import BOUNDS_MARGIN, WriteError
from paintwire.hostkit.document import write_placement as write_layers
from paintwire.hostkit.placement import Placement, PlacedLayer
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import PixelFormat, PlacementKind
from paintwire.protocol.rect import Rect

from .imaging import RawLayers, RawSnapshot
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


def layer_paths(doc) -> list[str]:
    """The paint layers' paths ("Group/Layer"), top first: what a control layer names."""
    return [path for path, _ in paint_layers(doc)]


def current_layer_path(doc) -> str | None:
    """The path of the active layer when it is a paint layer, else None."""
    node = doc.activeNode() if doc is not None else None
    return next((path for path, n in paint_layers(doc) if node is not None and n == node), None)


def read_layers(doc, paths, area: Rect | None = None) -> RawLayers:
    """The pixels of the layers at ``paths`` (control layers) in ``area`` of the canvas
    (None: all of it; a job reads its picture's area): Krita's own reads on the UI
    thread, converted later in the worker thread. A layer is read as it is, visible
    or not (control layers are usually hidden)."""
    depth = check_supported(doc)
    x, y, w, h = (area.x, area.y, area.width, area.height) if area is not None else (0, 0, doc.width(), doc.height())
    pixels = {}
    for path in dict.fromkeys(paths):
        node = find_layer(doc, path)
        if node is None:
            raise DocumentError(f"The control layer {path!r} is gone; choose another layer or remove the control.")
        pixels[path] = node.pixelData(x, y, w, h)
    return RawLayers(w, h, depth, pixels, x, y)


def write_placement(doc, placement: Placement, title: str = "Paintwire result", resize_target: str = PlacementKind.RESIZE.value):
    """Put the result's layers where its placement says (hostkit's write_placement) and
    return the document written to: new layers in ``doc``; ``doc``'s canvas grown in
    place; ``doc`` scaled to the result's size, or a new document, as ``resize_target``
    says; a new document for anything else of another size.

    Only new nodes are created, on top of the layer stack; the artist's layers
    keep their pixels. If writing fails half-way the new nodes are removed again.
    Krita's scripting API has no undo macro: growing or resizing is one undo
    step of its own (as Image > Resize Canvas / Scale Image), the new layers another.
    """
    try:
        written = write_layers(_Canvas(doc, title), placement, resize_target == PlacementKind.RESIZE.value)
    except WriteError as exc:
        raise DocumentError(str(exc)) from None
    return written.canvas.doc


class _Canvas:
    """Krita's side of hostkit's write_placement, on one document."""

    # Jobs ask the server for bgra8 (controller.OUTPUT_FORMAT), Krita's own byte order,
    # so results are written as they come, with no conversion here.
    pixel_format = PixelFormat.BGRA8

    def __init__(self, doc, title: str, new: bool = False) -> None:
        self.doc, self.title, self.new = doc, title, new
        self.depth = check_supported(doc)

    def size(self) -> tuple[int, int]:
        return self.doc.width(), self.doc.height()

    def undo_group(self):
        return nullcontext()  # no undo macro in Krita's scripting API (see write_placement)

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        self.doc.resizeImage(-offset_x, -offset_y, width, height)
        self.doc.waitForDone()

    def resize(self, width: int, height: int) -> None:
        self.doc.scaleImage(width, height, self.doc.resolution(), self.doc.resolution(), "Bicubic")
        self.doc.waitForDone()

    def new_document(self, width: int, height: int) -> "_Canvas":
        doc = self.doc
        new = Krita.instance().createDocument(width, height, self.title, doc.colorModel(), doc.colorDepth(), doc.colorProfile(), doc.resolution())
        return _Canvas(new, self.title, new=True)

    def add_group(self, name: str):
        root = self.doc.rootNode()
        children = root.childNodes()
        group = self.doc.createNode(name, "grouplayer")
        root.addChildNode(group, children[-1] if children else None)
        return group

    def add_layer(self, layer: PlacedLayer, group, above):
        clipped = clip_to_canvas(layer, *self.size())
        if clipped is None:
            return None
        parent = group if group is not None else self.doc.rootNode()
        if above is None and group is None:  # the first layer goes on top of the artist's
            children = parent.childNodes()
            above = children[-1] if children else None
        node = self.doc.createNode(clipped.name, "paintlayer")
        # Written before it is added: adding it repaints its area.
        node.setPixelData(from_8bit(clipped.pixels, self.depth), clipped.x, clipped.y, clipped.width, clipped.height)
        parent.addChildNode(node, above)
        return node

    def remove(self, node) -> None:
        node.remove()

    def show(self) -> None:
        if self.new:
            window = Krita.instance().activeWindow()
            if window is not None:
                window.addView(self.doc)


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

    def __init__(self, name: str = PREVIEW_LAYER) -> None:
        self.name = name
        self._doc = None
        self._node = None
        self._next_repaint = 0.0
        self._unpainted = False  # pixels written that the canvas does not show yet

    @property
    def showing(self) -> bool:
        return self._node is not None

    def show(self, doc, bgra: bytes, x: int, y: int, width: int, height: int) -> None:
        if not is_open(doc) or doc.colorDepth() != "U8":
            return  # other depths: the docker's own preview is enough
        if self._node is None or self._doc != doc:
            self.clear()
            for old in [n for n in doc.rootNode().childNodes() if n.name() == self.name]:
                old.remove()
            node = doc.createNode(self.name, "paintlayer")
            node.setPixelData(bgra, x, y, width, height)  # before adding it: adding repaints its area
            children = doc.rootNode().childNodes()
            with _keeping_active_layer(doc):
                doc.rootNode().addChildNode(node, children[-1] if children else None)
            self._doc, self._node = doc, node
            return
        self._node.setPixelData(bgra, x, y, width, height)
        self._unpainted = True
        self.repaint_if_due()

    def repaint_if_due(self) -> None:
        """Repaint the newest pixels once the rate allows: a caller that stops sending
        (the last frame of a live stream) calls this again later, so they still show."""
        now = time.monotonic()
        if self._node is None or not self._unpainted or now < self._next_repaint or not is_open(self._doc):
            return
        self._doc.refreshProjection()
        self._unpainted = False
        cost = time.monotonic() - now
        self._next_repaint = now + cost / PREVIEW_UI_SHARE

    @property
    def node(self):
        return self._node

    def clear(self) -> None:
        node, doc = self._node, self._doc
        self._node = self._doc = None
        self._next_repaint = 0.0
        if node is not None and is_open(doc):
            _remove(doc, node)  # removing a layer repaints its area
            # A layer of ours still there (seen under load: the remove did not take) goes
            # by name, as leftovers of a crashed Krita do in ``show``.
            for old in [n for n in doc.rootNode().childNodes() if n.name() == self.name]:
                _remove(doc, old)


def _remove(doc, node) -> None:
    """Remove ``node``. Krita refuses (remove() is False) while the image is busy with
    queued work, such as the repaint a preview asked for: wait for that, then again."""
    if not node.remove():
        doc.waitForDone()
        node.remove()


@contextmanager
def _keeping_active_layer(doc):
    """Krita makes a layer added through the API the active one: the artist's next
    stroke would land in it. The layer that was active stays active."""
    active = doc.activeNode()
    try:
        yield
    finally:
        if active is not None and doc.activeNode() != active:
            doc.setActiveNode(active)


# The docker's canvas preview (one job at a time runs from a docker).
_canvas_preview = CanvasPreview()


def show_preview(doc, preview) -> None:
    """Show a preview prepared in the worker thread (imaging.PreparedPreview) on ``doc``'s canvas."""
    if getattr(preview, "bgra", None) is not None:
        _canvas_preview.show(doc, preview.bgra, preview.x, preview.y, preview.width, preview.height)


def end_preview() -> None:
    _canvas_preview.clear()


# -- live painting ---------------------------------------------------------------------------

LIVE_LAYER = "Paintwire live"
# The live stream's frames: a layer of their own on top, gone when Live is turned off.
_live_preview = CanvasPreview(LIVE_LAYER)


def selection_bounds(doc) -> Rect | None:
    sel = doc.selection()
    if sel is None or sel.width() <= 0 or sel.height() <= 0:
        return None
    return Rect(sel.x(), sel.y(), sel.width(), sel.height())


def live_source(doc, previous=None):
    """The layer Live reads: the paint layer being painted on (never the canvas, which
    shows Live's own frames on top: reading it would feed them back). When the active
    node is not a paint layer of the artist's (a selection mask, the live layer), the
    layer read before stays the one read while it is in the document."""
    check_supported(doc)
    if doc.colorDepth() != "U8":
        raise DocumentError("Live works on 8-bit RGBA documents; convert this one with Image > Convert Image Color Space.")
    node = doc.activeNode()
    if node is not None and node.type() == "paintlayer" and node.name() != LIVE_LAYER:
        return node
    layers = [n for _, n in paint_layers(doc) if n.name() != LIVE_LAYER]
    if previous is not None and any(n == previous for n in layers):
        return previous
    if layers:  # a mask is active (Krita 5.2 activates the selection mask it makes): the top paint layer
        return layers[0]
    raise DocumentError("Add a paint layer and paint on it: Live follows the active paint layer.")


def layer_name(node) -> str:
    return node.name()


def read_band(node, x: int, y: int, width: int, height: int):
    """A rectangle of a layer's own pixels (B, G, R, A): a C++ copy, no waiting on Krita's updates."""
    return node.pixelData(x, y, width, height)


def read_selection(doc, x: int, y: int, width: int, height: int) -> bytes | None:
    sel = doc.selection()
    return bytes(sel.pixelData(x, y, width, height)) if sel is not None else None


def show_live_frame(doc, bgra: bytes, x: int, y: int, width: int, height: int) -> None:
    _live_preview.show(doc, bgra, x, y, width, height)


def repaint_live() -> None:
    """Show the newest live frame if its repaint had to wait (see PREVIEW_UI_SHARE)."""
    _live_preview.repaint_if_due()


def end_live() -> None:
    _live_preview.clear()


def add_frame_layer(doc, name: str, bgra: bytes, x: int, y: int, width: int, height: int) -> None:
    """A new layer holding a live frame, just below the live layer (which stays on top,
    so the next frames still show)."""
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(bgra, x, y, width, height)
    root = doc.rootNode()
    children = root.childNodes()
    live = next((i for i, n in enumerate(children) if n.name() == LIVE_LAYER), None)
    with _keeping_active_layer(doc):
        if live is None:
            root.addChildNode(node, children[-1] if children else None)
        else:
            root.addChildNode(node, children[live - 1] if live > 0 else None)


# -- the docker's data saved in the document (Krita annotations, written into the .kra) --------

HISTORY_ANNOTATION = "paintwire/history"
CONTROLS_ANNOTATION = "paintwire/controls"


def _load_annotation(doc, name: str) -> bytes | None:
    if doc is None or name not in doc.annotationTypes():
        return None
    return bytes(doc.annotation(name))


def _save_annotation(doc, name: str, description: str, data: bytes) -> None:
    if is_open(doc):
        doc.setAnnotation(name, description, data)


def load_history(doc) -> bytes | None:
    """The history stored in ``doc``, or None."""
    return _load_annotation(doc, HISTORY_ANNOTATION)


def save_history(doc, data: bytes) -> None:
    _save_annotation(doc, HISTORY_ANNOTATION, "Paintwire history: settings, seeds and thumbnails", data)


def load_controls(doc) -> bytes | None:
    """The control-layer list stored in ``doc``, or None."""
    return _load_annotation(doc, CONTROLS_ANNOTATION)


def save_controls(doc, data: bytes) -> None:
    _save_annotation(doc, CONTROLS_ANNOTATION, "Paintwire control layers: layer, kind, strength, steps", data)
