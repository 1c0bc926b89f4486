"""A job's control layers, resolved to loaded models, applied to one denoising run.

``ControlSet`` is made once per job (models picked and loaded); ``ControlSet.at``
makes the ``Guidance`` of one run: the control images cropped and resized exactly
as the run's image was (the mode passes its own ``place`` function), then
preprocessed at the generated size. The guidance chooses the ControlNet pipeline
for the run's task (``from_pipe``: the checkpoint's weights are shared, not
copied), adds the ControlNet arguments, and fits IP-Adapters onto the UNet for
the run only.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image

from paintwire.protocol import ErrorCode, ProtocolError

from ...base import DecodedControl
from . import preprocess
from ..memory import stored_forms_kept
from ..networks import denoiser_of
from .catalog import union_modes
from .detect import Addon

if TYPE_CHECKING:
    from ..families.base import Family

Place = Callable[[np.ndarray], np.ndarray]  # a canvas-space RGBA layer -> the run's area, at the generated size


@dataclass
class NetLayer:
    layer: DecodedControl
    addon: Addon
    model: Any  # ControlNetModel, ControlNetUnionModel or FluxControlNetModel, on the device


@dataclass
class ReferenceLayer:
    layer: DecodedControl
    adapter: dict[str, dict[str, torch.Tensor]]
    encoder: Any  # CLIPVisionModelWithProjection, on the device
    image: Image.Image  # the layer's painted part, over white


@dataclass
class ControlSet:
    family: Family
    nets: list[NetLayer] = field(default_factory=list)
    references: list[ReferenceLayer] = field(default_factory=list)

    def check(self) -> None:
        """Raises for layers that cannot run together."""
        unions = {n.addon.union for n in self.nets}
        if len(unions) > 1:
            raise ProtocolError(ErrorCode.INVALID_PARAM, "A union (promax) ControlNet cannot be combined with other ControlNets in one job; "
                                "use the union model for every control layer, or none.", "job.controls")

    def at(self, place: Place) -> "Guidance":
        images = [Image.fromarray(preprocess.as_rgb(preprocess.run(n.layer.preprocessor, place(n.layer.image), n.layer.params)))
                  for n in self.nets]
        return Guidance(self, images)


@contextlib.contextmanager
def quiet_casts() -> Iterator[None]:
    """from_pipe casts the shared modules to the dtype they already have, and diffusers
    warns about every such cast (listing no module); that warning says nothing here."""
    logger = logging.getLogger("diffusers.models.modeling_utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class Guidance:
    controls: ControlSet
    images: list[Image.Image]  # one per ControlNet layer, at the generated size

    @property
    def nets(self) -> list[NetLayer]:
        return self.controls.nets

    @property
    def union(self) -> bool:
        return bool(self.nets) and self.nets[0].addon.union

    def pipeline(self, base_for: Callable[[str], Any], base: Any, task: str) -> Any:
        """The pipeline for ``task``: the checkpoint's own (``base_for``) when only references
        guide it, else the ControlNet pipeline made from ``base``, sharing its weights."""
        if not self.nets:
            return base_for(task)
        import diffusers

        family = self.controls.family
        name = family.control_pipeline_name(task, self.union)
        if name is None:
            what = "Union (promax) ControlNets" if self.union else "ControlNets"
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"{what} do not work with {family.label} checkpoints.", "job.controls")
        controlnet = family.control_net([n.model for n in self.nets], self.union)
        with quiet_casts(), stored_forms_kept(base):  # an fp8-stored transformer stays fp8 (see cache.py)
            pipe = getattr(diffusers, name).from_pipe(base, controlnet=controlnet, dtype=denoiser_of(base).dtype)
        pipe.set_progress_bar_config(disable=True)
        if getattr(base, "_all_hooks", None):
            pipe.enable_model_cpu_offload(device=base._offload_device)
        return pipe

    def kwargs(self, task: str) -> dict[str, Any]:
        """The pipeline arguments of the control layers."""
        out: dict[str, Any] = {}
        if self.nets:
            layers = [n.layer for n in self.nets]
            modes = [union_modes(n.addon.base)[n.layer.kind] for n in self.nets] if self.union else []
            out.update(self.controls.family.control_kwargs(task, self.union, self.images, layers, modes))
        if self.controls.references:
            out["ip_adapter_image"] = [r.image for r in self.controls.references]
        return out

    @contextlib.contextmanager
    def applied(self, pipe: Any, steps: int) -> Iterator[None]:
        """IP-Adapters fitted to the (shared) UNet for this run of about ``steps`` steps only,
        taken off after."""
        refs = self.controls.references
        if not refs:
            yield
            return
        unet = pipe.unet
        processors = dict(unet.attn_processors)
        hid_proj, hid_type = unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
        encoder, extractor = getattr(pipe, "image_encoder", None), getattr(pipe, "feature_extractor", None)
        try:
            pipe.register_modules(image_encoder=refs[0].encoder)
            with quiet_casts():
                pipe.load_ip_adapter([r.adapter for r in refs], subfolder=[""] * len(refs), weight_name=[""] * len(refs))
            pipe.set_ip_adapter_scale([self._reference_scale(r, 0, max(1, steps)) for r in refs])
            yield
        finally:
            unet.set_attn_processor(processors)
            unet.encoder_hid_proj = hid_proj
            unet.register_to_config(encoder_hid_dim_type=hid_type)
            pipe.register_modules(image_encoder=encoder, feature_extractor=extractor)

    @staticmethod
    def _reference_scale(ref: ReferenceLayer, step: int, steps: int) -> float:
        """A reference's strength at ``step`` of ``steps``: outside its range, 0 (the rule
        diffusers applies to ControlNets' control_guidance_start and end)."""
        layer = ref.layer
        outside = step / steps < layer.start or (step + 1) / steps > layer.end
        return 0.0 if outside else layer.strength

    def step_callback(self, pipe: Any, hook: Callable[..., Any]) -> Callable[..., Any]:
        """``hook`` wrapped to set each reference's strength for the next step (its range)."""
        refs = self.controls.references
        if not refs:
            return hook

        def callback(p: Any, step: int, timestep: Any, kwargs: dict) -> Any:
            steps = max(1, int(getattr(p, "_num_timesteps", 0) or step + 1))
            p.set_ip_adapter_scale([self._reference_scale(r, step + 1, steps) for r in refs])
            return hook(p, step, timestep, kwargs)

        return callback
