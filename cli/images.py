"""Image files in and out for the CLI (Pillow at the edge, the server's compositing for output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from paintwire.protocol import ImagePayload, PixelFormat, Result
from paintwire.server.engines.base import OutputLayer
from paintwire.server.imaging import payload_to_array
from paintwire.server.region import flatten


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None


def load_image(path: Path) -> tuple[ImagePayload, np.ndarray]:
    rgba = np.asarray(_open(path).convert("RGBA"))
    return ImagePayload(rgba.shape[1], rgba.shape[0], PixelFormat.RGBA8, rgba.tobytes()), rgba


def load_mask(path: Path) -> ImagePayload:
    img = _open(path)
    # A mask with transparency means "regenerate where opaque", as painted masks usually are.
    mask = img.getchannel("A") if img.mode in ("RGBA", "LA") and img.getextrema()[-1][0] < 255 else img.convert("L")
    return ImagePayload(mask.width, mask.height, PixelFormat.L8, mask.tobytes())


def save_result(result: Result, source: np.ndarray | None, output: Path, layers_dir: Path | None) -> None:
    same_canvas = source is not None and source.shape[:2] == (result.height, result.width)
    canvas = source if same_canvas else np.zeros((result.height, result.width, 4), np.uint8)
    meta = []
    for i, layer in enumerate(result.layers):
        pixels = payload_to_array(layer.image)
        canvas = flatten(canvas, OutputLayer(pixels, layer.x, layer.y, layer.name))
        if layers_dir is not None:
            layers_dir.mkdir(parents=True, exist_ok=True)
            name = f"layer-{i}.png"
            Image.fromarray(pixels, "RGBA").save(layers_dir / name)
            meta.append({"file": name, "x": layer.x, "y": layer.y, "name": layer.name, "seed": layer.seed, "settings": dict(layer.settings)})
    if layers_dir is not None:
        (layers_dir / "layers.json").write_text(json.dumps({"width": result.width, "height": result.height, "layers": meta}, indent=2), encoding="utf-8")
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas, "RGBA").save(output)
