"""A job's control layers: refusing those that cannot go with it, and resolving the rest to loaded models."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from paintwire.protocol import ControlKind, ErrorCode, Phase, ProtocolError

from ...base import EngineJob, JobContext
from ..cache import LoadedModel
from ..families.base import Family
from ..models import ModelRegistry
from ..networks import denoiser_of
from ..params import EDIT
from ..references import EDIT_REFERENCE, reference_image
from .catalog import pick_adapter, pick_controlnet
from .kinds import BY_NAME
from .guidance import ControlSet, NetLayer, ReferenceLayer
from .loading import AddonLoader


def check_layers(job: EngineJob, family: Family, kind: str = "") -> None:
    """Refuse, before any model loads, control layers that cannot go with the job: an edit
    reference on a mode other than edit, a ControlNet or IP-Adapter layer on a family (or a
    model ``kind``) they cannot guide."""
    for i, layer in enumerate(job.controls):
        field = f"job.controls.{i}.kind"
        if layer.kind == EDIT_REFERENCE:
            if job.mode != EDIT.name:
                raise ProtocolError(ErrorCode.INVALID_PARAM, "Edit reference layers are read by the Edit mode only (an instruction "
                                    "edit on a model that edits); remove the layer from this job, or choose Edit.", field)
        elif not family.takes_addons(kind):
            label = BY_NAME[layer.kind].label.lower() if layer.kind in BY_NAME else layer.kind
            instead = "; for a picture to take things from, make it an edit reference layer" if job.mode == EDIT.name else ""
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"{_model_label(family, kind)} models take no {label} layers: the ControlNets "
                                f"this server loads guide Stable Diffusion and Flux.1 (dev, schnell) models, its IP-Adapters "
                                f"Stable Diffusion models only. Remove the layer{instead}.", field)
        elif layer.kind == ControlKind.REFERENCE.value and not family.takes_references():
            instead = "; for a picture to take things from, make it an edit reference layer" if job.mode == EDIT.name else ""
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"{family.label} models take no reference layers: the IP-Adapters this "
                                f"server loads guide Stable Diffusion models. Remove the layer{instead}.", field)


def _model_label(family: Family, kind: str) -> str:
    """The family's name, with the variant where only some of its models take ControlNets (Flux.1 Fill)."""
    variant = family.variant(kind)
    return f"{family.label} {variant.capitalize()}" if variant and family.takes_addons() else family.label


def control_set(job: EngineJob, loaded: LoadedModel, registry: ModelRegistry, loader: AddonLoader, folders: Sequence[Path],
                device: torch.device, ctx: JobContext) -> ControlSet | None:
    """The job's control layers with their models picked (by kind and the checkpoint's
    family) and loaded on ``device``; None when the job has none. Edit reference layers
    are no add-ons: the edit mode reads them itself."""
    layers = [(i, layer) for i, layer in enumerate(job.controls) if layer.kind != EDIT_REFERENCE]
    if not layers:
        return None
    family = loaded.entry.family  # the layers were checked against it before the model loaded (engine.py)
    denoiser = denoiser_of(loaded.base)
    # The width of a UNet's cross-attention picks the SD add-ons that fit; a transformer has
    # none (0): its ControlNets are told apart by their family alone.
    base_config = dict(denoiser.config)
    context = int(base_config.get("cross_attention_dim") or 0)
    controls = ControlSet(family)
    encoders: set[str] = set()
    n = len(layers)
    for done, (i, layer) in enumerate(layers):
        # A real ControlNet takes seconds to read from disk the first time: say so (warm ones pass at once).
        ctx.phase(Phase.LOADING_MODEL, done, n, "loading control models")
        field = f"job.controls.{i}"
        if layer.kind == ControlKind.REFERENCE.value:
            adapter, encoder = pick_adapter(registry, layer.model, context, family, folders, f"{field}.model")
            encoders.add(encoder.entry.name)
            if len(encoders) > 1:
                raise ProtocolError(ErrorCode.INVALID_PARAM, "Reference layers whose IP-Adapters need different image encoders "
                                    "cannot be combined in one job; use adapters made for the same encoder.", field)
            model = torch.nn.Module.to(loader.image_encoder(encoder.entry), device, denoiser.dtype)
            controls.references.append(ReferenceLayer(layer, loader.ip_adapter(adapter.entry), model, reference_image(layer.image, f"{field}.image")))
        else:
            addon = pick_controlnet(registry, layer.kind, layer.model, context, family, folders, f"{field}.model")
            # nn.Module.to, not diffusers' override, which warns on every dtype change.
            model = torch.nn.Module.to(loader.controlnet(addon.entry, base_config), device, denoiser.dtype)
            controls.nets.append(NetLayer(layer, addon, model))
    ctx.phase(Phase.LOADING_MODEL, n, n, "loading control models")
    controls.check()
    return controls
