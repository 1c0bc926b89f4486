"""The document a host hands to the job flow, and the one rule for writing a result into it.

A host (Krita, GIMP, a web canvas, the in-memory document of the tests) is an
adapter: it implements :class:`Document`, which is what :mod:`.job_flow` reads
from and writes to, and :class:`Canvas`, the few primitives that
:func:`write_placement` needs to put a result's layers where the placement
says. Everything between (the area to read, the request, control layers,
previews, placement, history) is the kit's, the same for every host.

Pixels cross as the protocol's raw formats: a :class:`~.snapshot.Snapshot`
(8-bit pixels plus an l8 selection) in, :class:`~.placement.PlacedLayer`
out. Coordinates are canvas pixels, (0, 0) at the top left.

What a host must provide (docs/new-host.md walks through an adapter):

- ``size()``: the canvas size;
- ``selection_bounds()``: the rectangle holding the selection (with a margin
  for a soft edge's last pixels), or None when nothing is selected;
- ``snapshot(source, area)``: the input pixels (the visible image or the
  active layer) and the selection, one byte per pixel, of ``area`` only when
  given;
- ``layer_names()``: the layers a control layer may name;
- ``layer_image(control, region)``: one layer's pixels in a region of the canvas;
- ``write(placement)``: the result written (most hosts call
  :func:`write_placement` with their :class:`Canvas`);
- ``preview(event)`` and ``end_preview()``: a preview while the job runs,
  gone whatever the outcome and before anything is written.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from paintwire.protocol import ImagePayload, PixelFormat, PlacementKind, Preview
from paintwire.protocol.rect import Rect

from .controls import ControlLayer
from .placement import PlacedLayer, Placement
from .snapshot import Snapshot
from .sources import InputSource


# Pixels added round a host's selection bounds: hosts report them exactly (Krita) or
# rounded (GIMP), and a soft edge's last faint pixels must stay inside what is read.
BOUNDS_MARGIN = 2


class Document(Protocol):
    """What the job flow reads from a host's document and writes into it."""

    def size(self) -> tuple[int, int]:
        """The canvas's width and height."""

    def selection_bounds(self) -> Rect | None:
        """The canvas rectangle holding the selection, padded by BOUNDS_MARGIN, or None when nothing is selected."""

    def snapshot(self, source: InputSource, area: Rect | None = None) -> Snapshot:
        """The document's pixels and selection, where ``area`` says (None: the whole canvas)."""

    def layer_names(self) -> list[str]:
        """The names a control layer may give (top first)."""

    def layer_image(self, control: ControlLayer, region: Rect) -> ImagePayload:
        """A control layer's pixels in ``region`` of the canvas, as it is (visible or not),
        transparent where the layer does not reach."""

    def write(self, placement: Placement) -> Any:
        """Write a finished job's result; what it returns is the host's (the flow hands it back)."""

    def preview(self, event: Preview) -> None:
        """Show a preview while the job runs (a temporary layer, a window)."""

    def end_preview(self) -> None:
        """Remove what ``preview`` showed; called whatever the job's outcome, before anything is written."""


class Canvas(Protocol):
    """The writing primitives of a host, for :func:`write_placement`. A node is the
    host's own handle of a layer or group (opaque here)."""

    @property
    def pixel_format(self) -> PixelFormat:
        """The format the host asked the server for and writes as it comes (rgba8, bgra8)."""

    def size(self) -> tuple[int, int]: ...

    def undo_group(self) -> AbstractContextManager[Any]:
        """Everything written inside is one step of the host's undo history (nothing, for a new document)."""

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        """Grow the canvas to ``width`` x ``height``, the old canvas's top-left corner at the offset;
        the layers keep their pixels and move with it."""

    def resize(self, width: int, height: int) -> None:
        """Scale the whole document to ``width`` x ``height`` (a host that cannot raises)."""

    def new_document(self, width: int, height: int) -> "Canvas":
        """A new, empty document of that size, for a result that does not fit this one."""

    def add_group(self, name: str) -> Any:
        """A group layer on top of the document (the node)."""

    def add_layer(self, layer: PlacedLayer, group: Any | None, above: Any | None) -> Any | None:
        """A new layer named ``layer.name`` holding its pixels at (x, y), in ``group`` (None: the
        document), above ``above`` (the result's layer added before it; None: the first). Returns the
        node, or None when the host left it out (wholly outside the canvas)."""

    def remove(self, node: Any) -> None:
        """Take out a node this canvas added (a write that failed half-way)."""

    def show(self) -> None:
        """The write is complete: repaint, or open a view of a new document."""


class WriteError(ValueError):
    """A result that cannot be written as it came; the message says why."""


@dataclass(frozen=True)
class Written:
    """Where a result went: ``canvas`` (the document, or a new one), and the nodes added
    (bottom to top). ``top`` is the node the artist sees first: the group, else the top layer."""

    canvas: Any
    new_document: bool
    group: Any | None
    layers: tuple[Any, ...]

    @property
    def top(self) -> Any | None:
        if self.group is not None:
            return self.group
        return self.layers[-1] if self.layers else None


def lands_in(placement: Placement, size: tuple[int, int], resize_in_place: bool) -> PlacementKind:
    """What :func:`write_placement` does with ``placement`` on a document of ``size``:
    LAYERS (new layers in it), GROW (its canvas grows in place), RESIZE (it is scaled)
    or NEW_DOCUMENT. ``resize_in_place``: the artist chose to resize the document
    for a resized result (an upscale) rather than open a new one."""
    if not placement.new_document:
        return PlacementKind.LAYERS
    if placement.grows(size):
        return PlacementKind.GROW
    if placement.kind is PlacementKind.RESIZE and resize_in_place:
        return PlacementKind.RESIZE
    return PlacementKind.NEW_DOCUMENT


_WHERE = {
    PlacementKind.LAYERS: "as new layer(s)",
    PlacementKind.GROW: "on the grown canvas",
    PlacementKind.RESIZE: "to the resized document",
    PlacementKind.NEW_DOCUMENT: "as a new document",
}


def where_placed(placement: Placement, size: tuple[int, int], resize_in_place: bool) -> str:
    """Words for a status line: where write_placement put the result."""
    return _WHERE[lands_in(placement, size, resize_in_place)]


def check_formats(layers: Sequence[PlacedLayer], want: PixelFormat) -> None:
    """WriteError unless every layer is in ``want``, checked before anything is written."""
    for layer in layers:
        if layer.pixel_format is not want:
            raise WriteError(f"The server sent {layer.pixel_format.value} pixels; this plug-in asks for {want.value}.")


def write_placement(canvas: Canvas, placement: Placement, resize_in_place: bool = False) -> Written:
    """Put the result's layers where ``placement`` says: the one writing rule of every host.

    - layers: new layers in the document, at their place;
    - grow: the canvas grows in place (its layers keep their pixels and move
      by the offset), then the new layers go on top;
    - resize (when ``resize_in_place``): the document is scaled to the result's
      size, then the new layers go on top;
    - new document: anything else of another size (an upscale, a kind this
      client does not know).

    Several layers go into one group named ``placement.group``. Only new nodes
    are created; the artist's layers keep their pixels. The growth and the new
    layers are one undo step. If writing fails half-way the new nodes are
    removed again, and the error goes on.
    """
    check_formats(placement.layers, canvas.pixel_format)
    where = lands_in(placement, canvas.size(), resize_in_place)
    target = canvas.new_document(placement.width, placement.height) if where is PlacementKind.NEW_DOCUMENT else canvas
    with target.undo_group():
        if where is PlacementKind.GROW:
            target.grow(placement.width, placement.height, placement.offset_x, placement.offset_y)
        elif where is PlacementKind.RESIZE:
            target.resize(placement.width, placement.height)
        group, layers = _add_layers(target, placement)
    target.show()
    return Written(target, where is PlacementKind.NEW_DOCUMENT, group, layers)


def _add_layers(target: Canvas, placement: Placement) -> tuple[Any | None, tuple[Any, ...]]:
    created: list[Any] = []
    try:
        group = target.add_group(placement.group) if placement.group is not None else None
        if group is not None:
            created.append(group)
        above = None
        for layer in placement.layers:  # bottom to top
            node = target.add_layer(layer, group, above)
            if node is not None:
                created.append(node)
                above = node
    except Exception:
        for node in reversed(created):
            target.remove(node)
        raise
    return group, tuple(created[1:] if group is not None else created)
