"""Upscaler models (ESRGAN, Real-ESRGAN, DAT, SwinIR, ...) through spandrel, when it is installed.

spandrel identifies the architecture from the state dict. It depends on
torchvision, which is not part of paintwire[diffusers] (there is no CPU build
of it for every platform, and pip would otherwise pull a multi-GB CUDA torch),
so upscaler models work where spandrel is installed and are reported clearly
where it is not; Lanczos always works.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from paintwire.protocol import ErrorCode, ProtocolError

from .models import ModelEntry

TILE = 512  # upscaler input tile: bounded memory for any image size
TILE_PAD = 16  # context around each tile, cropped away after upscaling


def load_upscaler(entry: ModelEntry, device: torch.device) -> Any:
    try:
        import spandrel
    except ImportError:
        raise ProtocolError(
            ErrorCode.INVALID_PARAM,
            f"Upscaler model {entry.name!r} needs the spandrel package (pip install spandrel); Lanczos works without it.",
            "job.params.upscaler",
        ) from None
    from safetensors.torch import load_file

    model = spandrel.ModelLoader(device=device).load_from_state_dict(load_file(str(entry.path)))
    return model.eval()


def run_upscaler(model: Any, rgb: np.ndarray, progress: Callable[[int, int], None]) -> np.ndarray:
    """Upscale (H, W, 3) uint8 by the model's own factor, tile by tile."""
    scale = int(model.scale)
    h, w = rgb.shape[:2]
    out = np.zeros((h * scale, w * scale, 3), np.uint8)
    tiles = [(y, x) for y in range(0, h, TILE) for x in range(0, w, TILE)]
    device = next(model.model.parameters()).device
    for i, (y, x) in enumerate(tiles):
        y0, x0 = max(0, y - TILE_PAD), max(0, x - TILE_PAD)
        y1, x1 = min(h, y + TILE + TILE_PAD), min(w, x + TILE + TILE_PAD)
        t = torch.from_numpy(np.ascontiguousarray(rgb[y0:y1, x0:x1])).permute(2, 0, 1)[None].float().div(255).to(device)
        with torch.inference_mode():
            up = model(t)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        ty, tx = (y - y0) * scale, (x - x0) * scale
        th, tw = (min(h, y + TILE) - y) * scale, (min(w, x + TILE) - x) * scale
        out[y * scale:y * scale + th, x * scale:x * scale + tw] = up[ty:ty + th, tx:tx + tw]
        progress(i + 1, len(tiles))
    return out
