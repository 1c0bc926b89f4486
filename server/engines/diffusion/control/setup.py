"""Resolving a job's control layers to loaded models: the engine's one call."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from paintwire.protocol import ControlKind, ErrorCode, Phase, ProtocolError

from ...base import EngineJob, JobContext
from ..cache import LoadedModel
from ..models import ModelRegistry
from .catalog import pick_adapter, pick_controlnet
from .guidance import ControlSet, NetLayer, ReferenceLayer, reference_image
from .loading import AddonLoader


def control_set(job: EngineJob, loaded: LoadedModel, registry: ModelRegistry, loader: AddonLoader, folders: Sequence[Path],
                device: torch.device, ctx: JobContext) -> ControlSet | None:
    """The job's control layers with their models picked (by kind and the checkpoint's
    family) and loaded on ``device``; None when the job has none."""
    if not job.controls:
        return None
    family = loaded.entry.family
    if family.control_pipeline_name("txt2img", False) is None:
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"Control layers do not work with {family.label} models here: the ControlNets "
                            "and IP-Adapters this server runs are made for Stable Diffusion. Remove the control layers, or "
                            "choose an SD model.", "job.controls")
    unet = dict(loaded.base.unet.config)
    context = int(unet.get("cross_attention_dim") or 0)
    controls = ControlSet(family)
    encoders: set[str] = set()
    n = len(job.controls)
    for i, layer in enumerate(job.controls):
        # A real ControlNet takes seconds to read from disk the first time: say so (warm ones pass at once).
        ctx.phase(Phase.LOADING_MODEL, i, n, "loading control models")
        field = f"job.controls.{i}"
        if layer.kind == ControlKind.REFERENCE.value:
            adapter, encoder = pick_adapter(registry, layer.model, context, family, folders, f"{field}.model")
            encoders.add(encoder.entry.name)
            if len(encoders) > 1:
                raise ProtocolError(ErrorCode.INVALID_PARAM, "Reference layers whose IP-Adapters need different image encoders "
                                    "cannot be combined in one job; use adapters made for the same encoder.", field)
            model = torch.nn.Module.to(loader.image_encoder(encoder.entry), device, loaded.base.unet.dtype)
            controls.references.append(ReferenceLayer(layer, loader.ip_adapter(adapter.entry), model, reference_image(layer.image, f"{field}.image")))
        else:
            addon = pick_controlnet(registry, layer.kind, layer.model, context, family, folders, f"{field}.model")
            # nn.Module.to, not diffusers' override, which warns on every dtype change.
            model = torch.nn.Module.to(loader.controlnet(addon.entry, unet), device, loaded.base.unet.dtype)
            controls.nets.append(NetLayer(layer, addon, model))
    ctx.phase(Phase.LOADING_MODEL, n, n, "loading control models")
    controls.check()
    return controls
