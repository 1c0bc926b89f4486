"""Parameters that several engines share, defined once (names, ranges, help)."""

from __future__ import annotations

import enum
from typing import Mapping, Sequence

from paintwire.protocol import InputKind, InputSpec, ParamSpec, ParamType
from paintwire.protocol.crops import CropRule


class ModeOrder(enum.IntEnum):
    """Where the server's modes sit in a client's list: modes of the same name in
    several engines share one place, and a new mode picks a number between these."""

    GENERATE = 10
    REFINE = 20
    EDIT = 25
    INPAINT = 30
    SKETCH = 40
    EXPAND = 50
    UPSCALE = 60


# The inputs most modes read, described once.
IMAGE_INPUT = InputSpec(InputKind.IMAGE, label="Picture", help="The visible image, or the active layer.")
SELECTION_MASK = InputSpec(
    InputKind.MASK, label="Selection", help="The selection (feathering kept) is the mask; with nothing selected, the whole canvas.",
)


def labels_for(values: Sequence[str], labels: Mapping[str, str]) -> tuple[str, ...]:
    """Choice labels for ``values`` from a table; a value missing from it shows as itself."""
    return tuple(labels.get(v, v) for v in values)


MASK_BLUR = ParamSpec(
    "mask_blur", ParamType.INT, 4, "Mask blur",
    "Feathers the mask edge by this many pixels, so new and old pixels blend without a seam. "
    "The feather stays inside the selection: every pixel outside it is kept exactly.",
    minimum=0, maximum=64,
)
MASK_BLUR_OUTWARD = ParamSpec(
    "mask_blur_outward", ParamType.BOOL, False, "Blur outward (WebUI)",
    "Blur the mask edge both ways, as the WebUI does: the blend then reaches about 2.5 x mask blur "
    "pixels beyond the selection, changing pixels outside it.",
    group="advanced",
)
INVERT_MASK = ParamSpec(
    "invert_mask", ParamType.BOOL, False, "Inpaint not masked",
    "Regenerate everything except the selection instead of the selection itself.", group="advanced",
)
PADDING = ParamSpec(
    "padding", ParamType.INT, 32, "Only-masked padding",
    "Pixels of context around the mask that the engine sees when it works on the masked region only.",
    minimum=0, maximum=512, group="advanced",
)
SEED = ParamSpec(
    "seed", ParamType.SEED, -1, "Seed",
    "The random seed; -1 picks a new one, which the result reports so it can be reused.",
)
SCALE = ParamSpec(
    "scale", ParamType.FLOAT, 2.0, "Scale", "How many times larger the result is than the input.",
    minimum=1.0, maximum=4.0,
)
TARGET_WIDTH = ParamSpec(
    "width", ParamType.INT, 0, "Width",
    "Output width in pixels; 0 means the input's width times the scale.", minimum=0, maximum=16384, group="advanced",
)
TARGET_HEIGHT = ParamSpec(
    "height", ParamType.INT, 0, "Height",
    "Output height in pixels; 0 means the input's height times the scale.", minimum=0, maximum=16384, group="advanced",
)

MASK_PARAMS = (MASK_BLUR, MASK_BLUR_OUTWARD, INVERT_MASK, PADDING)
UPSCALE_PARAMS = (SCALE, TARGET_WIDTH, TARGET_HEIGHT)


def inpaint_crop(min_side: int = 0) -> CropRule:
    """What an inpaint reads of the canvas (server/region.py): the mask's bounds, the
    one-pixel ring its inward feather looks at, the padding, grown to ``min_side``;
    the whole canvas when the mask is inverted, the blur spreads outwards (its reach
    is known only once blurred) or the inpaint area is the whole picture."""
    return CropRule(
        whole=False, ring=1, padding_param=PADDING.name, min_side=min_side,
        whole_if=((INVERT_MASK.name, True), (MASK_BLUR_OUTWARD.name, True), ("inpaint_area", "whole_picture")),
    )


# A selection redrawn in place reads the selection's bounds only.
SELECTION_ONLY = CropRule(whole=False)
