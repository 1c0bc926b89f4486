"""What a plug-in read from its document, in 8-bit form, and the mask rules.

The same rules hold in every host: what counts as the mask when nothing is
selected, how a layer becomes a mask, how 16-bit documents come to 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from paintwire.protocol import ImagePayload, PixelFormat
from paintwire.protocol.rect import Rect


@dataclass(frozen=True)
class Snapshot:
    """``pixels`` is the whole canvas (or the chosen layer, canvas-sized) in
    ``pixel_format``; ``selection`` is one byte per canvas pixel (0 = not
    selected, 255 = selected, feathering in between) or None when nothing is
    selected; ``mask_layer`` is a canvas-sized l8 mask read from a layer the
    artist chose, which replaces the selection.

    With ``area``, the document was read only there (request.read_area says
    where a job needs it): ``pixels``, ``selection`` and ``mask_layer`` then
    cover ``area`` of the ``width`` x ``height`` canvas, and the selection is
    taken as empty outside it.
    """

    width: int
    height: int
    pixels: bytes
    pixel_format: PixelFormat
    selection: bytes | None = None
    mask_layer: bytes | None = None
    area: Rect | None = None

    def __post_init__(self) -> None:
        box = self.box
        if box.x < 0 or box.y < 0 or box.right > self.width or box.bottom > self.height or box.width < 1 or box.height < 1:
            raise ValueError(f"snapshot.area {box} must lie inside the {self.width}x{self.height} canvas")
        ImagePayload(box.width, box.height, self.pixel_format, self.pixels).validate("snapshot.pixels")
        for name in ("selection", "mask_layer"):
            data = getattr(self, name)
            if data is not None and len(data) != box.width * box.height:
                raise ValueError(f"snapshot.{name} must be {box.width * box.height} bytes (one per pixel), got {len(data)}")

    @property
    def box(self) -> Rect:
        """The part of the canvas that was read."""
        return self.area or Rect(0, 0, self.width, self.height)

    @classmethod
    def blank(cls, width: int, height: int) -> "Snapshot":
        """A canvas-sized snapshot without pixels worth reading, for modes that take no image."""
        return cls(width, height, bytes(width * height * 4), PixelFormat.RGBA8)

    def image(self) -> ImagePayload:
        """The pixels that were read (all of ``box``)."""
        return ImagePayload(self.box.width, self.box.height, self.pixel_format, self.pixels)

    def mask(self) -> bytes:
        """The mask a job uses, over ``box``: the chosen mask layer, else the selection, else everything."""
        if self.mask_layer is not None:
            return self.mask_layer
        if self.has_selection:
            assert self.selection is not None
            return self.selection
        return whole_canvas_mask(self.box.width, self.box.height)

    @property
    def has_selection(self) -> bool:
        # count() runs in C; any() over 16 million bytes took a third of a second.
        return self.selection is not None and self.selection.count(0) < len(self.selection)


def whole_canvas_mask(width: int, height: int) -> bytes:
    """The mask used when nothing is selected: everything."""
    return b"\xff" * (width * height)
