"""Where a job's input pixels come from in the artist's document."""

from __future__ import annotations

import enum


class InputSource(str, enum.Enum):
    VISIBLE = "visible"  # everything visible, merged (Krita's projection, GIMP's visible image)
    LAYER = "layer"  # the active layer only (GIMP's drawable), canvas-sized

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, name: str) -> "InputSource":
        """A source from its name; GIMP scripts' older word "drawable" means the active layer.
        Raises ValueError naming the choices."""
        name = _ALIASES.get(name, name)
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"source must be one of {', '.join(s.value for s in cls)}, got {name!r}.") from None


_LABELS = {InputSource.VISIBLE: "Visible image", InputSource.LAYER: "Active layer"}
_ALIASES = {"drawable": InputSource.LAYER.value}
