"""All access to Krita documents: reading pixels, the selection and layers,
writing result layers. Nothing else in the plug-in calls the document API.

Krita facts this relies on (5.1): ``pixelData`` of an 8-bit RGBA document or
node is B, G, R, A bytes, 16-bit integer ones are the same order with
little-endian 16-bit channels; ``Selection.pixelData`` is one byte per pixel
with feathering kept; ``Document.pixelData`` reads the projection, which is
current only after ``refreshProjection`` and ``waitForDone``.
"""

from __future__ import annotations

from krita import Krita

from paintwire.hostkit.placement import Placement, PlacedLayer
from paintwire.hostkit.snapshot import Snapshot
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import PixelFormat

from .pixels import SUPPORTED_DEPTHS, UNSUPPORTED_DEPTH_HINT, alpha_of, clip_to_canvas, from_8bit, mask_from_layer, to_8bit, union_masks

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


def snapshot(doc, input_source: str, mask_layer: str | None = None, sketch_layer: str | None = None) -> Snapshot:
    """Read what a job needs from ``doc``: the input pixels (visible image or
    active layer), the selection and, when chosen, a layer used as the mask
    or as the strokes of an inpaint sketch (added to the selection)."""
    depth = check_supported(doc)
    w, h = doc.width(), doc.height()
    if input_source == InputSource.LAYER:
        node = doc.activeNode()
        if node is None:
            raise DocumentError("There is no active layer.")
        raw = node.pixelData(0, 0, w, h)
    else:
        doc.refreshProjection()
        doc.waitForDone()
        raw = doc.pixelData(0, 0, w, h)
    pixels = to_8bit(bytes(raw), depth)
    sel = doc.selection()
    selection = bytes(sel.pixelData(0, 0, w, h)) if sel is not None else None
    layer_mask = None
    if mask_layer:
        node = find_layer(doc, mask_layer)
        if node is None:
            raise DocumentError(f"The mask layer {mask_layer!r} is gone; choose another.")
        layer_mask = mask_from_layer(to_8bit(bytes(node.pixelData(0, 0, w, h)), depth))
    if sketch_layer:
        node = find_layer(doc, sketch_layer)
        if node is None:
            raise DocumentError(f"The sketch layer {sketch_layer!r} is gone; choose another.")
        strokes = alpha_of(to_8bit(bytes(node.pixelData(0, 0, w, h)), depth))
        base = layer_mask if layer_mask is not None else (selection if selection is not None else bytes(w * h))
        layer_mask = union_masks(base, strokes)
    return Snapshot(w, h, pixels, PixelFormat.BGRA8, selection, layer_mask)


def _to_bgra(layer: PlacedLayer) -> bytes:
    # Jobs ask the server for bgra8 (state.OUTPUT_FORMAT), Krita's own byte order,
    # so results are written as they come, with no conversion here.
    if layer.pixel_format is not PixelFormat.BGRA8:
        raise DocumentError(f"The server sent a {layer.pixel_format.value} layer; expected bgra8.")
    return layer.pixels


def write_placement(doc, placement: Placement, title: str = "Paintwire result"):
    """Add the result's layers to ``doc`` (or to a new document when the result
    canvas has another size) and return the document written to.

    Only new nodes are created, on top of the layer stack; the artist's layers
    are not touched. If writing fails half-way the new nodes are removed again.
    """
    app = Krita.instance()
    if placement.new_document:
        target = app.createDocument(placement.width, placement.height, title, doc.colorModel(), doc.colorDepth(), doc.colorProfile(), doc.resolution())
    else:
        target = doc
    depth = check_supported(target)
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
    target.refreshProjection()
    if placement.new_document:
        window = app.activeWindow()
        if window is not None:
            window.addView(target)
    return target


def size(doc) -> tuple[int, int]:
    return doc.width(), doc.height()


def title(doc, what: str) -> str:
    """The title of a new document made from ``doc`` ("photo.kra (Upscale)")."""
    return f"{doc.name() or 'Untitled'} ({what})"
