"""What the engine asks of a model family: one object per architecture.

Every answer that differs between Stable Diffusion 1.x, SDXL, Flux and the rest
comes from the family object of the model in hand, never from comparing family
names: how its files are recognised, which pipeline runs each task, its sizes,
its guidance, how its prompts are encoded and its latents decoded, what add-ons
fit it and how much memory a step takes. Adding a family is one module that
subclasses ``Family`` and a line in ``families/__init__.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..entries import Shapes

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from ..cache import LoadedModel
    from ..entries import ModelEntry
    from ..generate import Sampling

# Tasks a pipeline runs (the modes map onto them: inpaint, outpaint and inpaint sketch are "inpaint").
TXT2IMG, IMG2IMG, INPAINT, EDIT = "txt2img", "img2img", "inpaint", "edit"
TASKS = (TXT2IMG, IMG2IMG, INPAINT, EDIT)

# Kinds of guidance: classifier-free guidance with a negative prompt (one extra pass a
# step), guidance distilled into the model (a number the model reads, no extra pass),
# and "true" CFG on a distilled model (the extra pass, with its own scale).
CFG, DISTILLED, TRUE_CFG = "cfg", "distilled", "true_cfg"

# What the model predicts, which the samplers must know: noise, velocity, or a flow.
EPSILON, V_PREDICTION, FLOW = "epsilon", "v_prediction", "flow"

FindTokenizer = Callable[[int, str], "Path | None"]


@dataclass(frozen=True)
class Family(ABC):
    """One model architecture. Instances are immutable and shared; the kinds of its
    checkpoints (``ModelKind`` values) start with its name."""

    name: str  # its base kind, e.g. "sd15"; variants are "<name>-<variant>" (sd15-inpaint)
    label: str  # for people: "SD 1.5"
    native_size: int  # the side, in pixels, it was trained at
    size_multiple: int  # generated sides are rounded to this
    latent_channels: int
    vae_scale_factor: int
    prediction: str  # what it predicts by default (EPSILON, V_PREDICTION or FLOW)
    guidance: str  # CFG, DISTILLED or TRUE_CFG
    prompt_weighting: bool  # the WebUI's (word:1.2) syntax, embeddings and clip skip apply
    # Its latents are plain (channels, h, w) images the engine may blend and fill itself:
    # soft inpainting, latent noise or nothing as masked content, latent resizing.
    latent_edits: bool
    lora_formats: tuple[str, ...]  # what LoRA files it loads: "kohya", "diffusers", "bfl"
    activation_reserve: int  # bytes of activations a step takes at the native size (fp16)
    # Folders of a diffusers pipeline that must hold weights; those named tokenizer* need a tokenizer.
    weight_components: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()  # the kinds' suffixes it has besides its base kind
    # Latent channel -> (R, G, B) factors and a bias, for previews; None: fitted on the VAE.
    preview_factors: tuple[tuple[float, float, float], ...] | None = None
    preview_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    samplers: tuple[str, ...] | None = None  # the samplers that fit it; None: every sampler the server has
    ip_adapter_file: str = ""  # the usual file name of an IP-Adapter for it, for advice ("" when there is none)
    base_kind: bool = True  # its name is a kind of its own (else only "<name>-<variant>" kinds exist)
    # Its single files hold the denoiser alone (or everything under prefixes): the registry matches
    # each with its text encoders and VAE from other files (split_layout.py) into ModelEntry.parts.
    split_files: bool = False
    # Its memory is planned per component (memory_plan.py): the transformer stored in fp8 or
    # NF4 or streamed by blocks, each text encoder kept, freed after encoding or streamed.
    # Off: the whole-component rule (its pipelines use text-encoder parts outside their forward).
    per_component_memory: bool = False

    # -- kinds --------------------------------------------------------------------------------

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.name,) * self.base_kind + tuple(f"{self.name}-{v}" for v in self.variants)

    def variant(self, kind: str) -> str:
        """The variant a kind names ("" for the base kind)."""
        return kind[len(self.name) + 1:] if kind.startswith(self.name + "-") else ""

    def inpaint_only(self, kind: str) -> bool:
        """Whether models of ``kind`` are made for inpainting and run every task as an inpaint."""
        return self.variant(kind) == "inpaint"

    def edits(self, kind: str) -> bool:
        """Whether models of ``kind`` edit a picture by instruction (the edit mode runs on them)."""
        return self.pipeline_name(kind, EDIT) is not None

    # -- recognising files --------------------------------------------------------------------

    @abstractmethod
    def recognise_file(self, shapes: Shapes) -> str | None:
        """The kind of a single checkpoint file of this family from its tensors, or None."""

    @abstractmethod
    def recognise_folder(self, index: dict[str, Any], folder: Path) -> str | None:
        """The kind of a diffusers folder (its model_index.json read as ``index``), or None."""

    # -- loading ------------------------------------------------------------------------------

    @abstractmethod
    def pipeline_name(self, kind: str, task: str) -> str | None:
        """The diffusers pipeline class that runs ``task`` for a model of ``kind``; None: it cannot."""

    def pipeline_class(self, kind: str, task: str) -> Any:
        import diffusers

        name = self.pipeline_name(kind, task)
        if name is None:
            raise KeyError(f"{self.label} models of kind {kind} have no pipeline for {task}")
        return getattr(diffusers, name)

    def load_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments of its pipelines' from_pretrained and from_single_file."""
        return {}

    @abstractmethod
    def write_skeleton(self, folder: Path, shapes: Shapes, kind: str, pipeline_class: str,
                       find_tokenizer: FindTokenizer, prediction: str | None = None) -> Path:
        """Write the config folder (no weights) that loads a single file of this family offline."""

    def load_single_file(self, cls: Any, entry: "ModelEntry", config: Path, kwargs: dict[str, Any]) -> Any:
        """The pipeline ``cls`` of the single-file checkpoint ``entry``, with ``config`` the folder
        ``write_skeleton`` wrote and ``kwargs`` the loader's (dtype, local_files_only, ...)."""
        return cls.from_single_file(str(entry.path), config=str(config), **kwargs)

    def loaded_native_size(self, pipe: Any) -> int:
        """The native side of a loaded model (its config may say more than the family)."""
        return self.native_size

    def lora_weights(self, path: Path) -> Any:
        """What ``load_lora_weights`` is given for the LoRA file at ``path``: the path, or its
        tensors renamed where this family's LoRAs come in a naming diffusers does not read."""
        return str(path)

    # -- guidance by add-ons ------------------------------------------------------------------

    def control_pipeline_name(self, task: str, union: bool) -> str | None:
        """The ControlNet pipeline for ``task``; None: ControlNets do not guide this family."""
        return None

    def accepts_addon(self, base: str) -> bool:
        """Whether an add-on made for the family named ``base`` can guide this family."""
        return base == self.name

    def takes_addons(self, kind: str = "") -> bool:
        """Whether ControlNets can guide it at all (models of ``kind``, when given)."""
        return self.control_pipeline_name(TXT2IMG, False) is not None

    def takes_references(self) -> bool:
        """Whether IP-Adapters (made for a UNet's cross-attention) can guide it: reference layers."""
        return self.takes_addons()

    def control_net(self, models: list[Any], union: bool) -> Any:
        """What its ControlNet pipeline is given as ``controlnet`` for these loaded ControlNets
        (in the order of the job's layers): the one model, or them combined."""
        raise KeyError(f"ControlNets do not guide {self.label} models")

    def control_kwargs(self, task: str, union: bool, images: list[Any], layers: list[Any], modes: list[int]) -> dict[str, Any]:
        """Its ControlNet pipeline's arguments for the control ``images`` of ``layers`` (each with
        strength, start and end); ``modes``: a union ControlNet's mode of each layer."""
        raise KeyError(f"ControlNets do not guide {self.label} models")

    # -- editing by instruction ---------------------------------------------------------------

    def reference_kwargs(self, task: str, source: "Image.Image", references: "list[Image.Image]") -> dict[str, Any]:
        """The keyword arguments that give an edit's pipeline the picture it edits (``source``,
        at the generated size) and the reference pictures; ``task`` is EDIT (the whole
        picture) or INPAINT (a selection, whose ``image`` the run passes itself). Only
        families that edit (``edits``) are asked."""
        raise KeyError(f"{self.label} models do not edit by instruction")

    # -- memory -------------------------------------------------------------------------------

    def activation_bytes(self, width: int, height: int) -> int:
        """Activations of one step at this size: the reserve at the native size, scaled by the pixels."""
        return int(self.activation_reserve * max(1.0, width * height / self.native_size ** 2))

    # -- a run --------------------------------------------------------------------------------

    def sampler_used(self, name: str) -> str:
        """The sampler a run asked for ``name`` runs with (recorded in the result's settings)."""
        return name

    @abstractmethod
    def scheduler(self, sampling: "Sampling", config: Any) -> Any:
        """A fresh scheduler for a run with ``sampling``'s sampler, from the model's own scheduler config."""

    @abstractmethod
    def prompt_key(self, sampling: "Sampling", pipe: Any) -> tuple:
        """What the conditioning of ``sampling`` on ``pipe`` depends on (the prompt cache's key)."""

    @abstractmethod
    def encode_prompt(self, pipe: Any, sampling: "Sampling") -> dict[str, Any]:
        """The pipeline's conditioning keyword arguments (embeddings) for ``sampling``'s prompts."""

    def size_kwargs(self, pipe: Any, task: str, width: int, height: int) -> dict[str, Any]:
        """What tells ``pipe`` the size to make beyond what every task passes (txt2img and
        inpaint pass height and width; the SD img2img pipelines take the image's size)."""
        return {}

    @abstractmethod
    def guidance_kwargs(self, sampling: "Sampling", pipe: Any) -> dict[str, Any]:
        """The pipeline's guidance keyword arguments for ``sampling``'s guidance scale."""

    @abstractmethod
    def decode(self, loaded: "LoadedModel", pipe: Any, latents: "torch.Tensor", width: int, height: int) -> "list[np.ndarray]":
        """A run's ``output_type="latent"`` result -> (H, W, 3) uint8 images, one per latent."""

    # -- previews -----------------------------------------------------------------------------

    def preview_space(self, latents: "torch.Tensor") -> "torch.Tensor":
        """A VAE's raw (batch, channels, h, w) latents arranged as ``preview_latents`` gives a
        step's latents (up to a per-channel scale and shift), to fit previews on."""
        return latents

    def preview_latents(self, latents: "torch.Tensor", width: int, height: int) -> "torch.Tensor":
        """The (channels, h, w) latents of the first image of a step's ``latents``."""
        return latents[0]
