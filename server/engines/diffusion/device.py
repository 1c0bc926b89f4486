"""Where models run and in what precision: the device, its dtype, its memory, and its failures.

One place for the facts about the accelerator: which device (CUDA, ROCm builds
of torch that present themselves as CUDA, Apple MPS, the CPU), which dtype runs
fast and safely on it, how much memory it has and has free, how to recognise
an out-of-memory error from any backend, and how to give memory back after one.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from paintwire.protocol import DeviceInfo

from ...config import ConfigError
from . import cpu_speed

log = logging.getLogger(__name__)

GiB = 2**30

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

# NVIDIA cards from Ampere (compute capability 8.0) on run bf16 on the same
# tensor cores, at the same speed, as fp16; bf16 has fp32's range, so the SDXL
# VAE does not overflow and needs no fp32 upcast. Older cards emulate bf16 slowly.
BF16_FAST_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    dtype: torch.dtype
    memory_budget: int  # bytes of model weights the cache may keep loaded
    name: str = "CPU"  # what a painter would call it: "NVIDIA GeForce RTX 3060", "Apple M2 (MPS)"
    kind: str = "cpu"  # cuda, rocm, mps or cpu
    usable: int = 0  # bytes of device memory Paintwire may use in all (budget, or free at start)
    warning: str = ""  # a sentence about the precision chosen (half precision measured slow on this CPU)

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    def info(self) -> DeviceInfo:
        """The device as the capabilities report it (free memory measured now)."""
        total, free = memory_info(self.device)
        return DeviceInfo(self.name, self.kind, self.dtype_name, total, free, self.warning)


def resolve_device(setting: str = "auto") -> torch.device:
    """``setting`` is auto, cuda, cuda:N, mps or cpu (DeviceConfig.name, the "device" setting)."""
    if setting == "auto":
        if torch.cuda.is_available():
            setting = "cuda"
        elif _mps_available():
            setting = "mps"
        else:
            setting = "cpu"
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise ConfigError(f"device {setting!r} is not a device; use auto, cuda, cuda:N, mps or cpu.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {setting!r}: this torch has no CUDA/ROCm device ({torch.__version__}); see the README for the GPU build of torch, or use device = \"cpu\".")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {setting!r}: there are only {torch.cuda.device_count()} CUDA devices (cuda:0 to cuda:{torch.cuda.device_count() - 1}).")
    if device.type == "mps" and not _mps_available():
        raise ConfigError("device 'mps': Apple's Metal backend is not available in this torch or on this Mac.")
    if device.type not in ("cuda", "mps", "cpu"):
        raise ConfigError(f"device {setting!r}: only cuda, mps and cpu are supported.")
    return device


def device_kind(device: torch.device) -> str:
    if device.type == "cuda":
        return "rocm" if torch.version.hip else "cuda"  # ROCm builds present AMD cards as CUDA
    return device.type


def choose_dtype(kind: str, precision: str = "auto", bf16_fast: bool = False, bf16_supported: bool = True) -> torch.dtype:
    """The dtype models run in. ``precision`` is auto, fp16, bf16 or fp32 (DeviceConfig.precision).

    auto: bf16 on NVIDIA cards where it is as fast as fp16 (``bf16_fast``),
    else fp16 on CUDA and ROCm, fp16 on Apple MPS (NaN-guarded: a decode that
    overflows is redone in fp32), fp32 on the CPU (half precision there is fast on
    some CPUs only, and slow by a factor of 100 or more on the rest: see cpu_speed).
    """
    if precision != "auto":
        if precision == "bf16" and not bf16_supported:
            log.warning("precision bf16 is not supported on this device; using fp16")
            return torch.float16
        return DTYPES[precision]
    if kind == "cuda":
        return torch.bfloat16 if bf16_fast else torch.float16
    if kind in ("rocm", "mps"):
        return torch.float16
    return torch.float32


def choose_device(setting: str = "auto", budget_gb: float = 0.0, precision: str = "auto",
                  probe_cpu: Callable[[Iterable[str]], cpu_speed.CpuSpeed] | None = None) -> DeviceChoice:
    """``probe_cpu`` (default: cpu_speed.probe) times half precision against fp32 where the CPU is asked for it."""
    device = resolve_device(setting)
    kind = device_kind(device)
    bf16_fast = bf16_supported = kind != "mps"
    if device.type == "cuda":
        bf16_supported = torch.cuda.is_bf16_supported()
        bf16_fast = kind == "cuda" and torch.cuda.get_device_capability(device) >= BF16_FAST_CAPABILITY
    dtype = choose_dtype(kind, precision, bf16_fast, bf16_supported)
    warning = ""
    if device.type == "cpu" and dtype != torch.float32:
        # Chosen explicitly (auto is fp32 here): kept, as asked, but a slow one is said at start.
        speed = (probe_cpu or cpu_speed.probe)([DTYPE_NAMES[dtype]])
        warning = speed.warning(DTYPE_NAMES[dtype])
        if warning:
            log.warning("%s", warning)
        else:
            log.info("%s on this CPU: a %dx%d matmul takes %.2f ms, %.2f ms in fp32", DTYPE_NAMES[dtype], speed.size, speed.size,
                     speed.seconds[DTYPE_NAMES[dtype]] * 1000, speed.seconds["fp32"] * 1000)
    total, free = memory_info(device)
    # What Paintwire may use: the budget when set, else what was free at start
    # (a desktop, Krita itself and other programs hold the rest).
    usable = int(budget_gb * GiB) if budget_gb > 0 else free
    # The warm cache keeps weights within three quarters of that; the rest is
    # for activations (a 1024 px SDXL step needs a few GB).
    budget = int(usable * 0.75) if device.type != "cpu" or budget_gb > 0 else int(total * 0.5)
    return DeviceChoice(device, dtype, budget, device_name(device), kind, usable, warning)


def device_name(device: torch.device) -> str:
    kind = device_kind(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{name} (ROCm)" if kind == "rocm" else name
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return "CPU"


def memory_info(device: torch.device) -> tuple[int, int]:
    """(total, free) bytes of the memory models on ``device`` use; RAM for the CPU."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(total), int(free)
    import psutil

    ram = psutil.virtual_memory()
    if device.type == "mps":
        # Unified memory: Metal's recommended working set is the GPU's share of it.
        total = int(torch.mps.recommended_max_memory())
        return total, max(0, total - int(torch.mps.driver_allocated_memory()))
    return int(ram.total), int(ram.available)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is any backend's out-of-memory: CUDA and ROCm raise
    torch.OutOfMemoryError; MPS and the CPU allocator raise RuntimeError with a message."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "MPS backend out of memory" in text or "DefaultCPUAllocator: can't allocate memory" in text or "out of memory" in text.lower()[:200]
    )


def free_memory(device: torch.device) -> None:
    """Give back what torch's allocator holds but does not use (after a job failed for memory)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    elif device.type == "mps":
        torch.mps.empty_cache()


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
