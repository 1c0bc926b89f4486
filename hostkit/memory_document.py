"""A document held in memory: the smallest complete host adapter.

:class:`MemoryDocument` implements :class:`~.document.Document` and
:class:`~.document.Canvas` over numpy arrays: a layer tree (paint layers and
groups), an active layer, a selection, undo steps and a canvas that grows.
The tests drive the job flow through it against a real server
(tests/integration/test_null_host.py), and it is the worked example of
docs/new-host.md: what Krita's and GIMP's adapters do with their hosts' APIs,
it does with arrays.

Unlike the rest of the kit it needs numpy (the visible image is composited
with the protocol's one "over" rule, paintwire.protocol.compositing), so the
plug-in bundles leave it out; a plug-in never imports it.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from paintwire.protocol import ImagePayload, PixelFormat, Preview
from paintwire.protocol.compositing import place_over
from paintwire.protocol.rect import Rect

from .controls import ControlLayer
from .document import BOUNDS_MARGIN, Written, write_placement
from .placement import PlacedLayer, Placement
from .snapshot import Snapshot
from .sources import InputSource


@dataclass(eq=False)
class Node:
    """A paint layer (``pixels``: (h, w, 4) straight RGBA at x, y) or a group (``children``, bottom to top)."""

    name: str
    pixels: np.ndarray | None = None
    x: int = 0
    y: int = 0
    visible: bool = True
    children: list["Node"] | None = None

    @property
    def is_group(self) -> bool:
        return self.children is not None


@dataclass
class _State:
    width: int
    height: int
    layers: list[Node]
    selection: np.ndarray | None


@dataclass(eq=False)
class MemoryDocument:
    """A ``width`` x ``height`` RGBA document; ``layers`` bottom to top."""

    width: int
    height: int
    layers: list[Node] = field(default_factory=list)
    selection: np.ndarray | None = None  # (height, width) uint8, 0 = not selected; None: nothing
    active: Node | None = None
    # What happened, in order: ("preview", x, y, w, h), "end_preview", "write"; for tests that check the order.
    log: list = field(default_factory=list)
    opened: list["MemoryDocument"] = field(default_factory=list)  # documents new_document made
    _undo: list[_State] = field(default_factory=list)

    pixel_format = PixelFormat.RGBA8

    # -- building a document -----------------------------------------------------------------

    def add_paint_layer(self, name: str, pixels: np.ndarray, x: int = 0, y: int = 0, visible: bool = True) -> Node:
        """A paint layer on top; it becomes the active layer."""
        pixels = np.asarray(pixels, np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 4:
            raise ValueError(f"a layer's pixels are (h, w, 4) RGBA, got {pixels.shape}")
        node = Node(name, pixels.copy(), x, y, visible)
        self.layers.append(node)
        self.active = node
        return node

    def select(self, mask: np.ndarray | None) -> None:
        """Set the selection: (height, width) uint8, feathering in between; None selects nothing."""
        if mask is not None:
            mask = np.asarray(mask, np.uint8)
            if mask.shape != (self.height, self.width):
                raise ValueError(f"the selection is {mask.shape}; the canvas is {(self.height, self.width)}")
        self.selection = mask

    def select_rect(self, rect: Rect) -> None:
        mask = np.zeros((self.height, self.width), np.uint8)
        mask[rect.y:rect.bottom, rect.x:rect.right] = 255
        self.select(mask)

    def find(self, name: str) -> Node | None:
        return next((node for node in self._walk(self.layers) if node.name == name), None)

    def visible(self) -> np.ndarray:
        """What the canvas shows: the visible paint layers over a transparent canvas, bottom to top."""
        canvas = np.zeros((self.height, self.width, 4), np.uint8)
        for node in self._paint_bottom_up(self.layers):
            canvas = place_over(canvas, node.pixels, node.x, node.y)
        return canvas

    def layer_canvas(self, node: Node) -> np.ndarray:
        """A paint layer's own pixels, canvas-sized: transparent where it does not reach."""
        return self._read(node, Rect(0, 0, self.width, self.height))

    def undo(self) -> None:
        """Take back the last undo step (a written result, a grown canvas)."""
        state = self._undo.pop()
        self.width, self.height, self.layers, self.selection = state.width, state.height, state.layers, state.selection
        self.active = self.layers[-1] if self.layers else None

    @property
    def undo_steps(self) -> int:
        return len(self._undo)

    # -- Document ----------------------------------------------------------------------------

    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def selection_bounds(self) -> Rect | None:
        if self.selection is None:
            return None
        rows = np.flatnonzero(self.selection.any(axis=1))
        cols = np.flatnonzero(self.selection.any(axis=0))
        if rows.size == 0:
            return None
        box = Rect(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
        return box.padded(BOUNDS_MARGIN, self.width, self.height)

    def snapshot(self, source: InputSource, area: Rect | None = None) -> Snapshot:
        box = area or Rect(0, 0, self.width, self.height)
        if source is InputSource.LAYER and self.active is not None and not self.active.is_group:
            pixels = self._read(self.active, box)
        else:
            pixels = self.visible()[box.y:box.bottom, box.x:box.right]
        selection = None
        if self.selection is not None:
            selection = np.ascontiguousarray(self.selection[box.y:box.bottom, box.x:box.right]).tobytes()
        return Snapshot(self.width, self.height, np.ascontiguousarray(pixels).tobytes(), PixelFormat.RGBA8, selection, area=area)

    def layer_names(self) -> list[str]:
        """Every layer's name, top first, a group's children after it."""
        out: list[str] = []

        def walk(nodes: list[Node]) -> None:
            for node in reversed(nodes):
                out.append(node.name)
                if node.children is not None:
                    walk(node.children)

        walk(self.layers)
        return out

    def layer_image(self, control: ControlLayer, region: Rect) -> ImagePayload:
        node = self.find(control.layer)
        if node is None or node.is_group:
            raise ValueError(f"The document has no paint layer {control.layer!r} to use as a control layer.")
        return ImagePayload(region.width, region.height, PixelFormat.RGBA8, self._read(node, region).tobytes())

    def write(self, placement: Placement) -> Written:
        self.log.append("write")
        return write_placement(self, placement)

    def preview(self, event: Preview) -> None:
        self.log.append(("preview", event.x, event.y, event.width, event.height))

    def end_preview(self) -> None:
        self.log.append("end_preview")

    # -- Canvas ------------------------------------------------------------------------------

    @contextmanager
    def undo_group(self) -> Iterator[None]:
        before = _State(self.width, self.height, copy.deepcopy(self.layers), None if self.selection is None else self.selection.copy())
        try:
            yield
        finally:
            self._undo.append(before)

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        for node in self._walk(self.layers):
            node.x += offset_x
            node.y += offset_y
        if self.selection is not None:
            grown = np.zeros((height, width), np.uint8)
            grown[offset_y:offset_y + self.height, offset_x:offset_x + self.width] = self.selection
            self.selection = grown
        self.width, self.height = width, height

    def resize(self, width: int, height: int) -> None:
        """Scale every layer (nearest neighbour: the kit's documents are for tests, not for looks)."""
        sx, sy = width / self.width, height / self.height
        for node in self._walk(self.layers):
            if node.pixels is None:
                continue
            h, w = node.pixels.shape[:2]
            nw, nh = max(1, round(w * sx)), max(1, round(h * sy))
            rows = np.minimum((np.arange(nh) / sy).astype(int), h - 1)
            cols = np.minimum((np.arange(nw) / sx).astype(int), w - 1)
            node.pixels = node.pixels[rows][:, cols]
            node.x, node.y = round(node.x * sx), round(node.y * sy)
        self.selection = None
        self.width, self.height = width, height

    def new_document(self, width: int, height: int) -> "MemoryDocument":
        doc = MemoryDocument(width, height)
        self.opened.append(doc)
        return doc

    def add_group(self, name: str) -> Node:
        node = Node(name, children=[])
        self.layers.append(node)
        return node

    def add_layer(self, layer: PlacedLayer, group: Node | None, above: Node | None) -> Node:
        pixels = np.frombuffer(layer.pixels, np.uint8).reshape(layer.height, layer.width, 4).copy()
        node = Node(layer.name, pixels, layer.x, layer.y)
        siblings = group.children if group is not None else self.layers
        assert siblings is not None
        siblings.insert(siblings.index(above) + 1 if above is not None else len(siblings), node)
        return node

    def remove(self, node: Node) -> None:
        for siblings in [self.layers] + [n.children for n in self._walk(self.layers) if n.children is not None]:
            if node in siblings:
                siblings.remove(node)
                return

    def show(self) -> None:
        pass  # nothing to repaint

    # -- reading -----------------------------------------------------------------------------

    def _read(self, node: Node, region: Rect) -> np.ndarray:
        """``node``'s pixels in ``region`` of the canvas, transparent where it does not reach."""
        assert node.pixels is not None
        out = np.zeros((region.height, region.width, 4), np.uint8)
        h, w = node.pixels.shape[:2]
        x0, y0 = max(region.x, node.x), max(region.y, node.y)
        x1, y1 = min(region.right, node.x + w), min(region.bottom, node.y + h)
        if x1 > x0 and y1 > y0:
            out[y0 - region.y:y1 - region.y, x0 - region.x:x1 - region.x] = node.pixels[y0 - node.y:y1 - node.y, x0 - node.x:x1 - node.x]
        return out

    @staticmethod
    def _walk(nodes: list[Node]) -> Iterator[Node]:
        for node in nodes:
            yield node
            if node.children is not None:
                yield from MemoryDocument._walk(node.children)

    @staticmethod
    def _paint_bottom_up(nodes: list[Node]) -> Iterator[Node]:
        for node in nodes:
            if not node.visible:
                continue
            if node.children is not None:
                yield from MemoryDocument._paint_bottom_up(node.children)
            elif node.pixels is not None:
                yield node
