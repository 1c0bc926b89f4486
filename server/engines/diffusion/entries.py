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
class Part:
    """One component of a model assembled from several files (a Flux transformer with its
    text encoders and VAE, as ComfyUI keeps them): what it is and where its tensors are."""

    # "transformer", "clip-l", "t5", "qwen3", "flux-vae", "flux2-vae"; "<role>-tokenizer" (a tokenizer folder);
    # "pipeline" (a diffusers folder of the family giving every part but the transformer)
    role: str
    path: Path
    prefix: str = ""  # where its tensor names start inside the file ("vae." in an all-in-one file)


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what clients send as job.model (or write in <lora:name:weight>)
    kind: str  # sd15, sd15-inpaint, sd2, sdxl, ..., lora, embedding, vae, upscaler
    path: Path
    single_file: bool = False  # a .safetensors file rather than a diffusers folder
    # A checkpoint's family (the engine asks it, never compares names); None for other kinds.
    family: "Family | None" = None
    # The files a checkpoint is assembled from, its own file first; empty: one file or folder holds it all.
    parts: tuple[Part, ...] = ()

    @property
    def inpaint(self) -> bool:
        """A checkpoint made for inpainting: it runs every task as an inpaint."""
        return self.family is not None and self.family.inpaint_only(self.kind)

    @property
    def is_checkpoint(self) -> bool:
        return self.kind in CHECKPOINT_KINDS


def read_header(path: Path) -> Shapes:
    """Tensor names and shapes of a .safetensors file, from its header alone. A file shorter
    than its header says (a download that stopped) is refused here, not when loaded."""
    return {k: tuple(v["shape"]) for k, v in read_header_entries(path).items()}


def read_header_entries(path: Path) -> dict[str, dict]:
    """The header's entry of each tensor (dtype, shape, data_offsets), checked against the file's length."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("too short for a safetensors file")
        (size,) = struct.unpack("<Q", raw)
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"header of {size} bytes is not plausible")
        text = f.read(size)
        if len(text) < size:
            raise ValueError(f"it is cut short: its header alone needs {8 + size} bytes")
        header = json.loads(text)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    needed = 8 + size + max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    have = Path(path).stat().st_size
    if have < needed:
        raise ValueError(f"it is cut short: {have} of its {needed} bytes are there (a download that stopped?)")
    return tensors
