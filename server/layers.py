"""The ground floor: placed result layers (their rectangles are paintwire.protocol's Rect).

Every other server module may import this; this module imports nothing of
the server, so masks, regions, engines and the job runner share one
definition without reaching up into each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class OutputLayer:
    """A result layer: RGBA pixels placed at (x, y) on the output canvas."""

    pixels: np.ndarray  # (h, w, 4) uint8, straight alpha
    x: int
    y: int
    name: str
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
