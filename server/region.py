"""The region an inpaint works on, and turning its output into a result layer.

Every engine inpaints through this: the mask is inverted and feathered (inside
the selection by default; outwards too on request, as the WebUI does), the
work area is the mask's bounds plus padding, grown to at least ``min_side`` on
each axis where the canvas allows (or the whole picture), and the
generated pixels come back as a layer covering only the mask's bounds, whose
alpha is the feathered mask. Placed over the original, that layer leaves every
unmasked pixel bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from paintwire.protocol import ErrorCode, ProtocolError
from paintwire.protocol.compositing import place_over
from paintwire.protocol.crops import at_least
from paintwire.protocol.rect import Rect

from . import masks
from .layers import OutputLayer


@dataclass
class InpaintRegion:
    area: Rect  # what the engine works on, in canvas pixels
    changed: Rect  # the part the mask touches: the result layer's extent
    image: np.ndarray  # (h, w, 4) crop of the original at ``area``
    mask: np.ndarray  # (h, w) feathered mask at ``area``


def prepare_region(
    image: np.ndarray, mask: np.ndarray, *, blur: float, invert: bool, padding: int, whole_picture: bool = False,
    blur_outward: bool = False, min_side: int = 0, origin: tuple[int, int] = (0, 0), canvas: tuple[int, int] | None = None,
) -> InpaintRegion:
    """Raises ProtocolError(BAD_MASK) when the mask selects nothing. The feather
    stays inside the mask unless ``blur_outward`` (the WebUI's mask blur).
    ``min_side``: the least context a model needs to make sense of a small
    selection (see context_side). With a crop, ``image`` and ``mask`` lie at
    ``origin`` on a canvas of ``canvas`` (width, height): the region is the one the
    whole canvas gives, in canvas pixels, and a crop that does not hold it raises
    BAD_CROP. (A crop that covers the mask's bounds plus a pixel gives the same
    masks as the whole canvas: the feather looks one pixel beyond them.)"""
    if canvas is not None and (origin != (0, 0) or canvas != (mask.shape[1], mask.shape[0])):
        return _cropped_region(image, mask, origin, canvas, blur=blur, invert=invert, padding=padding, whole_picture=whole_picture,
                               blur_outward=blur_outward, min_side=min_side)
    if invert:
        mask = masks.invert(mask)
    blurred = masks.blur_around(mask, blur) if blur_outward else masks.feather_within(mask, blur)
    inner = masks.bounds(blurred[0]) if blurred is not None else None
    if blurred is None or inner is None:
        raise ProtocolError(ErrorCode.BAD_MASK, "The mask is empty: select the area to regenerate (mask pixels above 0).", "job.mask")
    soft_crop, work = blurred
    changed = inner.moved(work.x, work.y)
    height, width = mask.shape
    area = Rect(0, 0, width, height) if whole_picture else at_least(changed.padded(padding, width, height), min_side, width, height)
    return InpaintRegion(area, changed, masks.crop(image, area), _soft_over(area, soft_crop, work))


def context_side(native: int) -> int:
    """The least side of the area a model at ``native`` resolution works on, selection
    plus context: half its native side. A 40x40 selection is then seen with the
    surroundings it needs to fit in (and generated at no more than about twice its
    size), while a selection that is already bigger keeps just its padding."""
    return native // 2


def _cropped_region(image: np.ndarray, mask: np.ndarray, origin: tuple[int, int], canvas: tuple[int, int], **rule: Any) -> InpaintRegion:
    """prepare_region for a crop: the region worked out on the crop, with the canvas's
    edges for its clipping, then moved to canvas pixels."""
    ox, oy = origin
    width, height = canvas
    crop_box = Rect(ox, oy, mask.shape[1], mask.shape[0])
    if rule["whole_picture"] or rule["invert"] or rule["blur_outward"]:
        raise ProtocolError(ErrorCode.BAD_CROP, "This inpaint reads the whole canvas (inverted mask, outward blur or whole picture): send all of it.", "job.crop")
    made = masks.feather_within(mask, rule["blur"])
    if made is None:
        raise ProtocolError(ErrorCode.BAD_MASK, "The mask is empty: select the area to regenerate (mask pixels above 0).", "job.mask")
    soft_crop, work = made
    hard = masks.bounds(mask)
    assert hard is not None
    changed = hard.moved(ox, oy)  # the inward feather keeps every selected pixel
    ring = changed.padded(1, width, height)
    area = at_least(changed.padded(rule["padding"], width, height), rule["min_side"], width, height)
    for need in (ring, area):
        if not crop_box.contains(need):
            raise ProtocolError(
                ErrorCode.BAD_CROP,
                f"The crop {crop_box.width}x{crop_box.height} at ({ox}, {oy}) does not hold the {area.width}x{area.height} area at ({area.x}, {area.y}) "
                "this inpaint works on; send a bigger crop (the mode's crop rule gives it).",
                "job.crop",
            )
    local = area.moved(-ox, -oy)
    return InpaintRegion(area, changed, masks.crop(image, local), _soft_over(local, soft_crop, work))


def _soft_over(area: Rect, soft_crop: np.ndarray, work: Rect) -> np.ndarray:
    """The feathered mask over ``area``: ``soft_crop`` (which lies at ``work``) where they
    overlap, zero wherever the feather cannot reach."""
    soft = np.zeros((area.height, area.width), np.uint8)
    x0, y0 = max(work.x, area.x), max(work.y, area.y)
    x1, y1 = min(work.x + work.width, area.x + area.width), min(work.y + work.height, area.y + area.height)
    soft[y0 - area.y : y1 - area.y, x0 - area.x : x1 - area.x] = soft_crop[y0 - work.y : y1 - work.y, x0 - work.x : x1 - work.x]
    return soft


def region_layer(region: InpaintRegion, generated_rgb: np.ndarray, name: str, seed: int | None = None, settings: dict[str, Any] | None = None) -> OutputLayer:
    """A layer of ``generated_rgb`` (the size of ``region.area``) at ``region.changed``,
    with the feathered mask as alpha."""
    inner = region.changed.moved(-region.area.x, -region.area.y)
    alpha = masks.crop(region.mask, inner)
    pixels = np.empty((inner.height, inner.width, 4), np.uint8)
    # Under alpha 0 keep the original colours, so a host that ignores alpha still sees the original there.
    pixels[..., :3] = np.where(alpha[..., None] > 0, masks.crop(generated_rgb, inner), masks.crop(region.image, inner)[..., :3])
    pixels[..., 3] = alpha
    return OutputLayer(pixels, region.changed.x, region.changed.y, name, seed, dict(settings or {}))


def flatten(base: np.ndarray, layer: OutputLayer) -> np.ndarray:
    """``base`` (H, W, 4) with ``layer`` placed over it ("normal" blending, the one rule in
    paintwire.protocol.compositing): what a painting program shows once the result
    layer is added. Returns a new array."""
    return place_over(base, layer.pixels, layer.x, layer.y)
