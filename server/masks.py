"""Mask maths shared by every engine: blur, invert, bounds, crop, paste, fill
(a layer over the picture is paintwire.protocol.compositing's).

Masks are (H, W) uint8 arrays, 255 = regenerate, 0 = keep; soft values blend.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from paintwire.protocol import Rect


def invert(mask: np.ndarray) -> np.ndarray:
    return 255 - mask


def blur(mask: np.ndarray, radius: float) -> np.ndarray:
    """Feather a mask by a Gaussian of ``radius`` pixels (sigma), as the WebUI's
    mask blur does. The blur spreads outwards too, so the regenerated region
    grows by about 2.5 * radius into the kept area and blends into it."""
    if radius <= 0:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=radius, sigmaY=radius, borderType=cv2.BORDER_REPLICATE)


def blur_around(mask: np.ndarray, radius: float) -> tuple[np.ndarray, Rect] | None:
    """``blur(mask, radius)`` computed only where it can be non-zero: the mask's
    bounds plus the kernel's reach. Returns the blurred crop and where it sits,
    or None for an empty mask. Same pixels as blurring the whole canvas, at the
    cost of the selection instead of the canvas."""
    hard = bounds(mask)
    if hard is None:
        return None
    # OpenCV's 8-bit Gaussian kernel reaches 3 sigma; 4 sigma + 2 is a safe margin,
    # and BORDER_REPLICATE at a margin of zeros equals the full-canvas result.
    margin = int(np.ceil(4 * radius)) + 2 if radius > 0 else 0
    work = hard.padded(margin, mask.shape[1], mask.shape[0])
    return blur(crop(mask, work), radius), work


# How far a Gaussian feather of sigma r visibly reaches (OpenCV's 8-bit kernel
# leaves values under 1/255 beyond about 2.5 r): the width of an inward feather.
FEATHER_REACH = 2.5


def feather_within(mask: np.ndarray, radius: float) -> tuple[np.ndarray, Rect] | None:
    """Feather a mask inwards only: 0 at the selection's edge rising smoothly to the
    mask's own value ``FEATHER_REACH * radius`` pixels inside, never above the mask
    and zero wherever the mask is zero. So blending stays inside the selection
    (every unselected pixel is kept exactly) and still shows no seam. A selection
    edge on the canvas border is not faded. Returns the feathered crop and where
    it sits, or None for an empty mask (the cost is the selection's, like
    ``blur_around``)."""
    hard = bounds(mask)
    if hard is None:
        return None
    if radius <= 0:
        return crop(mask, hard), hard
    work = hard.padded(1, mask.shape[1], mask.shape[0])  # a ring of zeros, except on the canvas border
    inside = crop(mask, work)
    depth = cv2.distanceTransform((inside > 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Depth is counted to the pixel's centre; an edge pixel's centre is half a pixel in.
    ramp = np.clip((depth - 0.5) / (FEATHER_REACH * radius), 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible kink where it reaches 1
    soft = np.minimum(inside, np.maximum(np.round(ramp * 255), 1).astype(np.uint8))  # every selected pixel counts
    return soft, work


def feather(mask: np.ndarray, radius: float, outward: bool = False) -> np.ndarray:
    """The whole-canvas feathered mask: inwards (the default) or, with ``outward``,
    the WebUI's Gaussian blur that spreads into the kept area too."""
    if outward:
        return blur(mask, radius)
    out = np.zeros_like(mask)
    made = feather_within(mask, radius)
    if made is not None:
        paste(out, made[0], made[1])
    return out


def bounds(mask: np.ndarray) -> Rect | None:
    """The smallest box holding every non-zero pixel, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Rect(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def crop(array: np.ndarray, box: Rect) -> np.ndarray:
    return array[box.slices]


def paste(target: np.ndarray, patch: np.ndarray, box: Rect) -> None:
    """Write ``patch`` into ``target`` at ``box`` (in place)."""
    target[box.slices] = patch


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur whose cost does not grow with sigma: wide radii are
    blurred on a downscaled copy (a wide blur has no fine detail to lose)."""
    factor = max(1.0, sigma / 4)
    if factor <= 1.5:
        return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def fill(rgb: np.ndarray, mask: np.ndarray, passes: int = 8, on_pass: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Pre-fill the masked area with colours from around it ("masked content: fill").

    The first pass seeds the hole with a normalised convolution of the known
    pixels at a wide radius; later passes re-blur at halving radii, pulling
    detail from the rim inwards, with known pixels reset each time. Returns a
    new (H, W, 3) uint8 image; unmasked pixels are unchanged. ``on_pass(i,
    passes)`` is called after each pass (progress; it may raise to stop).
    """
    known = (mask < 128).astype(np.float32)
    hole = (known < 0.5)[..., None]
    if not known.any():  # nothing to take colours from: a neutral grey
        if on_pass is not None:
            on_pass(passes, passes)
        return np.full_like(rgb, 127)
    img = rgb.astype(np.float32)
    sigma = max(2.0, max(rgb.shape[0], rgb.shape[1]) / 4)
    weight = _wide_blur(known, sigma)
    spread = _wide_blur(img * known[..., None], sigma)
    img = np.where(hole, spread / np.maximum(weight, 1e-6)[..., None], img)
    for i in range(1, passes + 1):
        if i > 1:
            sigma = max(1.0, sigma / 2)
            img = np.where(hole, _wide_blur(img, sigma), img)
        if on_pass is not None:
            on_pass(i, passes)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def attenuate(mask: np.ndarray, weight: float | np.ndarray) -> np.ndarray:
    """``mask`` scaled by ``weight`` (a number or a float array of the mask's shape,
    0..1), rounded to nearest. Zero stays zero, so what the mask keeps stays kept."""
    scaled = mask.astype(np.float32) * np.clip(np.asarray(weight, np.float32), 0, 1)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def feather_outside(mask: np.ndarray, radius: float) -> np.ndarray:
    """Feather a mask outwards only: the blur spreads into the kept area, while the
    masked area stays fully masked (for new canvas area that has nothing under it)."""
    return np.maximum(blur(mask, radius), mask)
