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
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
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
