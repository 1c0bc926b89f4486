"""Flux.1 (dev, schnell, Krea, Fill, Kontext) and Flux.2 Klein: flow-matching transformers.

Both denoise packed latents (2 x 2 latent pixels a token) with a rectified flow,
so their samplers are flow samplers and their steps predict a velocity. What
differs between them is kept here:

- Flux.1 reads CLIP-L (pooled) and T5-XXL (per token); dev, Krea and Kontext have
  guidance distilled into the model (``guidance_scale`` is a number it reads, no
  extra pass); schnell has none. Fill is its inpainting model, Kontext its editor.
- Flux.2 Klein reads one Qwen3 text encoder (hidden states of three layers); its
  VAE (``AutoencoderKLFlux2``) keeps batch-norm statistics of its latents, which the
  pipeline undoes before returning latents. The distilled Klein runs in 4 steps
  without guidance; the base model uses classifier-free guidance with a negative prompt.
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..device import GiB
from ..entries import Shapes
from ..references import at_least, side_by_side
from ..sampling import flow_sampler, make_flow_scheduler
from ..vae_codec import decode
from . import flux_files
from .base import CFG, DISTILLED, EDIT, FLOW, IMG2IMG, INPAINT, TXT2IMG, Family, FindTokenizer
from .flux_loading import load_pipeline

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from ..cache import LoadedModel
    from ..entries import ModelEntry
    from ..generate import Sampling

FLUX_LORAS = ("kohya", "bfl", "diffusers")


def _call_parameters(pipe: Any) -> frozenset[str]:
    return _parameters_of(type(pipe))


@functools.lru_cache(maxsize=64)
def _parameters_of(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.__call__).parameters)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class FlowTransformer(Family):
    """What the flow families share: schedulers, batches of conditioning, decoding."""

    def sampler_used(self, name: str) -> str:
        return flow_sampler(name)

    def scheduler(self, sampling: Sampling, config: Any) -> Any:
        return make_flow_scheduler(sampling.scheduler, config)

    def loaded_native_size(self, pipe: Any) -> int:
        # The transformer's config has no size; the VAE's says the training side (1024 for the real models).
        return int(getattr(pipe.vae.config, "sample_size", 0) or self.native_size)

    def size_kwargs(self, pipe: Any, task: str, width: int, height: int) -> dict[str, Any]:
        # Their image pipelines make 1024 x 1024 unless told; Kontext scales to max_area
        # (1 megapixel) and resizes its input unless told not to.
        out: dict[str, Any] = {"height": height, "width": width}
        if "max_area" in _call_parameters(pipe):
            out.update(max_area=width * height, _auto_resize=False)
        return out

    def write_skeleton(self, folder: Path, shapes: Shapes, kind: str, pipeline_class: str,
                       find_tokenizer: FindTokenizer, prediction: str | None = None) -> Path:
        # ``shapes``: every part's tensors under flux_files.PREFIXES (split_layout.combined_shapes).
        return flux_files.write_skeleton(folder, shapes, kind, pipeline_class, find_tokenizer)

    def recognise_file(self, shapes: Shapes) -> str | None:
        # By the shapes alone; the registry adds what the file name or a sidecar says (Kontext, Klein base).
        kind = flux_files.transformer_kind(shapes)
        return kind if kind in self.kinds else None

    def load_single_file(self, cls: Any, entry: ModelEntry, config: Path, kwargs: dict[str, Any]) -> Any:
        return load_pipeline(cls, entry.parts, config, kwargs["dtype"], kwargs)


@dataclass(frozen=True)
class Flux1(FlowTransformer):
    def recognise_folder(self, index: dict[str, Any], folder: Path) -> str | None:
        cls = str(index.get("_class_name", ""))
        if not cls.startswith("Flux") or cls.startswith("Flux2"):
            return None
        transformer = _read_json(folder / "transformer" / "config.json")
        if "Fill" in cls or transformer.get("in_channels", 64) > 64:
            return "flux-fill"
        if "Kontext" in cls:
            return "flux-kontext"
        if transformer and not transformer.get("guidance_embeds", True):
            return "flux-schnell"
        return "flux"

    def pipeline_name(self, kind: str, task: str) -> str | None:
        variant = self.variant(kind)
        if variant == "fill":
            return None if task == EDIT else "FluxFillPipeline"  # Fill runs every task as an inpaint
        if variant == "kontext":
            return {TXT2IMG: "FluxKontextPipeline", IMG2IMG: "FluxImg2ImgPipeline", INPAINT: "FluxKontextInpaintPipeline",
                    EDIT: "FluxKontextPipeline"}.get(task)
        return {TXT2IMG: "FluxPipeline", IMG2IMG: "FluxImg2ImgPipeline", INPAINT: "FluxInpaintPipeline"}.get(task)

    def inpaint_only(self, kind: str) -> bool:
        return self.variant(kind) == "fill"

    # InstantX/XLabs-style ControlNets (FluxControlNetModel) guide dev and schnell; Fill and
    # Kontext read other inputs than those pipelines give a transformer.
    def control_pipeline_name(self, task: str, union: bool) -> str | None:
        return {TXT2IMG: "FluxControlNetPipeline", IMG2IMG: "FluxControlNetImg2ImgPipeline",
                INPAINT: "FluxControlNetInpaintPipeline"}.get(task)

    def takes_addons(self, kind: str = "") -> bool:
        return self.variant(kind) in ("", "schnell")

    def takes_references(self) -> bool:
        return False  # IP-Adapters here are made for a UNet's cross-attention

    def control_net(self, models: list[Any], union: bool) -> Any:
        from diffusers import FluxMultiControlNetModel

        return models[0] if len(models) == 1 else FluxMultiControlNetModel(models)

    def control_kwargs(self, task: str, union: bool, images: list[Any], layers: list[Any], modes: list[int]) -> dict[str, Any]:
        # Every task names them control_image; one model takes numbers, several take lists.
        one = len(layers) == 1
        out: dict[str, Any] = {
            "control_image": images[0] if one else images,
            "controlnet_conditioning_scale": layers[0].strength if one else [l.strength for l in layers],
            "control_guidance_start": layers[0].start if one else [l.start for l in layers],
            "control_guidance_end": layers[0].end if one else [l.end for l in layers],
        }
        if union:
            out["control_mode"] = modes[0] if one else modes
        return out

    def lora_weights(self, path: Path) -> Any:
        """LoRAs in Black Forest Labs' naming (ComfyUI's: ``diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight``)
        match none of diffusers' Flux.1 readers, which would load nothing without a word: they
        are renamed to the kohya form (``lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight``),
        which diffusers reads, with an alpha equal to the rank (a scale of 1, as the BFL form means)."""
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
            if not any(".lora_A." in k and ("double_blocks." in k or "single_blocks." in k) for k in keys):
                return str(path)
            state = {k: f.get_tensor(k) for k in keys}
        out: dict[str, torch.Tensor] = {}
        for key, tensor in state.items():
            module, _, rest = key.removeprefix("diffusion_model.").partition(".lora_")
            kohya = "lora_unet_" + module.replace(".", "_")
            if rest == "A.weight":
                out[f"{kohya}.lora_down.weight"] = tensor
                out.setdefault(f"{kohya}.alpha", torch.tensor(float(tensor.shape[0])))
            elif rest == "B.weight":
                out[f"{kohya}.lora_up.weight"] = tensor
            else:
                out[key] = tensor
        return out

    def reference_kwargs(self, task: str, source: Image.Image, references: list[Image.Image]) -> dict[str, Any]:
        # Kontext reads one reference image: the picture, with any references beside it. Its
        # inpaint pipeline reads the picture it inpaints as the reference unless given one.
        if task == EDIT:
            return {"image": side_by_side([source, *references], source.height)}
        return {"image_reference": side_by_side([source, *references], source.height)} if references else {}

    def prompt_key(self, sampling: Sampling, pipe: Any) -> tuple:
        return (sampling.prompt, sampling.adapters)

    def encode_prompt(self, pipe: Any, sampling: Sampling) -> dict[str, Any]:
        embeds, pooled, _ = pipe.encode_prompt(prompt=sampling.prompt, prompt_2=None, device=pipe._execution_device,
                                               num_images_per_prompt=1, max_sequence_length=self.max_sequence_length(pipe))
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def max_sequence_length(self, pipe: Any) -> int:
        # dev and Kontext read 512 T5 tokens; schnell was trained on 256.
        guided = getattr(pipe.transformer.config, "guidance_embeds", True)
        return 512 if guided else 256

    def guidance_kwargs(self, sampling: Sampling, pipe: Any) -> dict[str, Any]:
        # Distilled guidance: the model reads the number (schnell ignores it).
        return {"guidance_scale": sampling.cfg}

    def decode(self, loaded: LoadedModel, pipe: Any, latents: torch.Tensor, width: int, height: int) -> list[np.ndarray]:
        return decode(loaded, pipe, pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor))

    def preview_latents(self, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """(batch, tokens, 64) packed -> (16, h, w) of the first image."""
        h, w = height // 16, width // 16
        x = latents[0, : h * w].reshape(h, w, -1, 2, 2)  # tokens of 2 x 2 latent pixels, channels first
        return x.permute(2, 0, 3, 1, 4).reshape(-1, h * 2, w * 2)


@dataclass(frozen=True)
class Flux2(FlowTransformer):
    def recognise_folder(self, index: dict[str, Any], folder: Path) -> str | None:
        cls = str(index.get("_class_name", ""))
        if not cls.startswith("Flux2Klein"):
            return None
        return "flux2-klein" if index.get("is_distilled", False) else "flux2-klein-base"

    def pipeline_name(self, kind: str, task: str) -> str | None:
        # Klein has no image-to-image pipeline: img2img runs as an inpaint of everything.
        return {TXT2IMG: "Flux2KleinPipeline", INPAINT: "Flux2KleinInpaintPipeline", EDIT: "Flux2KleinPipeline"}.get(task)

    def reference_kwargs(self, task: str, source: Image.Image, references: list[Image.Image]) -> dict[str, Any]:
        # Klein reads a list of pictures. Its inpaint pipeline always reads the picture it
        # inpaints as a reference, and one more image (a list is resized to the first's size
        # as one batch, so several references go side by side in one).
        if task == EDIT:
            return {"image": [at_least(p) for p in (source, *references)]}
        return {"image_reference": at_least(side_by_side(references, source.height))} if references else {}

    def prompt_key(self, sampling: Sampling, pipe: Any) -> tuple:
        return (sampling.prompt, sampling.negative_prompt if self._guided(pipe) else "", sampling.adapters)

    @staticmethod
    def _guided(pipe: Any) -> bool:
        """The base model takes classifier-free guidance; the distilled one none."""
        return not bool(getattr(pipe.config, "is_distilled", False))

    def encode_prompt(self, pipe: Any, sampling: Sampling) -> dict[str, Any]:
        device = pipe._execution_device
        out: dict[str, Any] = {"prompt_embeds": pipe.encode_prompt(prompt=sampling.prompt, device=device, num_images_per_prompt=1)[0]}
        if self._guided(pipe):
            out["negative_prompt_embeds"] = pipe.encode_prompt(prompt=sampling.negative_prompt, device=device, num_images_per_prompt=1)[0]
        return out

    def guidance_kwargs(self, sampling: Sampling, pipe: Any) -> dict[str, Any]:
        # The distilled model takes none (and warns at any scale above 1).
        return {"guidance_scale": sampling.cfg if self._guided(pipe) else 1.0}

    def decode(self, loaded: LoadedModel, pipe: Any, latents: torch.Tensor, width: int, height: int) -> list[np.ndarray]:
        # The pipeline returns the VAE's own latents (statistics undone, unpatchified).
        return decode(loaded, pipe, latents, vae_space=True)

    def preview_space(self, latents: torch.Tensor) -> torch.Tensor:
        """The VAE's (batch, 32, h, w) latents as the steps see them: 2 x 2 patches as 128 channels."""
        b, c, h, w = latents.shape
        x = latents.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, c * 4, h // 2, w // 2)

    def preview_latents(self, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """(batch, tokens, 128) packed, row by row -> (128, h, w) of the first image."""
        h, w = height // 16, width // 16
        return latents[0, : h * w].reshape(h, w, -1).permute(2, 0, 1)


FLUX = Flux1(
    "flux", "Flux.1", native_size=1024, size_multiple=16, latent_channels=16, vae_scale_factor=8, prediction=FLOW,
    guidance=DISTILLED, prompt_weighting=False, latent_edits=False, lora_formats=FLUX_LORAS, activation_reserve=int(3 * GiB),
    weight_components=("transformer", "vae", "text_encoder", "text_encoder_2"), variants=("schnell", "fill", "kontext"), split_files=True,
    per_component_memory=True,
)
FLUX2 = Flux2(
    "flux2", "Flux.2", native_size=1024, size_multiple=16, latent_channels=32, vae_scale_factor=8, prediction=FLOW,
    guidance=CFG, prompt_weighting=False, latent_edits=False, lora_formats=FLUX_LORAS, activation_reserve=int(3 * GiB),
    weight_components=("transformer", "vae", "text_encoder"), variants=("klein", "klein-base"), base_kind=False, split_files=True,
    per_component_memory=True,
)
