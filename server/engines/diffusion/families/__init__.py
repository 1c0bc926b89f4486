"""The model families the diffusers engine serves, and the lookups the engine makes.

A family is found from a kind (``family_of``), and a file or folder's kind from
the families in turn (``recognise_file``, ``recognise_folder``): the first family
that recognises it wins, so each family's test must be exclusive of the others'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..entries import Shapes
from .base import Family
from .flux import FLUX, FLUX2
from .stable_diffusion import SD2, SD15, SDXL

FAMILIES: tuple[Family, ...] = (SD15, SD2, SDXL, FLUX, FLUX2)
_BY_NAME = {f.name: f for f in FAMILIES}


def family_named(name: str) -> Family:
    return _BY_NAME[name]


def family_of(kind: str) -> Family:
    """The family of a checkpoint kind ("sdxl-inpaint" -> SDXL)."""
    for family in FAMILIES:
        if kind in family.kinds:
            return family
    raise KeyError(f"no model family has the kind {kind!r}")


def family_name(kind: str) -> str:
    """The family name of a checkpoint kind, or "" for other kinds (LoRAs, VAEs, ...)."""
    return next((f.name for f in FAMILIES if kind in f.kinds), "")


def checkpoint_kinds() -> tuple[str, ...]:
    return tuple(k for f in FAMILIES for k in f.kinds)


def edit_kinds() -> tuple[str, ...]:
    """The checkpoint kinds that edit a picture by instruction (the edit mode's models)."""
    return tuple(k for f in FAMILIES for k in f.kinds if f.edits(k))


def recognise_file(shapes: Shapes) -> str | None:
    """The checkpoint kind of a single file from its tensors, or None when no family knows it."""
    return next((kind for f in FAMILIES if (kind := f.recognise_file(shapes))), None)


def recognise_folder(folder: Path) -> str | None:
    """The checkpoint kind of a diffusers pipeline folder, or None (not a pipeline this engine serves)."""
    try:
        index: Any = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict):
        return None
    return next((kind for f in FAMILIES if (kind := f.recognise_folder(index, folder))), None)


__all__ = ["FAMILIES", "FLUX", "FLUX2", "Family", "SD15", "SD2", "SDXL", "checkpoint_kinds", "edit_kinds", "family_name", "family_named", "family_of",
           "recognise_file", "recognise_folder"]
