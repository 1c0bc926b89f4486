"""Upscaler memory: a 4x ESRGAN-size model over growing images costs the result plus a
bounded working set (one tile's activations, one row of tiles in float32), not memory
that grows with the image.

Each size runs in a fresh process (peak RSS is per process); the model is an ESRGAN of
the published size (64 filters, 4x) with random weights, run by the server's own tiled
code (paintwire.server.engines.diffusion.upscalers). On the CPU it has 2 RRDB blocks by
default instead of 23: the peak comes from the upsampling layers at full resolution,
which are the same either way, and 23 blocks take minutes a tile on a small CPU.

    ./run bench upscale_memory                       # 512, 1024, 2048 on this machine's device
    ./run bench upscale_memory --sizes 512 2048 --blocks 23 --device cuda
    ./run bench upscale_memory --filters 16 --sizes 512 2048   # a 2048 input on a small CPU, in minutes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _common import machine, ratio, rss_kib, table


def child(size: int, blocks: int, filters: int, device_name: str) -> dict:
    import os

    import numpy as np
    import spandrel
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    from paintwire.server.engines.diffusion.upscalers import Upscaler, upscale_rgb

    device = torch.device(device_name)
    torch.manual_seed(0)
    descriptor = spandrel.ModelLoader().load_from_state_dict(ESRGAN(in_nc=3, out_nc=3, num_filters=filters, num_blocks=blocks, scale=4).state_dict())
    dtype = torch.float16 if device.type == "cuda" and descriptor.supports_half else torch.float32
    descriptor.to(device=device, dtype=dtype).eval()
    model = Upscaler("esrgan-4x", descriptor, device, dtype)
    upscale_rgb(model, np.zeros((64, 64, 3), np.uint8), 1, lambda i, n: None)  # warm up (kernels, allocator)
    rgb = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    base = rss_kib(os.getpid())["VmRSS"]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tiles = []
    start = time.perf_counter()
    out = upscale_rgb(model, rgb, 1, lambda i, n: tiles.append(i))
    seconds = time.perf_counter() - start
    peak = rss_kib(os.getpid())["VmHWM"]
    return {
        "size": size, "tiles": len(tiles), "seconds": seconds, "result_mb": out.nbytes / 2**20,
        "base_mb": base / 1024, "peak_mb": peak / 1024, "extra_mb": (peak - base) / 1024,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "dtype": str(dtype).replace("torch.", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048], help="input sides (the first is the baseline)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda where there is one)")
    parser.add_argument("--blocks", type=int, default=None, help="RRDB blocks (default 23 on CUDA, 2 on the CPU)")
    parser.add_argument("--filters", type=int, default=64, help="ESRGAN filters (64 is the published size; fewer runs faster, "
                        "with activations that many times smaller)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    blocks = args.blocks or (23 if args.device.startswith("cuda") else 2)
    if args.child:
        print(json.dumps(child(args.child, blocks, args.filters, args.device)))
        return
    print(machine())
    runs = []
    for size in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--child", str(size), "--blocks", str(blocks), "--filters", str(args.filters),
                               "--device", args.device],
                              capture_output=True, text=True, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = runs[0]
    rows = []
    for r in runs:
        working = r["extra_mb"] - r["result_mb"]  # what the upscale needs besides the result itself
        rows.append([
            f"{r['size']}x{r['size']} -> {4 * r['size']}x{4 * r['size']}", r["tiles"], f"{r['seconds']:.1f} s",
            f"{r['result_mb']:.0f} MB", f"{r['extra_mb']:.0f} MB", f"{working:.0f} MB",
            ratio(working, base["extra_mb"] - base["result_mb"]),
            f"{r['gpu_peak_mb']:.0f} MB" if r["gpu_peak_mb"] is not None else "-",
        ])
    table(f"4x ESRGAN ({args.filters} filters, {blocks} blocks, {base['dtype']}) on {args.device}, 256 px tiles",
          ["upscale", "tiles", "time", "result (RGB)", "peak RSS growth", "less the result", f"vs {base['size']}", "GPU peak"], rows)


if __name__ == "__main__":
    main()
