"""Reference pictures: the painted part of a reference layer (an IP-Adapter's, an
instruction edit's), and the shapes the editing pipelines take several pictures in.

An edit reference layer needs no model of its own: its painted part is given to the
editing model beside the picture being edited, which takes from it what the
instruction names. Flux.1 Kontext reads one reference image, so several pictures go
side by side in one (as ComfyUI's image stitching does); Flux.2 Klein reads a list,
each picture at least 64 px a side.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from paintwire.protocol import ControlKind, ErrorCode, ProtocolError

from ..base import DecodedControl
from .control.preprocess import over

EDIT_REFERENCE = ControlKind.EDIT_REFERENCE.value
# Flux.2's image checks (diffusers' Flux2ImageProcessor.check_image_input) refuse a picture
# under 64 px a side or longer than 8:1; the references obey the same rule for every family.
MIN_SIDE = 64
MAX_ASPECT = 8
# The reference area the editing models were trained at (about one megapixel): a row of
# pictures is shrunk to it, unless the picture being edited is bigger.
REFERENCE_AREA = 1024 * 1024


def reference_image(rgba: np.ndarray, field: str = "job.controls") -> Image.Image:
    """The painted part of a reference layer (its bounds where alpha > 0), over white."""
    alpha = rgba[..., 3]
    ys, xs = np.nonzero(alpha)
    if len(xs) == 0:
        raise ProtocolError(ErrorCode.BAD_IMAGE, "The reference layer is empty: paint or paste the reference picture into it.", field)
    crop = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return Image.fromarray(over(crop, 255))


def edit_references(controls: Sequence[DecodedControl]) -> list[Image.Image]:
    """The painted part of each edit reference layer among a job's ``controls``, in their
    order; a layer at strength 0 is left out (as any control at 0 gives the result without
    it). Raises ProtocolError(BAD_IMAGE) for an empty layer or one too long and thin."""
    out = []
    for i, control in enumerate(controls):
        if control.kind != EDIT_REFERENCE or control.strength == 0:
            continue
        field = f"job.controls.{i}.image"
        picture = reference_image(control.image, field)
        w, h = picture.size
        if max(w, h) > MAX_ASPECT * min(w, h):
            raise ProtocolError(ErrorCode.BAD_IMAGE, f"The edit reference layer's painted part is {w}x{h}; its long side may be at most "
                                f"{MAX_ASPECT} times its short side: crop the picture in the layer.", field)
        out.append(picture)
    return out


def at_least(picture: Image.Image, side: int = MIN_SIDE) -> Image.Image:
    """``picture`` enlarged, its shape kept, until both sides are at least ``side``."""
    w, h = picture.size
    if min(w, h) >= side:
        return picture
    scale = side / min(w, h)
    return picture.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.LANCZOS)


def side_by_side(pictures: Sequence[Image.Image], height: int, max_area: int = REFERENCE_AREA) -> Image.Image:
    """``pictures`` in a row, each scaled to ``height`` with its shape kept, the row shrunk
    as a whole to at most ``max(max_area, the first picture's area)`` pixels."""
    scaled = [p if p.height == height else p.resize((max(1, round(p.width * height / p.height)), height), Image.LANCZOS)
              for p in pictures]
    row = Image.new("RGB", (sum(p.width for p in scaled), height), "white")
    x = 0
    for p in scaled:
        row.paste(p.convert("RGB"), (x, 0))
        x += p.width
    limit = max(max_area, pictures[0].width * pictures[0].height)
    if row.width * row.height > limit:
        s = (limit / (row.width * row.height)) ** 0.5
        row = row.resize((max(1, int(row.width * s)), max(1, int(row.height * s))), Image.LANCZOS)
    return row
