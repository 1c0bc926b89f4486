"""The warm model cache: loaded pipelines kept by model, within a memory budget.

One base pipeline per (model, VAE); the txt2img, img2img and inpaint
pipelines of a model are made from it with ``from_pipe``, which shares the
components (no second copy of the weights).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .memory import stored_forms_kept
from .networks import denoiser_of
from .loader import pipeline_class
from .models import ModelEntry
from .prompt_cache import PromptCache

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    entry: ModelEntry
    base: Any  # the pipeline the model was loaded as
    size: int  # bytes of weights
    pipes: dict[str, Any] = field(default_factory=dict)
    vae_fp32: bool = False  # its VAE overflowed in half precision once: decode in fp32 from now on
    compile_pending: bool | None = None  # its UNet is compiled and its first run not yet timed (None: not run yet)
    prompts: PromptCache = field(default_factory=PromptCache)  # recent prompts' conditioning (live painting repeats them)
    # Previews' latent-to-RGB projection fitted on its VAE (families without published factors): once per model.
    preview_projection: Any = None
    # The model's own scheduler settings. Each job swaps in a scheduler of its own, built from
    # these (never from the previous job's, whose sampler options would carry over).
    scheduler_config: Any = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler_config = getattr(getattr(self.base, "scheduler", None), "config", None)

    def pipeline(self, task: str) -> Any:
        """The pipeline for ``task`` (txt2img, img2img, inpaint), sharing the base's components."""
        if self.entry.inpaint:
            return self.base  # an inpainting model runs every task through its inpaint pipeline
        if task not in self.pipes:
            cls = pipeline_class(self.entry, task)
            # from_pipe casts every shared module to its dtype argument, float32 when none is given:
            # name the model's own, or an fp16 model turns fp32 for good.
            with stored_forms_kept(self.base):  # an fp8-stored transformer stays fp8
                pipe = self.base if isinstance(self.base, cls) else cls.from_pipe(self.base, dtype=denoiser_of(self.base).dtype)
            pipe.set_progress_bar_config(disable=True)
            if pipe is not self.base and getattr(self.base, "_all_hooks", None):
                # Model offload: the new pipeline shares the modules and their hooks, and
                # needs its own list of them to move the last component off the device.
                pipe.enable_model_cpu_offload(device=self.base._offload_device)
            self.pipes[task] = pipe
        return self.pipes[task]

    @property
    def vae_scale_factor(self) -> int:
        return int(self.base.vae_scale_factor)

    @property
    def native_size(self) -> int:
        """The side, in pixels, that the model was trained at."""
        return self.entry.family.loaded_native_size(self.base)


def weights_size(pipe: Any) -> int:
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
    return total


class ModelCache:
    def __init__(self, load: Callable[[ModelEntry, ModelEntry | None], Any], budget: int) -> None:
        self._load = load
        self.budget = budget
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def holds(self, entry: ModelEntry, vae: ModelEntry | None = None) -> bool:
        """Whether ``get`` would return at once (the model is warm)."""
        return (entry.name, vae.name if vae else "") in self._models

    def get(self, entry: ModelEntry, vae: ModelEntry | None = None) -> LoadedModel:
        key = (entry.name, vae.name if vae else "")
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            pipe = self._load(entry, vae)
            loaded = LoadedModel(entry, pipe, weights_size(pipe))
            self._models[key] = loaded
            self._evict(keep=key)
            return loaded

    def _evict(self, keep: tuple[str, str]) -> None:
        """Drop least recently used models until the rest fit the budget (the one in use always stays)."""
        while sum(m.size for m in self._models.values()) > self.budget and len(self._models) > 1:
            key = next(k for k in self._models if k != keep)
            log.info("model cache: unloading %s to stay within %.1f GB", key[0], self.budget / 2**30)
            del self._models[key]
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def forget(self, gone: Callable[[str], bool]) -> None:
        """Drop the loaded models whose name ``gone`` says no longer stands for the same file."""
        with self._lock:
            for key in [k for k in self._models if gone(k[0])]:
                del self._models[key]

    @property
    def loaded(self) -> list[str]:
        return [k[0] for k in self._models]

    def trim(self) -> None:
        """Unload every model but the one used last (after running out of memory)."""
        with self._lock:
            while len(self._models) > 1:
                key = next(iter(self._models))
                log.info("model cache: unloading %s to free memory", key[0])
                del self._models[key]
        gc.collect()

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
        gc.collect()
