"""Colour correction: match a result's colour histogram to the original's, so repeated edits do not drift."""

from __future__ import annotations

import cv2
import numpy as np


def match_colours(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3 uint8 RGB) with each LAB channel's histogram mapped onto
    ``reference``'s (any size), as the WebUI's colour correction does."""
    src = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(np.ascontiguousarray(reference), cv2.COLOR_RGB2LAB)
    out = np.empty_like(src)
    for c in range(3):
        out[..., c] = _match_channel(src[..., c], ref[..., c])
    return cv2.cvtColor(out, cv2.COLOR_LAB2RGB)


def _match_channel(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    s_values, s_index, s_counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    r_values, r_counts = np.unique(reference.ravel(), return_counts=True)
    s_quantiles = np.cumsum(s_counts) / source.size
    r_quantiles = np.cumsum(r_counts) / reference.size
    mapped = np.interp(s_quantiles, r_quantiles, r_values)
    return np.clip(mapped[s_index] + 0.5, 0, 255).astype(np.uint8).reshape(source.shape)
