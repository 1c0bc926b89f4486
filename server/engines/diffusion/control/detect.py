"""ControlNets, IP-Adapters and image encoders in the model folders, told apart by
their tensors (the safetensors header only) or their config.json, never by running
or unpickling anything.

``classify_addon`` names the kind of a .safetensors file; ``classify_addon_folder``
that of a folder with a config.json; ``describe`` reads what a job needs to know to
pick one: which checkpoints it fits (its context width, SDXL or not), whether it is
a union ControlNet, and the control kind its name states.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paintwire.protocol import ModelKind

from ..entries import SD2, SD15, SDXL, ModelEntry, Shapes, read_header
from .kinds import kind_from_name

if TYPE_CHECKING:
    from ..families.base import Family

CONTROLNET, IP_ADAPTER, IMAGE_ENCODER = ModelKind.CONTROLNET.value, ModelKind.IP_ADAPTER.value, ModelKind.IMAGE_ENCODER.value
ADDON_KINDS = (CONTROLNET, IP_ADAPTER, IMAGE_ENCODER)
CONTROLNET_CLASSES = ("ControlNetModel", "ControlNetUnionModel", "FluxControlNetModel")
FLUX = ModelKind.FLUX.value
# A Flux.1 ControlNet in diffusers' naming (InstantX's releases): its own embedding of the control latents.
FLUX_CONTROLNET_KEY = "controlnet_x_embedder.weight"
ENCODER_CLASSES = ("CLIPVisionModelWithProjection",)


def _is_original_controlnet(keys: list[str]) -> bool:
    return any(k.endswith("input_hint_block.0.weight") for k in keys)


def classify_addon(shapes: Shapes) -> str | None:
    """CONTROLNET, IP_ADAPTER or IMAGE_ENCODER for a .safetensors file of that kind, else None."""
    keys = list(shapes)
    if "controlnet_cond_embedding.conv_in.weight" in shapes or FLUX_CONTROLNET_KEY in shapes or _is_original_controlnet(keys):
        return CONTROLNET
    if any(k.startswith("image_proj.") for k in keys) and any(k.startswith("ip_adapter.") for k in keys):
        return IP_ADAPTER
    if "vision_model.embeddings.patch_embedding.weight" in shapes and "visual_projection.weight" in shapes:
        return IMAGE_ENCODER
    return None


def classify_addon_folder(folder: Path) -> str | None:
    """CONTROLNET or IMAGE_ENCODER for a diffusers/transformers model folder (config.json), else None."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    if config.get("_class_name") in CONTROLNET_CLASSES:
        return CONTROLNET
    if any(a in ENCODER_CLASSES for a in config.get("architectures") or ()):
        return IMAGE_ENCODER
    return None


def weights_file(entry: ModelEntry) -> Path | None:
    """The .safetensors file holding an add-on's weights (the file itself, or the one in its folder)."""
    if entry.single_file:
        return entry.path
    files = sorted(entry.path.glob("*.safetensors"))
    return files[0] if files else None


@dataclass(frozen=True)
class Addon:
    """What a job needs to know about a ControlNet, IP-Adapter or image encoder."""

    entry: ModelEntry
    base: str  # the checkpoint family it was made for: sd15, sd2, sdxl or flux ("" when the tensors do not tell)
    context: int  # the width of the text features it attends to (a UNet's cross-attention width); 0: none or not checked
    union: bool = False  # a union ("promax") ControlNet: one model for several control kinds
    control_kind: str | None = None  # the kind its name states (ControlNets only)
    embedding: int = 0  # IP-Adapter: the image-feature width it reads; image encoder: its projection's width
    hidden: int = 0  # image encoder: the width of its hidden states (what "plus" IP-Adapters read)
    plus: bool = False  # IP-Adapter: reads the encoder's hidden states, not its projected embedding

    def reads(self, encoder: "Addon") -> bool:
        """Whether this IP-Adapter can read what ``encoder`` makes."""
        return (encoder.hidden if self.plus else encoder.embedding) == self.embedding

    def fits(self, context: int, family: Family) -> bool:
        """Whether it can guide a checkpoint of ``family`` with this cross-attention width."""
        if self.entry.kind == IMAGE_ENCODER:
            return True
        if self.base and not family.accepts_addon(self.base):
            return False
        return not self.context or self.context == context


def _family(sdxl: bool, context: int) -> str:
    return SDXL if sdxl else SD2 if context == 1024 else SD15


def _context(shapes: Shapes, suffix: str) -> int:
    return next((v[1] for k, v in shapes.items() if k.endswith(suffix) and len(v) == 2), 0)


@functools.lru_cache(maxsize=256)
def _describe(entry: ModelEntry, stamp: int) -> Addon:
    path = weights_file(entry)
    shapes = read_header(path) if path is not None else {}
    if entry.kind == CONTROLNET:
        config: dict = {}
        if not entry.single_file:
            config = json.loads((entry.path / "config.json").read_text(encoding="utf-8"))
        if config.get("_class_name") == "FluxControlNetModel" or FLUX_CONTROLNET_KEY in shapes:
            # A union (InstantX) Flux ControlNet embeds a control mode.
            union = bool(config.get("num_mode")) or "controlnet_mode_embedder.weight" in shapes
            return Addon(entry, FLUX, 0, union, kind_from_name(entry.name))
        sdxl = config.get("addition_embed_type") == "text_time" or any(
            k.endswith(("add_embedding.linear_1.weight", "label_emb.0.0.weight")) for k in shapes)
        context = int(config.get("cross_attention_dim") or _context(shapes, "attn2.to_k.weight"))
        union = config.get("_class_name") == "ControlNetUnionModel" or "task_embedding" in shapes
        return Addon(entry, _family(sdxl, context), context, union, kind_from_name(entry.name))
    if entry.kind == IP_ADAPTER:
        context = _context(shapes, "to_k_ip.weight")
        proj = shapes.get("image_proj.proj.weight") or shapes.get("image_proj.proj_in.weight") or (0, 0)
        base = SDXL if context == 2048 else SD2 if context == 1024 else SD15 if context == 768 else ""
        return Addon(entry, base, context, embedding=proj[1] if len(proj) == 2 else 0, plus="image_proj.latents" in shapes)
    projection = shapes.get("visual_projection.weight", (0, 0))
    return Addon(entry, "", 0, embedding=projection[0], hidden=projection[1])


def describe(entry: ModelEntry) -> Addon:
    """What ``entry`` (a CONTROLNET, IP_ADAPTER or IMAGE_ENCODER) fits; read once per file version."""
    path = weights_file(entry)
    return _describe(entry, path.stat().st_mtime_ns if path is not None else 0)
