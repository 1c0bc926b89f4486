"""How big each component of a model is, read from its files' headers without loading a weight.

The memory plan (memory_plan.py) is made from these sizes before a model is loaded
(a quantised load must know its plan beforehand) and for ``paintwire info``, which
shows the plan of every model. A .safetensors header gives each tensor's shape: its
numbers times the bytes of the run dtype is what the component takes once loaded
(files stored in another dtype are cast on loading). A GGUF file is quantised: it
takes what the file takes.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from .entries import ModelEntry, Shapes, read_header
from .memory_plan import Weights

# Where each component of an original-layout single file keeps its tensors.
SINGLE_FILE_PREFIXES = (
    ("model.diffusion_model.", "unet"),
    ("first_stage_model.", "vae"),
    ("cond_stage_model.", "text_encoder"),
    ("conditioner.embedders.0.", "text_encoder"),
    ("conditioner.embedders.1.", "text_encoder_2"),
)
# A repeated block: the part of a tensor's name up to its first index ("transformer_blocks.3.",
# "encoder.block.11.", "model.layers.35.", "single_blocks.7.").
_BLOCK = re.compile(r"^(.*?\.\d+)\.")
# What people call the text encoders, by the model_type of their config.
ENCODER_NAMES = {"t5": "T5", "umt5": "UMT5", "clip_text_model": "CLIP", "qwen3": "Qwen3", "qwen2": "Qwen2", "mistral3": "Mistral",
                 "gemma2": "Gemma 2"}


def _numbers(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _largest_block(numbers: dict[str, int]) -> int:
    blocks: dict[str, int] = {}
    for name, n in numbers.items():
        m = _BLOCK.match(name)
        if m:
            blocks[m.group(1)] = blocks.get(m.group(1), 0) + n
    return max(blocks.values(), default=0)


def _shapes_numbers(shapes: Shapes) -> dict[str, int]:
    return {k: _numbers(v) for k, v in shapes.items()}


def gguf_sizes(path: Path) -> tuple[int, int]:
    """(bytes of the file, bytes of its largest block as stored) of a GGUF file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    stored = {t.name: int(t.n_bytes) for t in reader.tensors}
    return path.stat().st_size, _largest_block(stored)


def _encoder_label(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    name = ENCODER_NAMES.get(str(config.get("model_type", "")) if isinstance(config, dict) else "")
    return f"{name} text encoder" if name else ""


def folder_weights(folder: Path, element_size: int) -> Weights:
    """The components of a diffusers folder: each subfolder holding .safetensors weights
    (without a variant in the name, as the loader reads them) or a .gguf file."""
    sizes: dict[str, int] = {}
    blocks: dict[str, int] = {}
    fixed: set[str] = set()
    labels: dict[str, str] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        ggufs = sorted(sub.glob("*.gguf"))
        files = [f for f in sub.glob("*.safetensors") if "." not in f.name[: -len(".safetensors")]]
        if ggufs:
            size, block = gguf_sizes(ggufs[0])
            sizes[sub.name], blocks[sub.name] = size, block
            fixed.add(sub.name)
        elif files:
            numbers: dict[str, int] = {}
            for f in files:
                numbers.update(_shapes_numbers(read_header(f)))
            sizes[sub.name] = sum(numbers.values()) * element_size
            blocks[sub.name] = _largest_block(numbers) * element_size
        else:
            continue
        if sub.name.startswith("text_encoder") and (label := _encoder_label(sub)):
            labels[sub.name] = label
    return Weights(sizes, element_size, blocks, frozenset(fixed), labels)


def single_file_weights(path: Path, element_size: int) -> Weights:
    """The components of an original-layout single file, by the prefixes of its tensors."""
    numbers: dict[str, dict[str, int]] = {}
    for name, n in _shapes_numbers(read_header(path)).items():
        for prefix, component in SINGLE_FILE_PREFIXES:
            if name.startswith(prefix):
                numbers.setdefault(component, {})[name[len(prefix):]] = n
                break
    sizes = {c: sum(v.values()) * element_size for c, v in numbers.items()}
    blocks = {c: _largest_block(v) * element_size for c, v in numbers.items()}
    return Weights(sizes, element_size, blocks)


def entry_weights(entry: ModelEntry, element_size: int) -> Weights | None:
    """A checkpoint's component sizes from its files; None when they cannot be read."""
    try:
        if entry.single_file:
            weights = single_file_weights(entry.path, element_size)
        else:
            weights = folder_weights(entry.path, element_size)
    except (OSError, ValueError, KeyError):
        return None
    loaded = entry.family.weight_components if entry.family else ()
    if loaded:  # what the pipeline loads: not a folder's safety checker, say
        weights = replace(weights, sizes={c: s for c, s in weights.sizes.items() if c in loaded},
                          blocks={c: s for c, s in weights.blocks.items() if c in loaded})
    return weights if weights.sizes else None
