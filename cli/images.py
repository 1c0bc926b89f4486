"""Image files in and out for the CLI, with Pillow and numpy.

The CLI is a client: it imports paintwire.protocol, numpy and Pillow, never the
server's image code, so a client-only install needs neither OpenCV nor torch.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from paintwire.protocol import Encoding, ImagePayload, Layer, PixelFormat, Result
from paintwire.protocol.compositing import place_over
from paintwire.protocol.pngtext import add_text

# The text chunks a layer's PNG carries (its settings: see paintwire.protocol.metadata).
Metadata = Callable[[Layer], Mapping[str, str]]


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


def payload_image(payload: ImagePayload) -> Image.Image:
    """A result layer's payload as an RGBA Pillow image."""
    if payload.encoding is Encoding.PNG:
        return Image.open(io.BytesIO(payload.data)).convert("RGBA")
    size = (payload.width, payload.height)
    if payload.format is PixelFormat.L8:
        return Image.frombytes("L", size, payload.data).convert("RGBA")
    raw_mode = "BGRA" if payload.format is PixelFormat.BGRA8 else "RGBA"
    return Image.frombytes("RGBA", size, payload.data, "raw", raw_mode)


def save_png(image: Image.Image, path: Path, text: Mapping[str, str] | None) -> None:
    """Save as PNG with ``text`` chunks (the settings), whatever the file's extension."""
    if not text:
        image.save(path, "PNG")
        return
    buf = io.BytesIO()
    image.save(buf, "PNG")
    path.write_bytes(add_text(buf.getvalue(), text))


def save_result(result: Result, source: np.ndarray | None, output: Path, layers_dir: Path | None, metadata: Metadata | None = None) -> None:
    """Write the input with the result layers applied to ``output``, and each layer to
    ``layers_dir``; every PNG carries the settings that made it (``metadata``),
    the output those of its first layer."""
    same_canvas = source is not None and source.shape[:2] == (result.height, result.width)
    canvas = source if same_canvas else np.zeros((result.height, result.width, 4), np.uint8)
    meta = []
    for i, layer in enumerate(result.layers):
        pixels = payload_image(layer.image)
        # "Normal" blending, as a painting program shows the new layer over the canvas.
        canvas = place_over(canvas, np.asarray(pixels), layer.x, layer.y)
        if layers_dir is not None:
            layers_dir.mkdir(parents=True, exist_ok=True)
            name = f"layer-{i}.png"
            save_png(pixels, layers_dir / name, metadata(layer) if metadata else None)
            meta.append({"file": name, "x": layer.x, "y": layer.y, "name": layer.name, "seed": layer.seed, "settings": dict(layer.settings)})
    if layers_dir is not None:
        (layers_dir / "layers.json").write_text(json.dumps({"width": result.width, "height": result.height, "layers": meta}, indent=2), encoding="utf-8")
    output.parent.mkdir(parents=True, exist_ok=True)
    first = result.layers[0] if result.layers else None
    if output.suffix.lower() == ".png" or output.suffix == "":
        save_png(Image.fromarray(canvas, "RGBA"), output, metadata(first) if metadata and first else None)
    else:
        Image.fromarray(canvas, "RGBA").save(output)  # another format (.webp, .tif): Pillow's own, without the PNG chunks
