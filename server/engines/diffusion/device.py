"""Where models run and in what precision, and how much memory the model cache may use."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    dtype: torch.dtype
    memory_budget: int  # bytes of model weights the cache may keep loaded


def choose_device(setting: str = "auto", budget_gb: float = 0.0) -> DeviceChoice:
    """``setting`` is auto, cuda, cuda:N, mps or cpu (ServerConfig.device)."""
    if setting == "auto":
        if torch.cuda.is_available():
            setting = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            setting = "mps"
        else:
            setting = "cpu"
    device = torch.device(setting)
    # fp16 halves memory and is fast on CUDA; the pipelines upcast the SDXL VAE
    # themselves where fp16 overflows. On MPS fp16 still produces black images
    # with some attention paths, and CPUs have no fast fp16 matmul: fp32 there.
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if budget_gb > 0:
        budget = int(budget_gb * 2**30)
    elif device.type == "cuda":
        # Leave a quarter for activations (a 1024 px SDXL step needs several GB).
        budget = int(torch.cuda.get_device_properties(device).total_memory * 0.75)
    else:
        import psutil

        budget = int(psutil.virtual_memory().total * 0.5)
    return DeviceChoice(device, dtype, budget)
