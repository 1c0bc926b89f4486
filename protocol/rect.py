"""The one pixel rectangle of the house: a crop on the wire, the box a mask touches
on the server, the band a plug-in reads. Plain integers, no image library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    """A pixel rectangle: its top-left corner (x, y), width and height, in the pixels
    of whatever it lies on (the canvas, unless a caller says otherwise)."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns): indexes the rectangle out of a (height, width, ...) array."""
        return slice(self.y, self.bottom), slice(self.x, self.right)

    def contains(self, other: "Rect") -> bool:
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom

    def union(self, other: "Rect") -> "Rect":
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Rect(x, y, max(self.right, other.right) - x, max(self.bottom, other.bottom) - y)

    def moved(self, dx: int, dy: int) -> "Rect":
        return Rect(self.x + dx, self.y + dy, self.width, self.height)

    def padded(self, margin: int, width: int, height: int) -> "Rect":
        """Grown by ``margin`` on each side, clipped to a ``width`` x ``height`` canvas."""
        x0, y0 = max(0, self.x - margin), max(0, self.y - margin)
        x1, y1 = min(width, self.right + margin), min(height, self.bottom + margin)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def clipped(self, width: int, height: int) -> "Rect | None":
        """The part on a ``width`` x ``height`` canvas; None when none of it is."""
        clipped = self.padded(0, width, height)
        return clipped if clipped.width > 0 and clipped.height > 0 else None
