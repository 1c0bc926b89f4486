"""How fast this CPU runs half precision, measured at start.

A CPU computes bf16 or fp16 quickly only where it has the instructions
(avx512_bf16, amx_bf16, avx512_fp16, amx_fp16) or where oneDNN converts to fp32
on the fly; elsewhere torch falls back to loops that run one to two hundred
times slower than fp32 (an AVX2 EPYC: a 2048^3 matmul at 0.3 GFLOP/s in bf16
against 55 in fp32, and no txt2img finished in ten minutes). The CPU flags
alone do not say how slow (an AVX-512 Xeon without avx512_bf16 runs bf16
5x slower than fp32, and fp16 250x slower), so a small matmul is timed in each
precision: a few milliseconds where half precision is fast, about a tenth of a
second where it is not.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import torch

SIZE = 256  # the matmul's side: big enough that fp32 is not all call overhead (0.1-2 ms)
# Half precision this many times slower than fp32 is slow: the real slow paths are 20-200x,
# and noise on a busy machine stays within this.
SLOW = 2.0
BUDGET_S = 0.03  # per precision: repeat until this is spent (the best time is kept) ...
AT_LEAST, AT_MOST = 3, 20  # ... with at least and at most this many timed runs
NATIVE_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}  # as /proc/cpuinfo names them
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class CpuSpeed:
    """The best time of one SIZE^3 matmul in each precision measured (fp32 always),
    and the CPU's native half-precision flags."""

    seconds: Mapping[str, float]
    flags: frozenset[str] = field(default_factory=frozenset)
    size: int = SIZE

    def slowdown(self, precision: str) -> float:
        """How many times longer ``precision`` takes than fp32."""
        return self.seconds[precision] / max(self.seconds["fp32"], 1e-9)

    def is_slow(self, precision: str) -> bool:
        return precision != "fp32" and self.slowdown(precision) >= SLOW

    def warning(self, precision: str) -> str:
        """The sentence for a slow ``precision``; "" where it is not slow."""
        if not self.is_slow(precision):
            return ""
        native = NATIVE_FLAGS.get(precision, ())
        has = [f for f in native if f in self.flags]
        cpu = f"the CPU has {' and '.join(has)}" if has else f"the CPU has no {' or '.join(native)}"
        return (f"{precision} runs {self.slowdown(precision):.0f}x slower than fp32 on this CPU (measured: a {self.size}x{self.size} matmul "
                f"takes {_ms(self.seconds[precision])} in {precision}, {_ms(self.seconds['fp32'])} in fp32; {cpu}); "
                'use precision = "fp32"')


def probe(precisions: Iterable[str], size: int = SIZE) -> CpuSpeed:
    """Time a matmul in fp32 and in each of ``precisions`` on the CPU."""
    names = ["fp32", *(p for p in precisions if p != "fp32")]
    # One thread: a run then fits in the time slice a busy machine gives it, where a
    # parallel run waits for its slowest thread; the ratio is what counts.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return CpuSpeed({name: time_matmul(DTYPES[name], size) for name in names}, cpu_flags(), size)
    finally:
        torch.set_num_threads(threads)


def time_matmul(dtype: torch.dtype, size: int = SIZE) -> float:
    """The best of several timed runs (the least disturbed by other work on the machine)."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen).to(dtype) for _ in range(2))
    best, spent, runs = math.inf, 0.0, 0
    with torch.inference_mode():
        a @ b  # the first call allocates and picks its kernel
        while runs < AT_LEAST or (spent < BUDGET_S and runs < AT_MOST):
            start = time.perf_counter()
            a @ b
            took = time.perf_counter() - start
            best, spent, runs = min(best, took), spent + took, runs + 1
    return best


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's native half-precision flags (Linux; empty elsewhere)."""
    wanted = {f for flags in NATIVE_FLAGS.values() for f in flags}
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(wanted.intersection(line.partition(":")[2].split()))
    return frozenset()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
