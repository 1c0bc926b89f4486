"""Small cards: how a model is placed on a device with little memory, and when the VAE tiles.

The rules are estimates from published figures for SD1.5 and SDXL, kept here in
one place so that a measurement on a real card changes one number:

- A model runs fully on the device when its weights plus the activations of a
  step at its native size fit the usable memory; else with model offload (one
  component on the device at a time) when its largest component plus the
  activations fit; else with sequential offload (weights streamed layer by layer).
- The VAE decodes and encodes in tiles above TILING_FACTOR times the model's
  native pixel count (its memory grows with the image, the UNet's with the
  8x smaller latents), or sooner when a whole decode would not fit the memory free.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .networks import denoiser_of

if TYPE_CHECKING:
    from .families.base import Family


log = logging.getLogger(__name__)

TILING_FACTOR = 4
# torch.compile's backend: inductor generates fused kernels (what pays on a GPU).
COMPILE_BACKEND = "inductor"
# Peak bytes per output pixel of a whole VAE decode, per byte of dtype: the last
# up block holds a few 128-channel full-size tensors (about 2.4 KB a pixel in
# fp16, so 2.5 GB at 1024x1024 and 10 GB at 2048x2048).
VAE_BYTES_PER_PIXEL = 1200


@dataclass(frozen=True)
class MemoryPlan:
    """How a pipeline is put on its device: offload, attention slicing, memory layout, compiling."""

    offload: str  # none, model or sequential
    attention_slicing: bool
    channels_last: bool = False
    compile: bool = False

    @property
    def measures(self) -> list[str]:
        """What was done for memory or speed, for logs."""
        out = [] if self.offload == "none" else [f"{self.offload} CPU offload"]
        out += ["attention slicing"] * self.attention_slicing + ["channels_last"] * self.channels_last + ["torch.compile"] * self.compile
        return out


def choose_offload(setting: str, component_bytes: dict[str, int], usable: int, family: Family, device: torch.device) -> str:
    """``setting`` is auto, none, model or sequential (DeviceConfig.offload); the family
    says how much a step at its native size takes (Family.activation_reserve)."""
    if device.type != "cuda":
        # MPS and the CPU share the host's memory: offloading to it saves nothing.
        return "none"
    if setting != "auto":
        return setting
    if usable <= 0:
        return "none"
    reserve = family.activation_reserve
    if sum(component_bytes.values()) + reserve <= usable:
        return "none"
    if max(component_bytes.values(), default=0) + reserve <= usable:
        return "model"
    return "sequential"


def choose_attention_slicing(setting: str, device: torch.device) -> bool:
    """auto: on for Apple MPS (diffusers' advice for Macs: it lowers the peak a lot
    there); off on CUDA, where SDPA is memory-efficient and slicing only slows it."""
    if setting != "auto":
        return setting == "on"
    return device.type == "mps"


def vae_tiling_needed(width: int, height: int, native_size: int, element_size: int = 4, free_bytes: int | None = None) -> bool:
    """Whether a VAE decode or encode of ``width`` x ``height`` pixels should run in tiles.

    ``native_size`` is the side the model was trained at; ``element_size`` the
    VAE's bytes per number; ``free_bytes`` the device memory free now (None: not known).
    """
    pixels = width * height
    if pixels > TILING_FACTOR * native_size * native_size:
        return True
    return free_bytes is not None and pixels * VAE_BYTES_PER_PIXEL * element_size > free_bytes


def component_sizes(pipe: Any, dtype: torch.dtype) -> dict[str, int]:
    """Bytes each component's weights take in ``dtype``."""
    size = torch.tensor([], dtype=dtype).element_size()
    return {name: sum(p.numel() for p in c.parameters()) * size
            for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}


def place(pipe: Any, plan: MemoryPlan, device: torch.device) -> None:
    """Put a loaded (CPU) pipeline on ``device`` as ``plan`` says."""
    if plan.channels_last:
        denoiser_of(pipe).to(memory_format=torch.channels_last)
    if plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    if plan.attention_slicing:
        pipe.enable_attention_slicing()
    if plan.compile:
        # In place (the module keeps its class), so from_pipe, LoRA and offload
        # see the same UNet; the first call at each shape compiles.
        denoiser_of(pipe).compile(backend=COMPILE_BACKEND)
