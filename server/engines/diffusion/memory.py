"""Small cards: how a model is placed on a device with little memory, and when the VAE tiles.

The rules are estimates from published figures for SD1.5 and SDXL, kept here in
one place so that a measurement on a real card changes one number:

- A model runs fully on the device when its weights plus the activations of a
  step at its native size fit the usable memory; else with model offload (one
  component on the device at a time) when its largest component plus the
  activations fit; else with sequential offload (weights streamed layer by layer).
  Families with large transformers and text encoders (Flux) are planned per
  component instead: memory_plan.py holds both ladders, this module carries a plan out.
- The VAE decodes and encodes in tiles above TILING_FACTOR times the model's
  native pixel count (its memory grows with the image, the UNet's with the
  8x smaller latents), or sooner when a whole decode would not fit the memory free.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import torch

from .memory_plan import FP8, FREED, INT8, NF4, STREAMED, Card, Placement, Weights, is_encoder, plan
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

    offload: str  # none, model, group (the denoiser streamed block by block) or sequential
    attention_slicing: bool
    channels_last: bool = False
    compile: bool = False
    placement: Placement | None = None  # per component (fp8, NF4, encoders freed or streamed); None: whole components

    @property
    def measures(self) -> list[str]:
        """What was done for memory or speed, for logs."""
        if self.placement is not None and self.placement.offload == self.offload and not self.placement.shared:
            out = [self.placement.describe()] if self.placement.measures_taken else []
        else:
            out = [] if self.offload == "none" else [f"{self.offload} CPU offload"]
        out += ["attention slicing"] * self.attention_slicing + ["channels_last"] * self.channels_last + ["torch.compile"] * self.compile
        return out

    @property
    def per_component(self) -> bool:
        """Whether ``place`` puts each component by the placement (else the whole pipeline at once)."""
        p = self.placement
        return p is not None and self.offload in ("none", "group") and p.offload == self.offload and p.measures_taken and not p.shared


def choose_offload(setting: str, component_bytes: dict[str, int], usable: int, family: Family, device: torch.device) -> str:
    """``setting`` is auto, none, model or sequential (DeviceConfig.offload); the family
    says how much a step at its native size takes (Family.activation_reserve)."""
    if device.type == "cuda" and usable <= 0 and setting != "auto":
        return setting  # memory not known: as asked
    return plan(Weights(component_bytes), Card(device.type, usable), family.activation_reserve, setting, family.per_component_memory).offload


def card_of(device: torch.device, kind: str, usable: int, name: str = "") -> Card:
    """The device as the memory plan sees it, with the quantization libraries installed."""
    import importlib.util

    quantizers = frozenset({"bitsandbytes"}) if kind == "cuda" and importlib.util.find_spec("bitsandbytes") else frozenset()
    return Card(kind if device.type == "cuda" else device.type, usable, name, quantizers)


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
    if plan.per_component:
        assert plan.placement is not None
        place_components(pipe, plan.placement, device)
    elif plan.offload == "model":
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


def place_components(pipe: Any, placement: Placement, device: torch.device) -> None:
    """Each component as ``placement`` says: stored in fp8 (cast up layer by layer as it
    computes), streamed block by block, a text encoder on the device only while it reads
    a prompt, or on the device. Components quantised by bitsandbytes were put on the
    device by their load."""
    from diffusers.hooks import apply_group_offloading

    stream = device.type == "cuda"  # copy the next block while this one computes
    for name, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        form = placement.form(name)
        if form == FP8:
            module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=module.dtype)
        if name == placement.denoiser and placement.offload == "group":
            apply_group_offloading(module, onload_device=device, offload_type="block_level", num_blocks_per_group=1, use_stream=stream)
        elif is_encoder(name) and placement.encoder(name) == FREED:
            # One group of the whole module: on the device for its forward pass, off after it.
            apply_group_offloading(module, onload_device=device, offload_type="block_level", num_blocks_per_group=1, block_modules=[])
        elif is_encoder(name) and placement.encoder(name) == STREAMED:
            apply_group_offloading(module, onload_device=device, offload_type="block_level", num_blocks_per_group=1,
                                   block_modules=block_holders(module), use_stream=stream)
        elif form not in (NF4, INT8):
            module.to(device)


FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


@contextmanager
def stored_forms_kept(pipe: Any) -> Iterator[None]:
    """Within it, ``.to(dtype)`` leaves alone the components whose weights are stored in
    fp8 (layerwise casting). ``from_pipe`` casts every shared component to one dtype: an
    fp8 transformer would turn bf16, twice its memory on the card, until its next step."""
    pinned = [m for m in pipe.components.values()
              if isinstance(m, torch.nn.Module) and any(p.dtype in FP8_DTYPES for p in m.parameters())]
    for module in pinned:
        module.__dict__["to"] = lambda *args, _m=module, **kwargs: _m  # shadows nn.Module.to for this instance
    try:
        yield
    finally:
        for module in pinned:
            module.__dict__.pop("to", None)


def adapters_in_compute_dtype(pipe: Any) -> None:
    """LoRA layers just loaded into an fp8-stored transformer, cast to the dtype it computes
    in. peft makes them in the dtype of the layer they adapt (fp8 here), and no layerwise
    cast covers them: their products would be computed in fp8, which torch refuses. Their
    values keep the fp8 rounding of the load (close: the weights they adapt have it too)."""
    module = getattr(pipe, "transformer", None)
    if not isinstance(module, torch.nn.Module):
        return
    compute = next((p.dtype for p in module.parameters() if p.dtype.is_floating_point and p.dtype not in FP8_DTYPES), None)
    if compute is None:
        return
    for name, child in module.named_modules():
        if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B") and any(p.dtype in FP8_DTYPES for p in child.parameters()):
            child.to(compute)


def block_holders(module: torch.nn.Module) -> list[str]:
    """Names of the submodules on the way to a module's lists of blocks (T5's ``encoder``,
    Qwen3's ``model``), which group offloading must enter to stream the blocks one by one."""
    lists = (torch.nn.ModuleList, torch.nn.Sequential)
    names: list[str] = []
    for name, child in module.named_children():
        if not isinstance(child, lists) and any(isinstance(m, lists) for m in child.modules()):
            names += [name, *block_holders(child)]
    return names


def quantization_config(placement: Placement | None, dtype: torch.dtype) -> Any:
    """diffusers' PipelineQuantizationConfig for the components the plan stores in NF4 or
    int8 (bitsandbytes quantises them as they load, onto the CUDA card); None: none."""
    if placement is None or not placement.quantizers:
        return None
    import diffusers
    import transformers

    mapping: dict[str, Any] = {}
    for name, form in placement.forms:
        if form not in (NF4, INT8):
            continue
        # The denoiser is a diffusers model, the text encoders are transformers models: each library its own config.
        lib = transformers if is_encoder(name) else diffusers
        if form == NF4:
            mapping[name] = lib.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        else:
            mapping[name] = lib.BitsAndBytesConfig(load_in_8bit=True)
    return diffusers.PipelineQuantizationConfig(quant_mapping=mapping)
