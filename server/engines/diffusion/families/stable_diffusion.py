"""Stable Diffusion 1.x, 2.x and SDXL: UNet families with CLIP text encoders.

Their files are told apart by tensor names: an SDXL file has a second text
encoder (``conditioner.embedders.1``) or the UNet's size embedding
(``label_emb``); SD2 has an OpenCLIP text encoder (``cond_stage_model.model``);
the rest with an LDM UNet is SD1. Nine input channels make an inpainting model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..device import GiB
from ..entries import Shapes
from ..prompt_encoding import encode_prompts
from ..sampling import make_scheduler
from ..vae_codec import decode
from . import sd_configs
from .base import CFG, EDIT, EPSILON, IMG2IMG, INPAINT, TXT2IMG, V_PREDICTION, Family, FindTokenizer

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..cache import LoadedModel
    from ..generate import Sampling

SD_LORAS = ("kohya", "diffusers")
_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


@dataclass(frozen=True)
class StableDiffusion(Family):
    pipeline_prefix: str = "StableDiffusion"  # StableDiffusion(Img2Img|Inpaint)Pipeline, or the XL ones
    xl: bool = False  # two text encoders and the UNet's size conditioning (SDXL)
    open_clip: bool = False  # its one text encoder is OpenCLIP (SD2)
    wide_heads: bool = False  # attention heads 64 channels wide (SD2, SDXL) rather than 8 heads per block
    vae_scaling: float = 0.18215
    vae_force_upcast: bool = False  # the VAE overflows in fp16
    epsilon_size: int = 0  # the native side of its noise-predicting models where it differs (SD2's 512 px base)
    addon_bases: tuple[str, ...] = ()  # the families whose add-ons fit it (ControlNets, IP-Adapters)

    def _file_family(self, shapes: Shapes) -> str | None:
        if _CONV_IN not in shapes:
            return None
        if "model.diffusion_model.label_emb.0.0.weight" in shapes or any(k.startswith("conditioner.embedders.1.") for k in shapes):
            return SDXL.name
        if any(k.startswith("cond_stage_model.model.") for k in shapes):
            return SD2.name  # OpenCLIP text encoder
        return SD15.name

    def recognise_file(self, shapes: Shapes) -> str | None:
        if self._file_family(shapes) != self.name:
            return None
        return f"{self.name}-inpaint" if shapes[_CONV_IN][1] == 9 else self.name

    def recognise_folder(self, index: dict[str, Any], folder: Path) -> str | None:
        cls = str(index.get("_class_name", ""))
        if not cls.startswith("StableDiffusion") or cls.startswith("StableDiffusion3"):
            return None
        try:
            unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if "XL" in cls or unet.get("addition_embed_type") == "text_time":
            family = SDXL.name
        elif unet.get("cross_attention_dim") == 1024:
            family = SD2.name
        else:
            family = SD15.name
        if family != self.name:
            return None
        return f"{family}-inpaint" if unet.get("in_channels") == 9 else family

    def pipeline_name(self, kind: str, task: str) -> str | None:
        if task == EDIT:
            return None  # no Stable Diffusion model edits by instruction
        if self.inpaint_only(kind):
            task = INPAINT  # an inpainting model runs every task through its inpaint pipeline
        middle = {TXT2IMG: "", IMG2IMG: "Img2Img", INPAINT: "Inpaint"}.get(task)
        return None if middle is None else f"{self.pipeline_prefix}{middle}Pipeline"

    def load_kwargs(self) -> dict[str, Any]:
        # SD1 and SD2 folders may name a safety checker; this server loads none.
        return {} if self.xl else {"safety_checker": None, "requires_safety_checker": False}

    def native_for(self, prediction: str | None) -> int:
        """The native side of a model that predicts ``prediction`` (None: the family's default)."""
        if self.epsilon_size and (prediction or self.prediction) == EPSILON:
            return self.epsilon_size
        return self.native_size

    def loaded_native_size(self, pipe: Any) -> int:
        return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)

    def upcast_attention(self, prediction: str | None) -> bool:
        """SD2.1-768 (v-prediction) publishes upcast attention: its attention overflows in fp16."""
        return self.open_clip and (prediction or self.prediction) == V_PREDICTION

    def write_skeleton(self, folder: Path, shapes: Shapes, kind: str, pipeline_class: str,
                       find_tokenizer: FindTokenizer, prediction: str | None = None) -> Path:
        return sd_configs.write_skeleton(folder, shapes, self, pipeline_class, find_tokenizer, prediction)

    def control_pipeline_name(self, task: str, union: bool) -> str | None:
        if union and not self.xl:
            return None  # union (promax) ControlNets exist for SDXL only
        middle = {TXT2IMG: "", IMG2IMG: "Img2Img", INPAINT: "Inpaint"}.get(task)
        if middle is None:
            return None
        return f"{self.pipeline_prefix}ControlNet{'Union' if union else ''}{middle}Pipeline"

    def accepts_addon(self, base: str) -> bool:
        return base in self.addon_bases

    def control_net(self, models: list[Any], union: bool) -> Any:
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
        from diffusers.models.controlnets.multicontrolnet_union import MultiControlNetUnionModel

        if union:
            return MultiControlNetUnionModel(models)
        return models[0] if len(models) == 1 else MultiControlNetModel(models)

    def control_kwargs(self, task: str, union: bool, images: list[Any], layers: list[Any], modes: list[int]) -> dict[str, Any]:
        one = len(layers) == 1 and not union
        out: dict[str, Any] = {
            # A union pipeline nests the images per net itself; the plain txt2img one names them ``image``.
            "image" if task == TXT2IMG and not union else "control_image": images[0] if one else images,
            "controlnet_conditioning_scale": layers[0].strength if one else [l.strength for l in layers],
            "control_guidance_start": layers[0].start if one else [l.start for l in layers],
            "control_guidance_end": layers[0].end if one else [l.end for l in layers],
        }
        if union:
            out["control_mode"] = modes
        return out

    def scheduler(self, sampling: Sampling, config: Any) -> Any:
        return make_scheduler(sampling.scheduler, config, sampling.schedule, sampling.seed)

    def prompt_key(self, sampling: Sampling, pipe: Any) -> tuple:
        # Cached per model: a ControlNet pipeline shares the checkpoint's text encoders, so only
        # what encode_prompts reads from the pipeline itself (its empty-negative rule) joins the key.
        return (sampling.prompt, sampling.negative_prompt, sampling.clip_skip, sampling.adapters,
                bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False)))

    def encode_prompt(self, pipe: Any, sampling: Sampling) -> dict[str, Any]:
        # WebUI prompt syntax, any length, clip skip: encoded here, not by the pipeline.
        return encode_prompts(pipe, sampling.prompt, sampling.negative_prompt, sampling.clip_skip)

    def guidance_kwargs(self, sampling: Sampling, pipe: Any) -> dict[str, Any]:
        return {"guidance_scale": sampling.cfg}

    def decode(self, loaded: LoadedModel, pipe: Any, latents: torch.Tensor, width: int, height: int) -> list[np.ndarray]:
        return decode(loaded, pipe, latents)


_SD_COMMON: dict[str, Any] = dict(
    size_multiple=8, latent_channels=4, vae_scale_factor=8, guidance=CFG, prompt_weighting=True, latent_edits=True,
    lora_formats=SD_LORAS, variants=("inpaint",),
)
# Activations of one guided step at the native size with SDPA attention, plus the
# allocator's slack: about 1 GiB for SD1.5 at 512, 2 GiB for SDXL at 1024 (fp16).
SD15 = StableDiffusion(
    "sd15", "SD 1.5", native_size=512, prediction=EPSILON, activation_reserve=int(1.5 * GiB),
    weight_components=("unet", "vae", "text_encoder"), addon_bases=("sd15", "sd2"), ip_adapter_file="ip-adapter_sd15.safetensors",
    preview_factors=((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
    **_SD_COMMON,
)
# SD2's 768 px models predict v, its 512 px base predicts noise; the tensors do not tell,
# so the default is the common 768 px kind and a file beside the checkpoint says otherwise (sidecar.py).
SD2 = StableDiffusion(
    "sd2", "SD 2", native_size=768, epsilon_size=512, prediction=V_PREDICTION, activation_reserve=int(1.5 * GiB),
    weight_components=("unet", "vae", "text_encoder"), open_clip=True, wide_heads=True, addon_bases=("sd15", "sd2"),
    preview_factors=SD15.preview_factors, **_SD_COMMON,
)
SDXL = StableDiffusion(
    "sdxl", "SDXL", native_size=1024, prediction=EPSILON, activation_reserve=int(2.5 * GiB),
    weight_components=("unet", "vae", "text_encoder", "text_encoder_2"), pipeline_prefix="StableDiffusionXL",
    xl=True, wide_heads=True, vae_scaling=0.13025, vae_force_upcast=True, addon_bases=("sdxl",),
    ip_adapter_file="ip-adapter_sdxl_vit-h.safetensors",
    preview_factors=((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
    preview_bias=(0.1084, -0.0175, -0.0011), **_SD_COMMON,
)
