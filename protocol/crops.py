"""Crops: an image that is a window of a bigger canvas, and the one rule for how
big that window must be.

A job may send, instead of the whole canvas, the part of it the mode reads: the
image (and its mask) then arrive as a crop whose top-left corner lies at
(``x``, ``y``) on a canvas of ``canvas_width`` x ``canvas_height``. Results are
placed on the canvas as if the whole of it had been sent.

What a mode reads is described by its ``CropRule`` (published in the mode's
capabilities); ``needed_box`` turns the rule, the job's parameters and the
mask's bounds into the canvas rectangle the crop must cover. Clients call it to
choose the crop, the server calls it to check what it got: one rule, one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ErrorCode, ProtocolError
from .images import ABSOLUTE_MAX_SIDE
from .rect import Rect


@dataclass(frozen=True)
class Crop:
    """Where the job's image lies on the artist's canvas. Absent on the wire: the
    image is the whole canvas (what clients before crops send)."""

    x: int
    y: int
    canvas_width: int
    canvas_height: int

    def rect(self, width: int, height: int) -> Rect:
        """The canvas rectangle an image of ``width`` x ``height`` at this crop covers."""
        return Rect(self.x, self.y, width, height)

    def is_whole(self, width: int, height: int) -> bool:
        return (self.x, self.y, width, height) == (0, 0, self.canvas_width, self.canvas_height)

    def to_wire(self) -> dict:
        return {"x": self.x, "y": self.y, "canvas_width": self.canvas_width, "canvas_height": self.canvas_height}

    @classmethod
    def from_wire(cls, obj: object, field: str = "job.crop") -> "Crop":
        if not isinstance(obj, dict):
            raise ProtocolError(ErrorCode.BAD_CROP, "A crop must be a map with x, y, canvas_width and canvas_height.", field)
        values = {}
        for name, least in (("x", 0), ("y", 0), ("canvas_width", 1), ("canvas_height", 1)):
            value = obj.get(name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ProtocolError(ErrorCode.BAD_CROP, f"Crop {name} must be an integer.", f"{field}.{name}")
            if not least <= value <= ABSOLUTE_MAX_SIDE:
                raise ProtocolError(ErrorCode.BAD_CROP, f"Crop {name} must be from {least} to {ABSOLUTE_MAX_SIDE}, got {value}.", f"{field}.{name}")
            values[name] = value
        return cls(**values)

    def check_fits(self, width: int, height: int, field: str = "job.crop") -> None:
        """Raise BAD_CROP unless an image of ``width`` x ``height`` at this crop lies inside the canvas."""
        if self.x + width > self.canvas_width or self.y + height > self.canvas_height:
            raise ProtocolError(
                ErrorCode.BAD_CROP,
                f"A {width}x{height} crop at ({self.x}, {self.y}) reaches outside the {self.canvas_width}x{self.canvas_height} canvas; "
                "the crop must lie inside the canvas it declares.",
                field,
            )


@dataclass(frozen=True)
class CropRule:
    """How much of the canvas a mode reads around the mask.

    ``whole``: the mode reads the whole canvas (upscale, expand), or a crop is
    fine only where ``whole_if`` does not hold: a map of parameter values that
    make the mode read the whole canvas (``invert_mask: true``). Without a mask
    every mode reads the whole canvas. Otherwise the crop must cover:

    - the mask's bounds grown by ``ring`` pixels plus each parameter in
      ``margin_params`` times its factor (the feather's reach, ``padding``), and
    - the box the server works on: the mask's bounds plus ``padding_param``,
      grown evenly to ``min_side`` on each axis where the canvas allows
      (the context a model needs to make sense of a small selection).
    """

    whole: bool = True
    whole_if: tuple[tuple[str, Any], ...] = ()  # (parameter, value) pairs; a map on the wire
    ring: int = 0
    margin_params: tuple[tuple[str, float], ...] = ()  # (parameter, pixels per unit) pairs; a map on the wire
    padding_param: str = ""
    min_side: int = 0

    def to_wire(self) -> dict:
        return {"whole": self.whole, "whole_if": dict(self.whole_if), "ring": self.ring, "margin_params": dict(self.margin_params),
                "padding_param": self.padding_param, "min_side": self.min_side}

    @classmethod
    def from_wire(cls, obj: object) -> "CropRule":
        """Lenient, like the rest of the capabilities: anything unreadable means the whole canvas."""
        if not isinstance(obj, dict):
            return WHOLE_CANVAS
        try:
            return cls(
                whole=bool(obj.get("whole", True)), whole_if=tuple((obj.get("whole_if") or {}).items()), ring=int(obj.get("ring", 0)),
                margin_params=tuple((str(k), float(v)) for k, v in (obj.get("margin_params") or {}).items()),
                padding_param=str(obj.get("padding_param", "")), min_side=int(obj.get("min_side", 0)),
            )
        except (TypeError, ValueError, AttributeError):
            return WHOLE_CANVAS


WHOLE_CANVAS = CropRule()


def _number(params: Mapping[str, Any], name: str) -> float:
    value = params.get(name, 0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def at_least(box: Rect, side: int, width: int, height: int) -> Rect:
    """``box`` grown evenly to ``side`` on each axis, kept on the canvas (never beyond it).
    The server's inpaint region grows its work area with this same function."""
    def axis(start: int, length: int, limit: int) -> tuple[int, int]:
        want = min(max(length, side), limit)
        start = min(max(0, start - (want - length) // 2), limit - want)
        return start, want
    x, w = axis(box.x, box.width, width)
    y, h = axis(box.y, box.height, height)
    return Rect(x, y, w, h)


# Slack around the rule's box: the work area of a model with a smaller native size than
# the rule's ``min_side`` may sit a pixel off the rule's own (integer halves).
SLACK = 2


def reads_whole(rule: CropRule, params: Mapping[str, Any], has_mask: bool) -> bool:
    """Whether a job of this rule and these parameters reads the whole canvas."""
    return rule.whole or not has_mask or any(params.get(k) == v for k, v in rule.whole_if)


def needed_box(rule: CropRule, params: Mapping[str, Any], mask_bounds: Rect | None, width: int, height: int) -> Rect:
    """The canvas rectangle a job reads, given its mode's rule, its parameters (defaults
    filled in) and the bounds of its mask's non-zero pixels on a ``width`` x ``height``
    canvas. The whole canvas when the mode needs it or the mask is empty or absent."""
    whole = Rect(0, 0, width, height)
    if mask_bounds is None or reads_whole(rule, params, True):
        return whole
    margin = rule.ring + sum(int(-(-_number(params, name) * factor // 1)) for name, factor in rule.margin_params)
    reach = mask_bounds.padded(margin, width, height)
    padding = int(_number(params, rule.padding_param)) if rule.padding_param else 0
    work = at_least(mask_bounds.padded(padding, width, height), rule.min_side, width, height)
    return reach.union(work).padded(SLACK, width, height)


def bytes_bounds(mask: bytes | bytearray | memoryview, width: int, height: int) -> Rect | None:
    """The bounds of the non-zero bytes of an l8 mask, or None when all are zero.
    Pure Python at C speed, for clients without numpy: empty rows are skipped from
    both ends by comparing slices with zeros (memcmp), and the rows between are OR-ed
    together as big integers for the columns (about 20 ms for a 4096x4096 selection,
    a few ms for a small one on it)."""
    data = mask if isinstance(mask, (bytes, bytearray)) else bytes(mask)
    zero = bytes(width)
    top, bottom = 0, height  # rows [top, bottom) may hold non-zero bytes
    while top < bottom and data[top * width:(top + 1) * width] == zero:
        top += 1
    if top == bottom:
        return None
    while data[(bottom - 1) * width:bottom * width] == zero:
        bottom -= 1
    columns = 0
    for row in range(top, bottom):
        columns |= int.from_bytes(data[row * width:(row + 1) * width], "big")
    line = columns.to_bytes(width, "big")
    left = width - len(line.lstrip(b"\x00"))
    right = len(line.rstrip(b"\x00")) - 1
    return Rect(left, top, right - left + 1, bottom - top)


def crop_bytes(data: bytes | bytearray | memoryview, width: int, channels: int, box: Rect) -> bytes:
    """The rows and columns of ``box`` from a ``width``-wide image of ``channels`` bytes per pixel."""
    view = memoryview(data)
    stride, start, length = width * channels, box.x * channels, box.width * channels
    if box.x == 0 and box.width == width:
        return bytes(view[box.y * stride:box.bottom * stride])
    return b"".join(view[row * stride + start:row * stride + start + length] for row in range(box.y, box.bottom))
