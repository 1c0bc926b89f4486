"""Cancel points at real size: how long a cancel can wait inside one network call.

Builds a full-size SD1.5 UNet and VAE with random weights (compute does not
depend on the values), puts the server's cancel points on them (the same hooks
the diffusers engine uses, server/engines/diffusion/phases.py) and times the
gaps between consecutive checks during one denoising step at 512x512 (batch 2,
as classifier-free guidance runs it), one VAE encode and one VAE decode at
512x512, and a tiled decode of 1024x1024. The longest gap is the longest a
cancel can wait in that phase; the whole call is what it waited before.

    ./run bench cancel_points                 # on the CPU, about 6 GB of memory
    ./run bench cancel_points --device cuda

``--loading`` times the cancel points of a model load instead: the full-size
SD1.5 single file of ``./run bench real_size`` (written once if missing) loaded
by the server's loader with its load watch (load_progress.py), once with cancel
checks between components only, as before tensor groups were watched, and once
between tensor groups too, alternating. Each load also takes real cancels, set
from another thread at a quarter, a half and three quarters of the load's time,
and times how long each took to stop the load.

    ./run bench cancel_points --loading --rounds 2   # about 6.5 GB of memory at the peak
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time

import torch

from _common import machine, ms, table
from paintwire.server.engines.base import JobContext
from paintwire.server.engines.diffusion.phases import PhaseWatch


class Clock(JobContext):
    """A job context that notes the time of every cancel check."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.marks: list[float] = []

    def check_cancelled(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()  # a GPU check point is only as late as the work queued before it
        self.marks.append(time.perf_counter())
        super().check_cancelled()


def measure(ctx: Clock, call) -> tuple[float, float, int]:
    """(whole call, longest gap between cancel checks, number of checks)."""
    ctx.marks.clear()
    start = time.perf_counter()
    with torch.inference_mode():
        call()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    points = [start, *ctx.marks, end]
    return end - start, max(b - a for a, b in zip(points, points[1:])), len(ctx.marks)


class Stop(Exception):
    """A cancel seen by the load's check."""


def load_once(engine, entry, group_bytes: int, cancel_after: float | None) -> tuple[float, float, float | None]:
    """One load with checks every ``group_bytes``: (load time, longest gap between checks,
    seconds from a cancel at ``cancel_after`` to the load stopping; None without one).
    A cancel that no check sees stops the job at its next report, right after the load."""
    from paintwire.server.engines.diffusion import load_progress

    load_progress.GROUP_BYTES = group_bytes
    cancel = threading.Event()
    marks: list[float] = []
    set_at: list[float] = []

    def check() -> None:
        marks.append(time.perf_counter())
        if cancel.is_set():
            raise Stop()

    def cancel_now() -> None:
        set_at.append(time.perf_counter())
        cancel.set()

    file_bytes, components = engine.loader.weight_files(entry)
    watch = load_progress.LoadWatch(file_bytes, lambda *_: None, check, components)
    timer = threading.Timer(cancel_after, cancel_now) if cancel_after is not None else None
    start = time.perf_counter()
    if timer:
        timer.start()
    try:
        with load_progress.reporting(watch):
            pipe = engine.loader.load(entry)
        del pipe
    except Stop:
        pass
    end = time.perf_counter()
    if timer:
        timer.cancel()
    gc.collect()
    points = [start, *marks, end]
    gap = max(b - a for a, b in zip(points, points[1:]))
    return end - start, gap, (end - set_at[0]) if set_at and set_at[0] < end else None


def loading(rounds: int) -> None:
    from real_size import CACHE, CHECKPOINT, build_checkpoint

    from paintwire.server.config import DeviceConfig, ModelsConfig
    from paintwire.server.engines.diffusion import DiffusersEngine, load_progress

    path = CACHE / CHECKPOINT
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"Writing a random full-size SD1.5 checkpoint to {path} (once)...", flush=True)
        build_checkpoint(path)
    engine = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[CACHE]))
    entry = engine.registry.get(path.stem)
    print(f"machine: {machine()}; {path.name}, {path.stat().st_size / 1e9:.2f} GB, loaded in {engine.choice.dtype_name}")
    ways = {"components only (before)": 1 << 62, f"tensor groups of {load_progress.GROUP_BYTES >> 20} MiB (after)": load_progress.GROUP_BYTES}
    found: dict[str, dict[str, list[float]]] = {w: {"load": [], "gap": [], "cancel": []} for w in ways}
    for _ in range(rounds):
        for way, group in ways.items():  # alternating, so both see the same load on the machine
            whole, gap, _ = load_once(engine, entry, group, None)
            found[way]["load"].append(whole)
            found[way]["gap"].append(gap)
            for share in (0.25, 0.5, 0.75):
                _, _, late = load_once(engine, entry, group, whole * share)
                if late is not None:
                    found[way]["cancel"].append(late)
            print(f"  {way}: load {whole:.1f} s, longest gap {gap:.2f} s, cancels {[round(c, 2) for c in found[way]['cancel'][-3:]]}", flush=True)
    rows = []
    for way, f in found.items():
        c = f["cancel"] or [float("nan")]
        rows.append((way, ms(statistics.median(f["load"])), ms(min(f["gap"])), ms(statistics.median(f["gap"])),
                     ms(min(c)), ms(statistics.median(c)), ms(max(c)), len(f["cancel"])))
    table("Cancel while a full-size SD1.5 single file loads (the server's loader, in process)",
          ["cancel checks", "load (median)", "longest gap: min", "median", "cancel to stop: min", "median", "max", "cancels"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--loading", action="store_true", help="time the cancel points of a model load instead")
    parser.add_argument("--rounds", type=int, default=2, help="with --loading: loads of each way")
    args = parser.parse_args()
    if args.loading:
        loading(args.rounds)
        return
    from diffusers import AutoencoderKL, UNet2DConditionModel

    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    print(f"machine: {machine()}; device {device} ({dtype})")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
        attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    ).to(device, dtype).eval()
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512,
    ).to(device, dtype).eval()
    ctx = Clock(device)
    watch = PhaseWatch(ctx)
    watch.add_cancel_points(unet)
    watch.add_cancel_points(vae)
    side, latent = args.size, args.size // 8
    sample = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
    text = torch.randn(2, 77, 768, device=device, dtype=dtype)
    image = torch.randn(1, 3, side, side, device=device, dtype=dtype)
    rows = []
    cases = [
        (f"denoising: one UNet step, {side}x{side}, batch 2", lambda: unet(sample, 500, encoder_hidden_states=text)),
        (f"encoding: VAE encode {side}x{side}", lambda: vae.encode(image)),
        (f"decoding: VAE decode {side}x{side}", lambda: vae.decode(sample[:1])),
    ]
    measure(ctx, cases[0][1])  # warm-up (allocator, kernels)
    for name, call in cases:
        whole, gap, n = measure(ctx, call)
        rows.append((name, ms(whole), n, ms(gap), f"{gap / whole:.0%}"))
    big = torch.randn(1, 4, 2 * latent, 2 * latent, device=device, dtype=dtype)
    vae.enable_tiling()
    whole, gap, n = measure(ctx, lambda: vae.decode(big))
    rows.append((f"decoding: tiled VAE decode {2 * side}x{2 * side}", ms(whole), n, ms(gap), f"{gap / whole:.0%}"))
    table("Cancel points at real size (SD1.5 UNet and VAE, random weights): the longest wait for a cancel",
          ["work", "whole call", "cancel checks", "longest gap between checks", "gap / call"], rows)


if __name__ == "__main__":
    main()
