"""Which installed add-on model serves which control layer, and the sentences for
what is missing: for capabilities (``ControlKindSpec.problem``) and for a job
(the checkpoint's family decides which ControlNets and IP-Adapters fit)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from paintwire.protocol import ControlKind, ControlKindSpec, ErrorCode, ProtocolError

from ..families import edit_kinds, family_named
from ..families.base import Family
from ..models import ModelEntry, ModelRegistry
from .detect import CONTROLNET, FLUX, IMAGE_ENCODER, IP_ADAPTER, Addon, describe
from .kinds import BY_NAME, KINDS

REFERENCE = ControlKind.REFERENCE.value
EDIT_REFERENCE = ControlKind.EDIT_REFERENCE.value

# The control modes of union ("promax") SDXL ControlNets, as they were trained
# (xinsir/controlnet-union-sdxl-1.0): the index each kind is given to the model.
UNION_MODES = {
    ControlKind.POSE.value: 0, ControlKind.DEPTH.value: 1, ControlKind.SOFTEDGE.value: 2, ControlKind.SCRIBBLE.value: 2,
    ControlKind.CANNY.value: 3, ControlKind.LINEART.value: 3, ControlKind.NORMAL.value: 4, ControlKind.SEGMENTATION.value: 5,
}
# Those of union Flux.1 ControlNets (InstantX/FLUX.1-dev-Controlnet-Union and its successors):
# canny 0, tile 1, depth 2, blur 3, pose 4, gray 5, low quality 6.
FLUX_UNION_MODES = {ControlKind.CANNY.value: 0, ControlKind.LINEART.value: 0, ControlKind.DEPTH.value: 2, ControlKind.POSE.value: 4}


def union_modes(base: str) -> dict[str, int]:
    """The control mode of each kind a union ControlNet made for the family named ``base`` serves."""
    return FLUX_UNION_MODES if base == FLUX else UNION_MODES


def folder_hint(folders: Sequence[Path], sub: str) -> str:
    base = Path(folders[0]) if folders else Path("models")
    return str(base / sub) + "/"


def _addons(registry: ModelRegistry, kind: str) -> list[Addon]:
    return [describe(e) for e in registry.of_kind(kind)]


def serves(addon: Addon, kind: str) -> bool:
    """Whether a ControlNet (chosen by the server) serves ``kind``: its name says so, or it is a union model."""
    return addon.control_kind == kind or (addon.union and kind in union_modes(addon.base))


def _label(base: str) -> str:
    """The name people know the family an add-on was made for by."""
    try:
        return family_named(base).label
    except KeyError:
        return base


def missing_controlnet(kind: str, folders: Sequence[Path], family: Family | None = None) -> str:
    label = BY_NAME[kind].label.lower() if kind in BY_NAME else kind
    made_for = f"made for {family.label} checkpoints" if family else "made for your checkpoint (SD 1.5, SDXL or Flux.1)"
    return (f"No ControlNet for {label} is installed{' that fits this checkpoint' if family else ''}: put one {made_for}, "
            f"a .safetensors file or diffusers folder with '{kind}' in its name (or a union/promax ControlNet), "
            f"into {folder_hint(folders, 'controlnet')}.")


def missing_adapter(folders: Sequence[Path], family: Family | None = None, encoder: bool = False) -> str:
    for_what = f" for {family.label} checkpoints" if family else ""
    if encoder:
        return (f"The IP-Adapter{for_what} needs its image encoder: put the CLIP vision model it was trained with (a folder with "
                f"config.json and model.safetensors, e.g. IP-Adapter's models/image_encoder) into {folder_hint(folders, 'clip_vision')}.")
    example = (family.ip_adapter_file if family else "") or "ip-adapter_sd15.safetensors"
    return (f"No IP-Adapter{for_what} is installed: put one (e.g. {example}) into {folder_hint(folders, 'ipadapter')} "
            f"and its image encoder (a folder with config.json and model.safetensors) into {folder_hint(folders, 'clip_vision')}.")


def missing_editor(folders: Sequence[Path]) -> str:
    return (f"No model that edits by instruction (kind {', '.join(edit_kinds())}) is installed: put one, a diffusers folder, "
            f"into {folder_hint(folders, 'checkpoints')}; edit reference layers go with the Edit mode on such a model.")


def control_kinds(registry: ModelRegistry, folders: Sequence[Path]) -> tuple[ControlKindSpec, ...]:
    """The kinds the engine publishes, each with a problem when no installed model serves it."""
    nets = _addons(registry, CONTROLNET)
    adapters, encoders = _addons(registry, IP_ADAPTER), _addons(registry, IMAGE_ENCODER)
    out = []
    for spec in KINDS:
        if spec.name == EDIT_REFERENCE:  # read by the editing model itself
            problem = "" if any(e.family.edits(e.kind) for e in registry.checkpoints() if e.family) else missing_editor(folders)
        elif spec.name == REFERENCE:
            problem = "" if any(a.reads(e) for a in adapters for e in encoders) else missing_adapter(folders, encoder=bool(adapters))
        else:
            problem = "" if any(serves(n, spec.name) for n in nets) else missing_controlnet(spec.name, folders)
        out.append(dataclasses.replace(spec, problem=problem))
    return tuple(out)


def pick_controlnet(registry: ModelRegistry, kind: str, name: str | None, context: int, family: Family,
                    folders: Sequence[Path], field: str) -> Addon:
    """The ControlNet for a layer of ``kind`` on a checkpoint of this width and family."""
    if name is not None:
        addon = _named(registry, name, CONTROLNET, field)
        if not addon.fits(context, family):
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"The ControlNet {name!r} is made for {_label(addon.base)} "
                                f"checkpoints and does not fit this job's {family.label} checkpoint; "
                                + missing_controlnet(kind, folders, family), field)
        return addon
    nets = [n for n in _addons(registry, CONTROLNET) if n.fits(context, family)]
    exact = [n for n in nets if n.control_kind == kind]
    union = [n for n in nets if n.union and kind in union_modes(n.base)]
    if exact or union:
        return (exact or union)[0]
    raise ProtocolError(ErrorCode.UNKNOWN_MODEL, missing_controlnet(kind, folders, family), field)


def pick_adapter(registry: ModelRegistry, name: str | None, context: int, family: Family,
                 folders: Sequence[Path], field: str) -> tuple[Addon, Addon]:
    """The IP-Adapter for a reference layer, and an image encoder it can read."""
    if name is not None:
        adapters = [_named(registry, name, IP_ADAPTER, field)]
    else:
        adapters = [a for a in _addons(registry, IP_ADAPTER) if a.fits(context, family)]
        if not adapters:
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, missing_adapter(folders, family), field)
    encoders = _addons(registry, IMAGE_ENCODER)
    for adapter in adapters:
        if not adapter.fits(context, family):
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"The IP-Adapter {adapter.entry.name!r} does not fit this job's "
                                f"{family.label} checkpoint; " + missing_adapter(folders, family), field)
        encoder = next((e for e in encoders if adapter.reads(e)), None)
        if encoder is not None:
            return adapter, encoder
    raise ProtocolError(ErrorCode.UNKNOWN_MODEL, missing_adapter(folders, family, encoder=True), field)


def _named(registry: ModelRegistry, name: str, kind: str, field: str) -> Addon:
    entry: ModelEntry | None = registry.get(name)
    if entry is None or entry.kind != kind:
        known = ", ".join(e.name for e in registry.of_kind(kind)) or "none installed"
        what = "a ControlNet" if kind == CONTROLNET else "an IP-Adapter"
        raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"{name!r} is not {what} (this server has: {known}).", field)
    return describe(entry)
