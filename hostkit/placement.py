"""Where a job's result goes, and what its layers are called."""

from __future__ import annotations

from dataclasses import dataclass

from paintwire.protocol import PixelFormat, PlacementKind, Result

MAX_LAYER_NAME = 80  # Krita and GIMP accept longer names, but the layer list truncates them


def layer_name(prompt: str | None, seed: int | None, fallback: str) -> str:
    """A result layer's name: the prompt's start and the seed ("a red fox [seed 42]")."""
    text = " ".join((prompt or "").split()) or fallback or "Paintwire"
    suffix = f" [seed {seed}]" if seed is not None else ""
    room = MAX_LAYER_NAME - len(suffix)
    if len(text) > room:
        text = text[: max(1, room - 1)].rstrip() + "\u2026"
    return text + suffix


@dataclass(frozen=True)
class PlacedLayer:
    """A result layer ready to write: its pixels at (x, y) on the target canvas."""

    name: str
    x: int
    y: int
    width: int
    height: int
    pixels: bytes
    pixel_format: PixelFormat
    seed: int | None


@dataclass(frozen=True)
class Placement:
    """Where a job's result goes.

    ``kind`` is the mode's placement (see PlacementKind), resolved for a kind
    this client does not know. ``width`` x ``height`` is the result canvas;
    ``offset_x``, ``offset_y`` where the document's top-left corner lies on it
    (a canvas grown to the left or top). ``new_document`` is set when the
    result canvas differs in size from the document: a host that does not
    grow or resize documents in place opens a new one. ``group`` names the
    group layer that holds the layers when there are several; None puts the
    single layer straight into the document.
    """

    width: int
    height: int
    new_document: bool
    group: str | None
    layers: tuple[PlacedLayer, ...]
    kind: PlacementKind = PlacementKind.LAYERS
    offset_x: int = 0
    offset_y: int = 0

    def grows(self, document_size: tuple[int, int]) -> bool:
        """Whether the result grows the document's canvas in place: a grow
        placement whose canvas holds the document at the offset."""
        width, height = document_size
        return (
            self.kind is PlacementKind.GROW and 0 <= self.offset_x and 0 <= self.offset_y
            and self.offset_x + width <= self.width and self.offset_y + height <= self.height
        )


def resolve_kind(kind: PlacementKind | str, resized: bool) -> PlacementKind:
    """A mode's placement as this client knows it (the version rule for unknown kinds)."""
    if isinstance(kind, PlacementKind):
        return kind
    return PlacementKind.NEW_DOCUMENT if resized else PlacementKind.LAYERS


def place_result(
    result: Result, document_size: tuple[int, int], prompt: str | None = None, kind: PlacementKind | str = PlacementKind.LAYERS
) -> Placement:
    """Decide names, positions and grouping of a result's layers. Layers are
    listed bottom to top, in the server's order."""
    placed = []
    for layer in result.layers:
        img = layer.image
        placed.append(
            PlacedLayer(layer_name(prompt, layer.seed, layer.name), layer.x, layer.y, img.width, img.height, img.data, img.format, layer.seed)
        )
    resized = (result.width, result.height) != tuple(document_size)
    group = None
    if len(placed) > 1:
        seeds = [p.seed for p in placed if p.seed is not None]
        base = layer_name(prompt, None, result.layers[0].name)
        group = f"{base} [{len(placed)} results" + (f", seeds {seeds[0]}-{seeds[-1]}]" if seeds else "]")
        if len(group) > MAX_LAYER_NAME:
            group = layer_name(prompt, None, result.layers[0].name)
    return Placement(
        result.width, result.height, resized, group, tuple(placed), resolve_kind(kind, resized), result.offset_x, result.offset_y
    )
