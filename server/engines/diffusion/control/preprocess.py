"""Preprocessors that need no model files: a control layer (RGBA) in, the image a
ControlNet reads out (white lines on black for lines and edges).

Each one documents what it makes; tests/unit/test_control_preprocess.py checks
those claims. Layers are RGBA with straight alpha: transparent pixels are "no
paint", so a painter's strokes on an empty layer work as well as strokes on white.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import cv2
import numpy as np

from paintwire.protocol import ErrorCode, ParamSpec, ParamType, Preprocessor, ProtocolError

LOW_THRESHOLD = ParamSpec("low_threshold", ParamType.INT, 100, "Low threshold",
                          "Canny: edges weaker than this are dropped (0-255).", minimum=0, maximum=255)
HIGH_THRESHOLD = ParamSpec("high_threshold", ParamType.INT, 200, "High threshold",
                           "Canny: edges stronger than this are always kept; weaker ones only where they touch one (0-255).",
                           minimum=0, maximum=255)
THRESHOLD = ParamSpec("threshold", ParamType.INT, 128, "Ink threshold",
                      "How dark (or, inverted, how light) a painted pixel must be to count as part of a line (1-255).",
                      minimum=1, maximum=255)
INVERT = ParamSpec("invert", ParamType.BOOL, False, "Light lines on dark",
                   "The layer has light strokes on a dark background instead of dark strokes on a light or empty one.")


def line_width(default: int) -> ParamSpec:
    return ParamSpec("line_width", ParamType.INT, default, "Line width",
                     "Every stroke, thin or thick, becomes a line this many pixels wide (at the generated size).",
                     minimum=1, maximum=32)


def over(rgba: np.ndarray, background: int) -> np.ndarray:
    """(H, W, 3) uint8: the layer composited over a flat grey level (0 black, 255 white).
    An (H, W) or (H, W, 3) array is taken as opaque."""
    if rgba.ndim == 2:
        return np.repeat(rgba[..., None], 3, axis=2)
    if rgba.shape[2] == 3:
        return rgba
    a = rgba[..., 3:4].astype(np.float32) / 255
    return np.clip(rgba[..., :3] * a + background * (1 - a) + 0.5, 0, 255).astype(np.uint8)


def grey(rgba: np.ndarray) -> np.ndarray:
    """Luminance of the layer over white."""
    return cv2.cvtColor(over(rgba, 255), cv2.COLOR_RGB2GRAY)


def ink(rgba: np.ndarray, invert: bool) -> np.ndarray:
    """(H, W) uint8: how much paint each pixel holds, 0 none, 255 a full stroke. Dark paint
    on a light or transparent layer; light paint on dark with ``invert``."""
    rgb = rgba[..., :3] if rgba.ndim == 3 else rgba
    lum = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) if rgb.ndim == 3 else rgb.astype(np.float32)
    amount = lum if invert else 255 - lum
    if rgba.ndim == 3 and rgba.shape[2] == 4:
        amount = amount * (rgba[..., 3].astype(np.float32) / 255)
    return np.clip(amount + 0.5, 0, 255).astype(np.uint8)


def skeleton(binary: np.ndarray) -> np.ndarray:
    """The morphological skeleton of a 0/255 image: every stroke thinned to about one pixel."""
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    img = binary.copy()
    skel = np.zeros_like(img)
    while cv2.countNonZero(img):
        eroded = cv2.erode(img, kernel)
        skel |= cv2.subtract(img, cv2.dilate(eroded, kernel))
        img = eroded
    return skel


def lines(rgba: np.ndarray, threshold: int, invert: bool, width: int) -> np.ndarray:
    """Scribble and line art: the painted strokes as white lines ``width`` pixels wide on black."""
    binary = np.where(ink(rgba, invert) >= threshold, 255, 0).astype(np.uint8)
    thin = skeleton(binary)
    if width > 1:
        thin = cv2.dilate(thin, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width)))
    return thin


def canny(rgba: np.ndarray, low: int, high: int) -> np.ndarray:
    """OpenCV's Canny edges of the layer (over white): white edges, one pixel wide, on black."""
    return cv2.Canny(grey(rgba), low, high)


def softedge(rgba: np.ndarray) -> np.ndarray:
    """Soft outlines: the gradient strength of the layer (over white), normalised so the
    strongest edge is white, then blurred. A flat layer gives black."""
    g = cv2.GaussianBlur(grey(rgba).astype(np.float32), (0, 0), 1.0)
    magnitude = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    peak = float(magnitude.max())
    if peak < 1e-3:
        return np.zeros(g.shape, np.uint8)
    soft = cv2.GaussianBlur(magnitude / peak * 255, (0, 0), 2.0)
    return np.clip(soft / max(float(soft.max()), 1e-3) * 255 + 0.5, 0, 255).astype(np.uint8)


Runner = Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]

# Preprocessor name -> what it makes of an RGBA layer: (H, W) for line maps, (H, W, 3) otherwise.
RUNNERS: dict[str, Runner] = {
    Preprocessor.NONE.value: lambda rgba, p: over(rgba, 0),  # maps: transparent is black (far, empty)
    Preprocessor.CANNY.value: lambda rgba, p: canny(rgba, p["low_threshold"], p["high_threshold"]),
    Preprocessor.SCRIBBLE.value: lambda rgba, p: lines(rgba, p["threshold"], p["invert"], p["line_width"]),
    Preprocessor.LINEART.value: lambda rgba, p: lines(rgba, p["threshold"], p["invert"], p["line_width"]),
    Preprocessor.SOFTEDGE.value: lambda rgba, p: softedge(rgba),
}


def run(name: str, rgba: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """The preprocessed image: (H, W) uint8 for line and edge maps, (H, W, 3) for ``none``."""
    runner = RUNNERS.get(name)
    if runner is None:
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"This server has no preprocessor {name!r}.", "preprocessor")
    return runner(rgba, params)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """What a ControlNet reads: three channels."""
    return np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image)
