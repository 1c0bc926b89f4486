"""A result layer over the picture under it: the one "over" rule (docs/protocol.md section 9).

Porter-Duff "over" with straight (not premultiplied) alpha, ``a`` and ``b`` the
top's and the bottom's alpha in 0..1::

    out_a   = a + b * (1 - a)
    out_rgb = (rgb_top * a + rgb_under * b * (1 - a)) / out_a

Every figure is rounded to the nearest 8-bit value, halves up. The maths is done
in integers (255ths of 255ths), so it is exact and any other copy of the rule gives
the same bytes: the web page's ``static/js/compositing.js`` is one, checked
against this module by the shared cases in ``tests/vectors/over.json``.

Where the top's alpha is 0 the picture under it is kept bit for bit (its colours
too where it is transparent itself): an inpaint's layer leaves every pixel outside
the mask as it was. Over an opaque picture this is ``top * a + under * (1 - a)``.

This module needs numpy, which the server and the CLI have; the plug-ins never
import it (their host composites the layers it adds).
"""

from __future__ import annotations

import numpy as np


def over(top: np.ndarray, under: np.ndarray) -> np.ndarray:
    """``top`` over ``under``: two (h, w, 4) uint8 RGBA arrays of one size. Returns a new array."""
    if top.shape != under.shape or top.ndim != 3 or top.shape[2] != 4:
        raise ValueError(f"over needs two RGBA arrays of one size, got {top.shape} and {under.shape}")
    a = top[..., 3:4].astype(np.uint32)
    b = under[..., 3:4].astype(np.uint32)
    below = b * (255 - a)  # the bottom's weight, in 255ths of 255ths
    weight = a * 255 + below  # out_a in the same units
    colour = top[..., :3].astype(np.uint32) * (a * 255) + under[..., :3].astype(np.uint32) * below
    out = np.empty(top.shape, np.uint8)
    out[..., :3] = (2 * colour + weight) // np.maximum(2 * weight, 1)  # colour / weight, rounded
    out[..., 3:4] = (weight + 127) // 255
    return np.where(a == 0, under, out)


def place_over(canvas: np.ndarray, layer: np.ndarray, x: int, y: int) -> np.ndarray:
    """``canvas`` (H, W, 4) with ``layer`` (h, w, 4) over it, its top-left corner at
    (``x``, ``y``); what lies outside the canvas is left out. Returns a new array."""
    out = canvas.copy()
    h, w = layer.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(canvas.shape[1], x + w), min(canvas.shape[0], y + h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = over(layer[y0 - y:y1 - y, x0 - x:x1 - x], canvas[y0:y1, x0:x1])
    return out
