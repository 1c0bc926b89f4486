"""Upscaler models (ESRGAN, Real-ESRGAN, SwinIR, DAT, HAT, ...) through spandrel, tiled.

spandrel recognises an architecture from the names of its tensors and builds
the network for the weights; Paintwire gives it only ``.safetensors`` files
(a pickle can run code when loaded and is never opened).

Memory: the image goes through the model in tiles of ``TILE`` input pixels
(plus ``CONTEXT`` pixels of context on each side, cropped away after), which
overlap by ``OVERLAP`` pixels and are blended by ``TileBlender``. The working
set is one tile's activations plus one row of tiles in float32, whatever the
image's size; see docs/models.md for the figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np
import torch

from paintwire.protocol import ErrorCode, ProtocolError

from .entries import ModelEntry
from .tiling import TileBlender, TileGrid

TILE = 256  # input pixels per tile side: bounds one tile's activations (see docs/models.md for the figures)
OVERLAP = 32  # input pixels that neighbouring tiles share and blend
CONTEXT = 16  # extra input pixels each tile sees on every side, cropped away after the model
MAX_PASSES = 3  # a 2x model asked for 8x runs three times, as the WebUI does

FIELD = "job.params.upscaler"

Progress = Callable[[int, int], None]


def upscaler_architecture(keys: Iterable[str]) -> str | None:
    """The spandrel architecture of a state dict, from its tensor names alone (no weights read)."""
    import spandrel

    state = spandrel.canonicalize_state_dict(dict.fromkeys(keys))
    for support in spandrel.MAIN_REGISTRY.architectures("detection"):
        try:
            if support.detect(state):
                return str(support.architecture.name)
        except Exception:  # a detector that looks at values: it cannot tell from names, so it is not this one
            continue
    return None


@dataclass
class Upscaler:
    """A loaded upscaler model: spandrel's descriptor, on its device, in its dtype."""

    name: str
    descriptor: Any  # spandrel.ImageModelDescriptor
    device: torch.device
    dtype: torch.dtype

    @property
    def scale(self) -> int:
        return int(self.descriptor.scale)

    @property
    def architecture(self) -> str:
        return str(self.descriptor.architecture.name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) float in [0, 1] on the model's device -> (1, 3, h*scale, w*scale)."""
        return self.descriptor(x)


def load_upscaler(entry: ModelEntry, device: torch.device) -> Upscaler:
    """Load an upscaler ``.safetensors`` file; an architecture spandrel does not know, or a
    model that is not an image-to-image one, is an invalid_param error naming the file."""
    import spandrel
    from safetensors.torch import load_file

    if entry.path.suffix != ".safetensors":  # the registry lists nothing else; never unpickle
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"Upscaler {entry.name!r} is not a .safetensors file.", FIELD)
    try:
        descriptor = spandrel.ModelLoader(device=device).load_from_state_dict(load_file(str(entry.path)))
    except spandrel.UnsupportedModelError:
        raise ProtocolError(
            ErrorCode.INVALID_PARAM,
            f"Upscaler {entry.name!r}: its architecture is not one that spandrel knows (ESRGAN, Real-ESRGAN, SwinIR, "
            "DAT, HAT and others are); use another model or lanczos.",
            FIELD,
        ) from None
    except Exception as exc:  # a known architecture whose tensors do not fit it: a damaged or odd file
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"Upscaler {entry.name!r} could not be loaded: {exc}", FIELD) from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ProtocolError(
            ErrorCode.INVALID_PARAM,
            f"Upscaler {entry.name!r} is a {descriptor.architecture.name} model that does not turn an RGB image into an RGB "
            "image; choose an upscaler model.",
            FIELD,
        )
    dtype = torch.float32
    if device.type == "cuda" and descriptor.supports_half:
        dtype = torch.float16  # half the memory and about twice the speed; spandrel says where it is safe
    descriptor.to(device=device, dtype=dtype).eval()
    return Upscaler(entry.name, descriptor, device, dtype)


def passes_for(scale: int, width: int, height: int, target_width: int, target_height: int) -> int:
    """How many times the model runs to reach the target size (then Lanczos finishes)."""
    if scale <= 1:
        return 1
    need = max(target_width / width, target_height / height)
    return max(1, min(MAX_PASSES, math.ceil(math.log(need, scale) - 1e-9)))


def upscale_rgb(model: Upscaler, rgb: np.ndarray, passes: int, progress: Progress) -> np.ndarray:
    """Run the model ``passes`` times over (H, W, 3) uint8, tile by tile; progress counts tiles of all passes."""
    h, w = rgb.shape[:2]
    grids = [TileGrid(w * model.scale**i, h * model.scale**i, TILE, OVERLAP) for i in range(passes)]
    total = sum(len(g) for g in grids)
    done = 0

    def tick(i: int, n: int) -> None:
        progress(done + i, total)

    for grid in grids:
        rgb = run_tiles(model, rgb, grid, tick)
        done += len(grid)
    return rgb


def run_tiles(model: Upscaler, rgb: np.ndarray, grid: TileGrid, progress: Progress) -> np.ndarray:
    """One pass of the model over ``grid``'s tiles of ``rgb``, blended without seams."""
    s = model.scale
    h, w = rgb.shape[:2]
    blender = TileBlender(grid, s)
    boxes = grid.boxes()
    for i, box in enumerate(boxes):
        x0, y0 = max(0, box.x - CONTEXT), max(0, box.y - CONTEXT)
        x1, y1 = min(w, box.x + box.width + CONTEXT), min(h, box.y + box.height + CONTEXT)
        t = torch.from_numpy(np.ascontiguousarray(rgb[y0:y1, x0:x1])).permute(2, 0, 1)[None]
        t = t.to(model.device, model.dtype).div_(255)
        with torch.inference_mode():
            up = model(t)[0].float().clamp_(0, 1).mul_(255).permute(1, 2, 0).cpu().numpy()
        del t
        cy, cx = (box.y - y0) * s, (box.x - x0) * s
        blender.add(box, up[cy:cy + box.height * s, cx:cx + box.width * s])
        progress(i + 1, len(boxes))  # raises once the job is cancelled: at most one tile more runs
    return blender.result()


def resize_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    """The alpha channel at the new size (Lanczos); an opaque image stays opaque without work."""
    if alpha.min() == 255:
        return np.full((height, width), 255, np.uint8)
    return cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LANCZOS4)

