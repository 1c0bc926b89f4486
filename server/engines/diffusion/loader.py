"""Loading a checkpoint into a diffusers pipeline, fully offline.

Every load passes ``local_files_only=True`` and ``use_safetensors`` where the
API takes it: a model that is not on disk is an error, never a download.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from .families import FAMILIES
from .families.base import TASKS, TXT2IMG
from .load_progress import IMPORT_STAGE, aside, read_weights, weight_bytes
from .models import ModelEntry, ModelRegistry, read_header
from .sidecar import declared_prediction, sidecar_path
from .split_layout import combined_shapes, tokenizer_finder

log = logging.getLogger(__name__)


def pipeline_class(entry: ModelEntry, task: str) -> Any:
    """The diffusers pipeline class that runs ``task`` for the checkpoint ``entry``."""
    return entry.family.pipeline_class(entry.kind, task)


_imported = False


def import_pipelines() -> None:
    """Import what every load uses: diffusers imports its pipelines, and they their
    networks and transformers' text encoders, on first use, seconds on a slow disk."""
    global _imported
    if not _imported:
        import diffusers
        import transformers

        for family in FAMILIES:
            for kind in family.kinds:
                for task in TASKS:
                    if (name := family.pipeline_name(kind, task)) is not None:
                        getattr(diffusers, name)
        for name in ("AutoencoderKL", "UNet2DConditionModel", "EulerDiscreteScheduler"):
            getattr(diffusers, name)
        for name in ("CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer"):
            getattr(transformers, name)
        _imported = True


class Loader:
    def __init__(self, registry: ModelRegistry, device: torch.device, dtype: torch.dtype) -> None:
        self.registry = registry
        self.device = device
        self.dtype = dtype
        self._skeletons = tempfile.TemporaryDirectory(prefix="paintwire-configs-")

    def load(self, entry: ModelEntry, vae: ModelEntry | None = None, quantization: Any = None) -> Any:
        """The pipeline of ``entry``, on the CPU (components that ``quantization``, a diffusers
        PipelineQuantizationConfig, names: quantised onto the CUDA card). In a watched load
        (load_progress) the parts that cannot be split, imports and the config folder, run aside."""
        if not _imported:
            aside(import_pipelines, IMPORT_STAGE)
        cls = pipeline_class(entry, TXT2IMG)  # an inpainting model's is its inpaint pipeline
        kwargs: dict[str, Any] = {"dtype": self.dtype, "local_files_only": True, **entry.family.load_kwargs()}
        if vae is not None:
            kwargs["vae"] = self.load_vae(vae, entry)
        if entry.single_file:
            config = aside(lambda: self.skeleton(entry, cls.__name__))
            pipe = entry.family.load_single_file(cls, entry, config, kwargs)
        else:
            if quantization is not None:
                kwargs["quantization_config"] = quantization
            pipe = cls.from_pretrained(entry.path, use_safetensors=True, **kwargs)
        pipe.set_progress_bar_config(disable=True)  # on the CPU: the engine places it (memory.place)
        _alias_text_model(pipe)
        return pipe

    def weight_files(self, entry: ModelEntry, vae: ModelEntry | None = None) -> tuple[int, dict[str, int]]:
        """Bytes of the weight files that loading ``entry`` (with ``vae``) reads, and per
        component where the model keeps a folder per component (a diffusers folder)."""
        components = {} if entry.single_file else weight_bytes(entry.path)
        if vae is not None:
            components.pop("vae", None)  # the model's own VAE is not loaded
        files = {p.path for p in entry.parts if p.path.is_file()} or {entry.path}
        total = sum(f.stat().st_size for f in files) if entry.single_file else sum(components.values())
        for folder in (p.path for p in entry.parts if p.path.is_dir() and (p.path / "model_index.json").is_file()):
            total += sum(size for name, size in weight_bytes(folder).items() if name != "transformer")  # a diffusers folder's other parts
        return total + (vae.path.stat().st_size if vae is not None else 0), components

    def skeleton(self, entry: ModelEntry, pipeline_class_name: str) -> Path:
        """A generated config folder for a single-file checkpoint (cached per file)."""
        side = sidecar_path(entry.path)
        parts = "".join(f":{p.role}={p.path}:{p.path.stat().st_mtime_ns}" for p in entry.parts)
        stamp = f"{entry.path}:{entry.path.stat().st_mtime_ns}:{side.stat().st_mtime_ns if side else ''}:{pipeline_class_name}:{entry.kind}{parts}"
        folder = Path(self._skeletons.name) / hashlib.sha1(stamp.encode()).hexdigest()[:16]
        if not (folder / "model_index.json").is_file():
            if entry.parts:  # a model kept in parts: their tensors together, its tokenizers as matched at listing
                shapes, find = combined_shapes(entry.parts), tokenizer_finder(entry.parts, self.registry.find_tokenizer)
            else:
                shapes, find = read_header(entry.path), self.registry.find_tokenizer
            entry.family.write_skeleton(folder, shapes, entry.kind, pipeline_class_name, find, declared_prediction(entry.path))
        return folder

    def load_vae(self, vae: ModelEntry, model: ModelEntry) -> Any:
        """A VAE file, in diffusers or original layout, built with the model's own VAE config."""
        from diffusers import AutoencoderKL

        config = self.skeleton(model, pipeline_class(model, TXT2IMG).__name__) if model.single_file else model.path
        if any(k.startswith("encoder.down_blocks.") for k in read_header(vae.path)):  # diffusers layout
            vae_model = AutoencoderKL.from_pretrained(config, subfolder="vae", local_files_only=True, dtype=self.dtype)
            vae_model.load_state_dict(read_weights(vae.path))
            return vae_model
        return AutoencoderKL.from_single_file(str(vae.path), config=str(config), subfolder="vae", local_files_only=True, dtype=self.dtype)

    def close(self) -> None:
        self._skeletons.cleanup()


def _alias_text_model(pipe: Any) -> None:
    """transformers 5 flattened CLIPTextModel (no ``.text_model``), but the SD
    pipelines' clip-skip path still calls ``text_encoder.text_model.final_layer_norm``.
    A plain attribute (not a registered submodule, so no cycle in state_dict)
    pointing at the model itself restores that path."""
    encoder = getattr(pipe, "text_encoder", None)
    if encoder is not None and not hasattr(encoder, "text_model") and hasattr(encoder, "final_layer_norm"):
        object.__setattr__(encoder, "text_model", encoder)
