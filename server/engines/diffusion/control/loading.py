"""Loading ControlNets, image encoders and IP-Adapter weights from the model
folders, fully offline, safetensors only; the last few used stay loaded.

ControlNets are a few hundred MB to 2.5 GB each; jobs that switch between a
handful of them should not reload from disk every time, but neither should the
server hoard them: ``MAX_WARM`` is small and a model unused for a while is
evicted by newer ones.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from paintwire.protocol import ErrorCode, ProtocolError

from ..models import ModelEntry, read_header
from .configs import controlnet_config, flux_controlnet_config, image_encoder_config, is_original_layout, original_layers_per_block
from .detect import FLUX_CONTROLNET_KEY, weights_file

log = logging.getLogger(__name__)

MAX_WARM = 4  # add-on models kept loaded between jobs


class AddonLoader:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self._warm: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._warm:
                self._warm.move_to_end(key)
                return self._warm[key]
        model = load()
        with self._lock:
            self._warm[key] = model
            while len(self._warm) > MAX_WARM:
                self._warm.popitem(last=False)
        return model

    def _key(self, entry: ModelEntry, *extra: Any) -> tuple:
        path = weights_file(entry)
        return (entry.name, str(entry.path), path.stat().st_mtime_ns if path else 0, *extra)

    def controlnet(self, entry: ModelEntry, base_config: Mapping[str, Any]) -> Any:
        """The ControlNet (or union ControlNet) of ``entry``, built to guide a denoiser (a UNet,
        or a Flux.1 transformer) with ``base_config``."""
        widths = tuple(base_config.get("block_out_channels", ()) or base_config.get("axes_dims_rope", ()))
        return self._cached(self._key(entry, widths), lambda: self._load_controlnet(entry, base_config))

    def _load_controlnet(self, entry: ModelEntry, base_config: Mapping[str, Any]) -> Any:
        import diffusers

        if not entry.single_file:
            config = json.loads((entry.path / "config.json").read_text(encoding="utf-8"))
            cls = getattr(diffusers, config.get("_class_name", "ControlNetModel"))
            return cls.from_pretrained(entry.path, local_files_only=True, use_safetensors=True, dtype=self.dtype).eval()
        from safetensors.torch import load_file

        state = load_file(str(entry.path))
        if FLUX_CONTROLNET_KEY in state:
            shapes = {k: tuple(v.shape) for k, v in state.items()}
            return self._built(entry, diffusers.FluxControlNetModel, flux_controlnet_config(shapes, base_config), state)
        if is_original_layout(state):
            from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

            layers = original_layers_per_block(read_header(entry.path))
            state = convert_controlnet_checkpoint(state, {"layers_per_block": layers})
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        config = controlnet_config(shapes, base_config)
        cls = diffusers.ControlNetUnionModel if "task_embedding" in shapes else diffusers.ControlNetModel
        return self._built(entry, cls, config, state)

    def _built(self, entry: ModelEntry, cls: Any, config: Mapping[str, Any], state: dict[str, torch.Tensor]) -> Any:
        known = inspect.signature(cls.__init__).parameters  # the union model takes no mid_block_type, for one
        model = cls(**{k: v for k, v in config.items() if k in known})
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ProtocolError(
                ErrorCode.ENGINE_FAILED,
                f"The ControlNet {entry.name!r} ({entry.path.name}) has a layout this server cannot build "
                f"({len(missing)} weights missing, {len(unexpected)} unexpected); use its diffusers folder (config.json and weights) instead.",
            )
        return torch.nn.Module.to(model, self.dtype).eval()  # not diffusers' .to, which warns on every dtype change

    def image_encoder(self, entry: ModelEntry) -> Any:
        return self._cached(self._key(entry), lambda: self._load_encoder(entry))

    def _load_encoder(self, entry: ModelEntry) -> Any:
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        if not entry.single_file:
            return CLIPVisionModelWithProjection.from_pretrained(entry.path, local_files_only=True, use_safetensors=True, dtype=self.dtype).eval()
        from safetensors.torch import load_file

        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**image_encoder_config(read_header(entry.path))))
        model.load_state_dict(load_file(str(entry.path)), strict=False)
        return model.to(self.dtype).eval()

    def ip_adapter(self, entry: ModelEntry) -> dict[str, dict[str, torch.Tensor]]:
        """IP-Adapter weights split as diffusers' load_ip_adapter takes them."""
        return self._cached(self._key(entry), lambda: _split_ip_adapter(weights_file(entry)))

    def clear(self) -> None:
        with self._lock:
            self._warm.clear()


def _split_ip_adapter(path: Path | None) -> dict[str, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    assert path is not None
    out: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, tensor in load_file(str(path)).items():
        part, _, rest = key.partition(".")
        if part in out:
            out[part][rest] = tensor
    return out
