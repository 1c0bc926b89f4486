"""A full-size SD1.5 single file through the real server, against diffusers called directly.

The checkpoint is SD1.5's exact layout (every tensor of the published
configuration, tests/fixtures/real_sizes.py) with random fp16 weights: compute
and memory do not depend on the values. It is written once, about 2.1 GB, to
``~/.cache/paintwire/bench`` (``PAINTWIRE_BENCH_CACHE`` moves it), never into
the repository.

Each way runs in its own process so its peak RSS is its own:

- ``paintwire serve``: a txt2img job, 512x512, Euler, 2 steps; the first job
  loads the model (load time = first job - second job), the second is timed
  step by step from its progress events;
- diffusers directly: ``StableDiffusionPipeline.from_single_file`` with the same
  generated configuration, the same call, in fp32 (what the server uses on a
  CPU) and in bf16 (the question: is fp32 the right choice on a CPU?).

    ./run bench real_size
    ./run bench real_size --steps 4 --dtypes fp32,bf16,fp16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine, ms, ratio, rss_kib, start_server_process, table

CACHE = Path(os.environ.get("PAINTWIRE_BENCH_CACHE", Path.home() / ".cache" / "paintwire" / "bench"))
CHECKPOINT = "sd15-random-fp16.safetensors"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def build_checkpoint(path: Path) -> float:
    """Write the random full-size SD1.5 file (streamed: one tensor in memory at a time)."""
    import torch

    from fixtures.real_sizes import sd15_shapes, write_header_only

    start = time.perf_counter()
    tmp = path.with_suffix(".partial")
    shapes = sd15_shapes()
    write_header_only(tmp, shapes, "F16")
    with open(tmp, "r+b") as f:
        (header_len,) = np.frombuffer(f.read(8), "<u8")
        gen = torch.Generator().manual_seed(0)
        f.seek(8 + int(header_len))
        for name, shape in shapes.items():
            if len(shape) == 1:  # norms and biases: the identity, so activations stay in range
                t = torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)
            else:
                t = torch.randn(shape, generator=gen) / float(np.prod(shape[1:])) ** 0.5  # unit-variance outputs
            f.write(t.to(torch.float16).numpy().tobytes())
    tmp.rename(path)
    return time.perf_counter() - start


# --- one way per process -------------------------------------------------------------------


def direct(path: Path, dtype_name: str, steps: int, side: int) -> dict[str, Any]:
    """diffusers alone, in this process: load, generate, and this process's peak RSS."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from paintwire.server.engines.diffusion.families import family_named
    from paintwire.server.engines.diffusion.models import read_header

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    with tempfile.TemporaryDirectory() as tmp:
        config = family_named("sd15").write_skeleton(Path(tmp), read_header(path), "sd15", "StableDiffusionPipeline", lambda n, s: None)
        start = time.perf_counter()
        pipe = StableDiffusionPipeline.from_single_file(str(path), config=str(config), local_files_only=True, torch_dtype=dtype,
                                                        safety_checker=None, requires_safety_checker=False)
        load = time.perf_counter() - start
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    marks: list[float] = []

    def on_step(p: Any, i: int, t: Any, kw: dict) -> dict:
        marks.append(time.perf_counter())
        return kw

    start = time.perf_counter()
    with torch.inference_mode():
        pipe(PROMPT, num_inference_steps=steps, height=side, width=side, guidance_scale=7.0,
             generator=torch.Generator().manual_seed(1), output_type="np", callback_on_step_end=on_step)
    total = time.perf_counter() - start
    return {"load": load, "job": total, "step": _step_time(marks, start), "peak_kib": rss_kib(os.getpid())["VmHWM"]}


def served(path: Path, steps: int, side: int) -> dict[str, Any]:
    from paintwire.protocol import Client, JobRequest, Progress

    server = start_server_process(model_dirs=[str(path.parent)], engines=["diffusers"], previews_per_second=0.0)
    request = JobRequest("diffusers", "txt2img", model=path.stem, params={
        "prompt": PROMPT, "steps": steps, "width": side, "height": side, "cfg_scale": 7.0, "seed": 1, "scheduler": "euler"})
    try:
        with Client(server.url, name="bench-real-size") as client:
            start = time.perf_counter()
            client.run(request, timeout=1800)
            first = time.perf_counter() - start
            marks: list[float] = []

            def on_event(message: Any) -> None:
                if isinstance(message, Progress) and message.stage == "denoising" and message.step > 0:
                    marks.append(time.perf_counter())

            start = time.perf_counter()
            client.run(request, on_event=on_event, timeout=1800)
            second = time.perf_counter() - start
        peak = rss_kib(server.process.pid)["VmHWM"]
    finally:
        server.stop()
    return {"load": first - second, "job": second, "step": _step_time(marks, start), "peak_kib": peak}


def _step_time(marks: list[float], start: float) -> float:
    """One denoising step: the median gap between step ends (the first step also
    carries the prompt encoding, so it is only used when there is no other)."""
    if len(marks) > 1:
        return statistics.median(np.diff(marks))
    return marks[0] - start if marks else float("nan")


def _in_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dtypes", default="fp32,bf16", help="diffusers-direct precisions to compare (fp32, bf16, fp16)")
    parser.add_argument("--way", help=argparse.SUPPRESS)  # internal: run one way in this process, print JSON
    args = parser.parse_args()
    path = CACHE / CHECKPOINT
    if args.way:
        result = served(path, args.steps, args.size) if args.way == "server" else direct(path, args.way, args.steps, args.size)
        print(json.dumps(result))
        return

    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"Writing a random full-size SD1.5 checkpoint to {path} (once)...", flush=True)
        print(f"  done in {build_checkpoint(path):.0f} s, {path.stat().st_size / 1e9:.2f} GB")
    common = ("--steps", str(args.steps), "--size", str(args.size))
    results = {"server": _in_child("--way", "server", *common)}
    for name in args.dtypes.split(","):
        results[name] = _in_child("--way", name, *common)
    base = results["fp32"] if "fp32" in results else results["server"]
    rows = []
    for way, r in results.items():
        label = "paintwire serve (fp32 on the CPU)" if way == "server" else f"diffusers directly, {way}"
        rows.append((label, ms(r["load"]), ms(r["step"]), ratio(r["step"], base["step"]), ms(r["job"]),
                     f"{r['peak_kib'] / 2**20:.2f} GiB", ratio(r["peak_kib"], base["peak_kib"])))
    table(f"Full-size SD1.5 single file (random fp16 weights, {path.stat().st_size / 1e9:.2f} GB), txt2img "
          f"{args.size}x{args.size}, {args.steps} Euler steps, cfg 7. {machine()}",
          ("way", "load", "step", "step vs diffusers fp32", "job (warm)", "peak RSS", "peak vs diffusers fp32"), rows)


if __name__ == "__main__":
    main()
