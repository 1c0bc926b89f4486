"""The ground floor: pixel rectangles and placed result layers.

Every other server module may import these; this module imports nothing of
the server, so masks, regions, engines and the job runner share one
definition without reaching up into each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Box:
    """A pixel rectangle: x, y of the top-left corner, width and height."""

    x: int
    y: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass
class OutputLayer:
    """A result layer: RGBA pixels placed at (x, y) on the output canvas."""

    pixels: np.ndarray  # (h, w, 4) uint8, straight alpha
    x: int
    y: int
    name: str
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
