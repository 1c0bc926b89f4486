"""Shared pieces of the benchmarks: timing, tables, the real server, process memory.

Benchmarks print ratios against a baseline measured in the same run, so the
figures mean something on a noisy machine; absolute times are printed too,
with the machine they came from.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # server_process (the real `paintwire serve`) and fixtures

from server_process import ServerProcess, start_server_process  # noqa: E402

__all__ = ["ROOT", "ServerProcess", "start_server_process", "machine", "timed", "median_of", "table", "rss_kib", "ms", "ratio",
           "build_small_sd15"]


def machine() -> str:
    """One line naming the machine, for every table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores usable, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def median_of(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table (pastes straight into docs/performance.md)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}\n")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    sys.stdout.flush()


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc (Linux only)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def build_small_sd15(folder: Path) -> None:
    """A small SD1.5-shaped model made for 512x512 on a CPU: the VAE's factor 8 (so 64x64
    latents, as SD1.5 has), attention only at the UNet's middle level, few channels.
    (The tests' tiny models are made for 64x64 and take seconds a step at 512x512.)"""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

    from fixtures import tiny_models

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64, 64), layers_per_block=1, sample_size=64, in_channels=4, out_channels=4, cross_attention_dim=32,
        attention_head_dim=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    )
    vae = AutoencoderKL(block_out_channels=[8, 16, 32, 32], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, layers_per_block=1, norm_num_groups=8, sample_size=512)
    tokenizer = tiny_models._tokenizer(folder.parent / "tokenizer")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=tiny_models._text_encoder(tokenizer.get_vocab()), tokenizer=tokenizer, unet=unet,
                                   scheduler=tiny_models._scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
