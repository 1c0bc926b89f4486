"""What a model file is, as every part of the engine names it: the kinds and families,
a registry entry, and a .safetensors header read without its weights.

The registry (models.py) and the readers of add-ons (control/detect.py) and
upscalers (upscalers.py) all build on these; keeping them here lets the registry
import those readers without either importing the registry back.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paintwire.protocol import CHECKPOINT_KINDS as _CHECKPOINTS
from paintwire.protocol import ModelKind

if TYPE_CHECKING:
    from .families.base import Family

# Families and the kinds the registry reports (ModelInfo.kind): the protocol's ModelKind values.
SD15, SD2, SDXL = ModelKind.SD15.value, ModelKind.SD2.value, ModelKind.SDXL.value
CHECKPOINT_KINDS = {k.value for k in _CHECKPOINTS}
LORA, EMBEDDING, VAE, UPSCALER = ModelKind.LORA.value, ModelKind.EMBEDDING.value, ModelKind.VAE.value, ModelKind.UPSCALER.value

# A safetensors header is JSON of a few hundred KB at most for real models;
# a bigger one is a broken or hostile file, not a model.
MAX_HEADER_BYTES = 64 * 1024 * 1024

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what clients send as job.model (or write in <lora:name:weight>)
    kind: str  # sd15, sd15-inpaint, sd2, sdxl, ..., lora, embedding, vae, upscaler
    path: Path
    single_file: bool = False  # a .safetensors file rather than a diffusers folder
    # A checkpoint's family (the engine asks it, never compares names); None for other kinds.
    family: "Family | None" = None

    @property
    def inpaint(self) -> bool:
        """A checkpoint made for inpainting: it runs every task as an inpaint."""
        return self.family is not None and self.family.inpaint_only(self.kind)

    @property
    def is_checkpoint(self) -> bool:
        return self.kind in CHECKPOINT_KINDS


def read_header(path: Path) -> Shapes:
    """Tensor names and shapes of a .safetensors file, from its header alone."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("too short for a safetensors file")
        (size,) = struct.unpack("<Q", raw)
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"header of {size} bytes is not plausible")
        header = json.loads(f.read(size))
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
