"""``--control`` and ``--reference`` for the CLI: control layers from image files.

A control is ``KIND=IMAGE[:STRENGTH[:START:END]]`` (``KIND/PREPROCESSOR=...`` picks a
preprocessor other than the kind's default); a reference is ``IMAGE[:STRENGTH]``.
The numbers are read from the right, so a path may itself contain colons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from paintwire.protocol import ControlInput, ControlKind, ImagePayload, PixelFormat

from .images import _open

CONTROL_HELP = (
    "a control layer, KIND=IMAGE[:STRENGTH[:START:END]] (repeatable): KIND is one the server lists "
    "('paintwire info': canny, scribble, lineart, softedge, depth, normal, pose, segmentation, edit_reference); "
    "KIND/PREPROCESSOR=IMAGE picks a preprocessor (e.g. scribble/none=lines.png uses the image as it is); "
    "STRENGTH 0-2 (default 1); START and END the share of the steps it acts in (default 0 and 1). "
    "The image is resized to the input image's size (a reference picture, edit_reference, keeps its shape)."
)
REFERENCE_HELP = "a reference picture whose look the result takes on (IP-Adapter), IMAGE[:STRENGTH] (repeatable)"
# Kinds whose layer is a picture the server uses whole (its painted part): fitted, not stretched.
PICTURE_KINDS = (ControlKind.REFERENCE.value, ControlKind.EDIT_REFERENCE.value)


@dataclass(frozen=True)
class ControlSpec:
    kind: str
    path: Path
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    preprocessor: str | None = None


def _numbers(text: str, most: int) -> tuple[str, list[float]]:
    """``text`` split into its head and up to ``most`` trailing :NUMBER parts."""
    parts = text.split(":")
    numbers: list[float] = []
    while len(parts) > 1 and len(numbers) < most:
        try:
            numbers.insert(0, float(parts[-1]))
        except ValueError:
            break
        parts.pop()
    return ":".join(parts), numbers


def parse_control(text: str) -> ControlSpec:
    """Raises ValueError with a sentence saying how to write it."""
    kind, sep, rest = text.partition("=")
    if not sep or not kind or not rest:
        raise ValueError(f"--control {text!r}: write KIND=IMAGE[:STRENGTH[:START:END]], e.g. canny=edges.png:0.8")
    kind, _, preprocessor = kind.partition("/")
    path, numbers = _numbers(rest, 3)
    if len(numbers) == 2:
        raise ValueError(f"--control {text!r}: give STRENGTH alone, or STRENGTH:START:END")
    strength, start, end = (numbers + [1.0, 0.0, 1.0][len(numbers):]) if numbers else (1.0, 0.0, 1.0)
    return ControlSpec(kind, Path(path), strength, start, end, preprocessor or None)


def parse_reference(text: str) -> ControlSpec:
    path, numbers = _numbers(text, 1)
    return ControlSpec(ControlKind.REFERENCE.value, Path(path), numbers[0] if numbers else 1.0)


def _payload(rgba: np.ndarray) -> ImagePayload:
    return ImagePayload(rgba.shape[1], rgba.shape[0], PixelFormat.RGBA8, np.ascontiguousarray(rgba).tobytes())


def control_input(spec: ControlSpec, size: tuple[int, int] | None) -> ControlInput:
    """The control layer of ``spec`` at ``size`` (the input image's; None: as it is).
    A control map is stretched to the size; a reference picture (IP-Adapter's or an edit's)
    is fitted inside it, keeping its shape, on a transparent layer (the server uses a
    reference's painted part whole)."""
    img = _open(spec.path).convert("RGBA")
    if size is not None and img.size != size:
        if spec.kind in PICTURE_KINDS:
            scale = min(size[0] / img.width, size[1] / img.height)
            fitted = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
            canvas = Image.new("RGBA", size)
            canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
            img = canvas
        else:
            img = img.resize(size, Image.LANCZOS)
    return ControlInput(spec.kind, _payload(np.asarray(img)), strength=spec.strength, start=spec.start, end=spec.end,
                        preprocessor=spec.preprocessor)
