"""Every GPU figure in one run of about 25 minutes: the UNet variants (gpu_unet),
whole jobs through the server against diffusers directly (gpu_e2e), Flux.2 Klein 4B
and Flux.1-dev at 1024x1024 on the whole card and under a 12 GiB memory plan
(gpu_flux) and live painting (live --gpu). Needs CUDA; without it, it refuses.

    python bench/gpu_all.py --out gpu-results      # on the GPU machine; see docs/performance.md
    python bench/gpu_all.py --smoke                # on any machine: checks the scripts

Parts run one after another in their own processes, each with a time limit, so
that one part failing or running long still leaves the others' tables; the
output of each goes to the terminal and to OUT/NAME.txt.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (name, script and arguments, time limit in seconds): about 10 minutes in all on a recent card.
PARTS = [
    ("unet-sd15-512", ["gpu_unet.py", "--models", "sd15", "--sizes", "512"], 150),  # with torch.compile and its compile time
    ("unet-sdxl-1024", ["gpu_unet.py", "--models", "sdxl", "--sizes", "1024", "--no-compile", "--iters", "10"], 90),
    ("e2e", ["gpu_e2e.py"], 300),
    # Klein 4B (1024x1024, 4 steps) and Flux.1-dev (1024x1024, 20 steps), real size, random weights; a 24 GB card or more.
    ("flux", ["gpu_flux.py"], 900),  # building and saving 50 GB of random weights takes a few of its minutes
    # Live painting on an SD1.5-size model at 512x512, 1 and 4 steps (the goal: a warm 1-step cycle under 100 ms).
    ("live-sd15-512", ["live.py", "--gpu", "--steps", "1,4", "--seconds", "20"], 150),
]


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-results"), help="folder for the outputs (default gpu-results)")
    parser.add_argument("--smoke", "--tiny", action="store_true", help="every part with tiny models on the CPU")
    args = parser.parse_args()
    if not args.smoke and not cuda_available():
        print("gpu_all: refused: no CUDA device here (or no torch). These figures need an NVIDIA card; "
              "run with --smoke to check the scripts on this machine.", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    failed = []
    for name, command, limit in PARTS:
        smoke = ["--smoke"] + (["--sizes", "64"] if command[0] == "gpu_unet.py" else [])  # tiny latents too
        argv = [sys.executable, str(HERE / command[0]), *command[1:], *(smoke if args.smoke else [])]
        print(f"== {name}: {' '.join(command)} (limit {limit} s)", flush=True)
        lines: list[str] = []
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
        limit = limit * 4 if args.smoke else limit  # the CPU smoke is slower than a GPU
        timer = threading.Timer(limit, proc.kill)
        timer.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        code = proc.wait()
        if not timer.is_alive():
            lines.append(f"\n{name}: stopped at its time limit ({limit} s)\n")
            print(lines[-1], flush=True)
        timer.cancel()
        (args.out / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
        if code != 0:
            failed.append(f"{name} (exit {code})")
    print(f"\nall parts: {time.perf_counter() - started:.0f} s; outputs in {args.out}/" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
