"""UNet speed on a GPU: full-size SD1.5 and SDXL UNets with random weights (the
compute does not depend on the weight values), at 512 and 1024, plain
diffusers against the configurations Paintwire can run with.

Variants, each timed in the same run on the same device:
  fp32 SDPA                      diffusers with no options (reference)
  fp16 SDPA                      the usual diffusers setup: the baseline ("1.00x")
  fp16 + channels_last
  bf16 + channels_last
  fp16 + channels_last + compile torch.compile(unet), compile time reported apart

Each figure is UNet iterations per second at batch 2 (one step with
classifier-free guidance), after warm-up, with the device's name beside it.
Without a CUDA device the script says so and exits 0; ``--smoke`` runs the
same code with tiny UNets on the CPU to check the script itself.

    ./run bench gpu_unet                          # everything (about 5-10 minutes on an H100)
    ./run bench gpu_unet --models sd15 --sizes 512 --no-compile
    ./run bench gpu_unet --smoke                  # CPU check of the script, tiny models, no compile
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from _common import machine, table

SD15 = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8,
)
SDXL = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # 6 time ids * 256 + 1280 pooled text
)
# Tiny versions with the same structure, for --smoke on a CPU.
SD15_SMOKE = dict(SD15, block_out_channels=(32, 32, 64, 64), cross_attention_dim=32, layers_per_block=1)
SDXL_SMOKE = dict(SDXL, block_out_channels=(32, 64, 64), attention_head_dim=(2, 4, 4), transformer_layers_per_block=(1, 1, 1),
                  cross_attention_dim=64, addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32, layers_per_block=1)


@dataclass
class Variant:
    name: str
    dtype: str  # "float32", "float16", "bfloat16"
    channels_last: bool = False
    compile: bool = False


VARIANTS = [
    Variant("fp32 SDPA (diffusers, no options)", "float32"),
    Variant("fp16 SDPA (usual diffusers setup)", "float16"),
    Variant("fp16 + channels_last", "float16", channels_last=True),
    Variant("bf16 + channels_last", "bfloat16", channels_last=True),
    Variant("fp16 + channels_last + torch.compile", "float16", channels_last=True, compile=True),
]
BASELINE = "fp16 SDPA (usual diffusers setup)"


def inputs(torch: Any, family: str, config: dict, side: int, batch: int, device: Any, dtype: Any) -> dict:
    latent = side // 8
    out = {
        "sample": torch.randn(batch, 4, latent, latent, device=device, dtype=dtype),
        "timestep": torch.tensor([500] * batch, device=device),
        "encoder_hidden_states": torch.randn(batch, 77, config["cross_attention_dim"], device=device, dtype=dtype),
    }
    if family == "sdxl":
        pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
        out["added_cond_kwargs"] = {
            "text_embeds": torch.randn(batch, pooled, device=device, dtype=dtype),
            "time_ids": torch.tensor([[side, side, 0, 0, side, side]] * batch, device=device, dtype=dtype),
        }
    return out


def measure(torch: Any, build: Callable[[], Any], family: str, config: dict, side: int, variant: Variant, device: Any,
            batch: int, warmup: int, iters: int) -> dict[str, float]:
    dtype = getattr(torch, variant.dtype)
    unet = build().to(device=device, dtype=dtype).eval()
    if variant.channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    compile_s = 0.0
    kwargs = inputs(torch, family, config, side, batch, device, dtype)
    if variant.channels_last:
        kwargs["sample"] = kwargs["sample"].contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        if variant.compile:
            unet = torch.compile(unet, fullgraph=False)
            start = time.perf_counter()
            unet(**kwargs)  # the first call compiles
            sync()
            compile_s = time.perf_counter() - start
        for _ in range(warmup):
            unet(**kwargs)
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            unet(**kwargs)
        sync()
        elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    del unet, kwargs
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if variant.compile:
        torch._dynamo.reset()
    return {"its": iters / elapsed, "compile_s": compile_s, "peak_gib": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="sd15,sdxl", help="sd15, sdxl or both")
    parser.add_argument("--sizes", default="512,1024", help="image sides (latents are 1/8)")
    parser.add_argument("--batch", type=int, default=2, help="UNet batch: 2 is one guided step of one image")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (it compiles for a minute or more)")
    parser.add_argument("--no-fp32", action="store_true", help="skip the fp32 reference")
    parser.add_argument("--smoke", action="store_true", help="tiny UNets on the CPU: checks the script, measures nothing useful")
    args = parser.parse_args()

    try:
        import torch
        from diffusers import UNet2DConditionModel
    except ImportError as exc:
        print(f"gpu_unet: needs torch and diffusers ({exc}); install paintwire[diffusers]. Skipped.")
        return 0
    if args.smoke:
        device, device_name = torch.device("cpu"), f"CPU (smoke test): {machine()}"
        configs = {"sd15": SD15_SMOKE, "sdxl": SDXL_SMOKE}
        args.iters, args.warmup = min(args.iters, 2), 1
        args.no_compile = True  # compiling on a CPU takes minutes and says nothing about a GPU
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        props = torch.cuda.get_device_properties(device)
        device_name = f"{torch.cuda.get_device_name(device)} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}"
        configs = {"sd15": SD15, "sdxl": SDXL}
        torch.backends.cudnn.benchmark = True
    else:
        print(f"gpu_unet: no CUDA device here ({machine()}; torch {torch.__version__}). Skipped: run it on a machine with a GPU.")
        return 0
    print(f"device: {device_name}", flush=True)

    variants = [v for v in VARIANTS if not (args.no_compile and v.compile) and not (args.no_fp32 and v.dtype == "float32")]
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        variants = [v for v in variants if v.dtype != "bfloat16"]
    rows = []
    best: list[tuple] = []
    for family in [m.strip() for m in args.models.split(",") if m.strip()]:
        config = configs[family]
        torch.manual_seed(0)
        for side in [int(s) for s in args.sizes.split(",")]:
            results: dict[str, dict[str, float]] = {}
            for variant in variants:
                try:
                    results[variant.name] = measure(torch, lambda: UNet2DConditionModel(**config), family, config, side, variant, device,
                                                    args.batch, args.warmup, args.iters)
                except Exception as exc:  # e.g. out of memory at fp32 on a small card, or a compile failure
                    print(f"  {family} {side} {variant.name}: failed ({type(exc).__name__}: {str(exc)[:200]})", flush=True)
                    continue
                r = results[variant.name]
                print(f"  {family} {side} {variant.name}: {r['its']:.2f} it/s", flush=True)
            base = results.get(BASELINE, {}).get("its")
            for name, r in results.items():
                rows.append((family, side, name, f"{r['its']:.2f}", f"{r['its'] / base:.2f}x" if base else "n/a",
                             f"{r['compile_s']:.0f} s" if r["compile_s"] else "-", f"{r['peak_gib']:.1f}" if r["peak_gib"] else "-", device_name.split(",")[0]))
            if results:
                winner = max(results, key=lambda n: results[n]["its"])
                best.append((family, side, winner, f"{results[winner]['its'] / base:.2f}x" if base else "n/a"))
    table(f"UNet iterations per second, batch {args.batch} ({device_name})",
          ["model", "size", "configuration", "it/s", "vs fp16 SDPA", "compile", "peak GiB", "device"], rows)
    table("Fastest configuration per case", ["model", "size", "configuration", "vs fp16 SDPA"], best)
    return 0


if __name__ == "__main__":
    sys.exit(main())
