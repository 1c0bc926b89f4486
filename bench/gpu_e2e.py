"""End to end on a GPU: whole jobs through the real server against the same work done
with diffusers (and spandrel) called directly, in the same run, on the same device.

Cases (full-size models with random weights, built here: the compute does not
depend on the weight values):
  txt2img SD1.5 512          SD1.5-size UNet, VAE and text encoder, 512x512
  txt2img SDXL 1024          SDXL-size, 1024x1024
  inpaint 4096 only masked   SD1.5, a 512x512 hole on a 4096x4096 canvas, "only masked"
                             (diffusers: padding_mask_crop, its version of the same)
  upscale 4x 1024            an ESRGAN x4 of RealESRGAN_x4plus's size (needs spandrel)

Each row: the median of --repeat jobs after one warm-up; the server's first job
(which loads the model) is reported apart. Both paths use the dtype the server
chose for the device (see docs/performance.md). One run takes under 10 minutes
on a recent card; ``--smoke`` runs the same code with tiny models on the CPU in
a few minutes to check the script itself.

    ./run bench gpu_e2e                      # on a machine with a GPU
    ./run bench gpu_e2e --smoke              # on any machine: checks the script
    python bench/gpu_e2e.py --requirements   # the pins to carry as wheels (torch excluded)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import ROOT, machine, ms, ratio, start_server_process, table
from gpu_unet import SD15, SD15_SMOKE, SDXL, SDXL_SMOKE

PROMPT = "a lighthouse on a cliff at dusk, oil painting"


@dataclass(frozen=True)
class Sizes:
    sd15: int  # txt2img side
    sdxl: int
    canvas: int  # the inpaint canvas side
    hole: int  # the inpaint hole side
    upscale_in: int  # the upscaler's input side
    steps: int


FULL = Sizes(sd15=512, sdxl=1024, canvas=4096, hole=512, upscale_in=1024, steps=20)
SMOKE = Sizes(sd15=64, sdxl=128, canvas=512, hole=64, upscale_in=64, steps=2)


def requirements() -> list[str]:
    """Every pin of paintwire and paintwire[diffusers] but torch (the GPU machine has its own)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = list(project["dependencies"]) + list(project["optional-dependencies"]["diffusers"])
    return [p for p in pins if not p.replace(" ", "").startswith(("torch==", "torch>", "torch<", "torch~"))]


# --- models with random weights ------------------------------------------------------------


def _vae(torch: Any, smoke: bool, sdxl: bool) -> Any:
    from diffusers import AutoencoderKL

    if smoke:
        channels, layers = [32, 32], 1
    else:
        channels, layers = [128, 256, 512, 512], 2
    return AutoencoderKL(block_out_channels=channels, down_block_types=["DownEncoderBlock2D"] * len(channels),
                         up_block_types=["UpDecoderBlock2D"] * len(channels), layers_per_block=layers, latent_channels=4,
                         scaling_factor=0.13025 if sdxl else 0.18215, force_upcast=sdxl)


def _text_encoder(vocab: dict[str, int], smoke: bool, width: int = 768, projection: int | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    full = {768: (3072, 12, 12), 1280: (5120, 20, 32)}[width]
    hidden, intermediate, heads, layers = (32, 37, 4, 2) if smoke else (width, *full)
    config = CLIPTextConfig(hidden_size=hidden, intermediate_size=intermediate, num_attention_heads=heads, num_hidden_layers=layers,
                            vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                            pad_token_id=vocab["<|endoftext|>"], max_position_embeddings=77,
                            **({"projection_dim": 32 if smoke else projection} if projection else {}))
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def build_pipeline(torch: Any, family: str, folder: Path, smoke: bool, device: Any) -> Any:
    """An SD1.5- or SDXL-size pipeline with random weights, saved to ``folder`` in fp16."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from fixtures import tiny_models

    tokenizer = tiny_models._tokenizer(folder.parent / f"{family}-tokenizer")  # byte-level: any text, no download
    vocab = tokenizer.get_vocab()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: seconds instead of minutes for 2.6B weights
        if family == "sd15":
            pipe = StableDiffusionPipeline(
                vae=_vae(torch, smoke, False), text_encoder=_text_encoder(vocab, smoke), tokenizer=tokenizer,
                unet=UNet2DConditionModel(**(SD15_SMOKE if smoke else SD15)), scheduler=scheduler,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        else:
            pipe = StableDiffusionXLPipeline(
                vae=_vae(torch, smoke, True), text_encoder=_text_encoder(vocab, smoke), tokenizer=tokenizer,
                text_encoder_2=_text_encoder(vocab, smoke, 1280, 1280), tokenizer_2=tokenizer,
                unet=UNet2DConditionModel(**(SDXL_SMOKE if smoke else SDXL)), scheduler=scheduler)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    return pipe


def build_upscaler(torch: Any, path: Path, smoke: bool) -> Any | None:
    try:
        from spandrel.architectures.ESRGAN import ESRGAN
    except ImportError:
        return None
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = ESRGAN(in_nc=3, out_nc=3, num_filters=16 if smoke else 64, num_blocks=2 if smoke else 23, scale=4)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model


# --- timing ------------------------------------------------------------------------------------


def median_time(fn: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def canvas_and_mask(sizes: Sizes) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (sizes.canvas, sizes.canvas, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    mask = np.zeros((sizes.canvas, sizes.canvas), np.uint8)
    at = sizes.canvas // 2 - sizes.hole // 2
    mask[at:at + sizes.hole, at:at + sizes.hole] = 255
    return canvas, mask


def direct_runs(torch: Any, pipes: dict[str, Any], upscaler: Any, sizes: Sizes, device: Any, dtype: Any, repeat: int) -> dict[str, float]:
    """The same work with diffusers and spandrel called directly."""
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: dict[str, float] = {}
    generator = lambda: torch.Generator("cpu").manual_seed(1)  # noqa: E731
    for family, side in (("sd15", sizes.sd15), ("sdxl", sizes.sdxl)):
        pipe = pipes[family].to(device=device, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        out[f"txt2img {family}"] = median_time(lambda: pipe(PROMPT, height=side, width=side, num_inference_steps=sizes.steps,
                                                            guidance_scale=7.0, generator=generator()).images, repeat, sync)
        if family == "sdxl":
            pipes[family] = pipe.to("cpu")
    canvas, mask = canvas_and_mask(sizes)
    inpaint = StableDiffusionInpaintPipeline.from_pipe(pipes["sd15"])
    inpaint.set_progress_bar_config(disable=True)

    def only_masked() -> Any:
        # What a diffusers user does: PIL images of the canvas; padding_mask_crop crops and pastes back.
        return inpaint(PROMPT, image=Image.fromarray(canvas[..., :3]), mask_image=Image.fromarray(mask), strength=0.75,
                       num_inference_steps=sizes.steps, padding_mask_crop=32, height=sizes.sd15, width=sizes.sd15,
                       generator=generator()).images

    out["inpaint only masked"] = median_time(only_masked, repeat, sync)
    pipes["sd15"].to("cpu")
    if upscaler is not None:
        model = upscaler.to(device).eval()
        x = torch.from_numpy(canvas[:sizes.upscale_in, :sizes.upscale_in, :3].copy()).permute(2, 0, 1)[None].float().div(255)

        def upscale() -> Any:
            with torch.inference_mode():
                return model(x.to(device)).clamp(0, 1).mul(255).round().byte().cpu()

        out["upscale 4x"] = median_time(upscale, repeat, sync)
        upscaler.to("cpu")
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def server_runs(server: Any, sizes: Sizes, repeat: int, has_upscaler: bool) -> tuple[dict[str, float], dict[str, float], Any]:
    """Median job time (submit to result) and the first job (with the model load) per case."""
    from paintwire.protocol import Client, JobRequest, PixelFormat, raw_image

    canvas, mask = canvas_and_mask(sizes)
    small = canvas[:sizes.upscale_in, :sizes.upscale_in].copy()
    common = {"prompt": PROMPT, "steps": sizes.steps, "cfg_scale": 7.0, "scheduler": "euler", "seed": 1}
    cases: dict[str, JobRequest] = {
        "txt2img sd15": JobRequest("diffusers", "txt2img", model="sd15", params={**common, "width": sizes.sd15, "height": sizes.sd15}),
        "txt2img sdxl": JobRequest("diffusers", "txt2img", model="sdxl", params={**common, "width": sizes.sdxl, "height": sizes.sdxl}),
        "inpaint only masked": JobRequest(
            "diffusers", "inpaint", raw_image(sizes.canvas, sizes.canvas, PixelFormat.RGBA8, canvas.tobytes()),
            raw_image(sizes.canvas, sizes.canvas, PixelFormat.L8, mask.tobytes()), model="sd15",
            params={**common, "inpaint_area": "only_masked", "padding": 32, "mask_blur": 0, "strength": 0.75}),
    }
    if has_upscaler:
        cases["upscale 4x"] = JobRequest("diffusers", "upscale", raw_image(sizes.upscale_in, sizes.upscale_in, PixelFormat.RGBA8, small.tobytes()),
                                         params={"upscaler": "esrgan-x4", "scale": 4.0, "refine": False})
    medians: dict[str, float] = {}
    first: dict[str, float] = {}
    with Client(server.url, name="gpu-e2e") as client:
        device = client.capabilities.engine("diffusers").device
        for name, request in cases.items():
            start = time.perf_counter()
            client.run(request)
            first[name] = time.perf_counter() - start
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                client.run(request)
                times.append(time.perf_counter() - start)
            medians[name] = statistics.median(times)
            print(f"  server {name}: {ms(medians[name])}", flush=True)
    return medians, first, device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", "--tiny", action="store_true", help="tiny models on the CPU: checks the script, measures nothing useful")
    parser.add_argument("--repeat", type=int, default=3, help="timed jobs per case and path, after one warm-up")
    parser.add_argument("--steps", type=int, help="denoising steps (default 20; 2 with --smoke)")
    parser.add_argument("--requirements", action="store_true", help="print the pins to carry as wheels to a GPU machine, and exit")
    args = parser.parse_args()
    if args.requirements:
        print("\n".join(requirements()))
        return 0
    try:
        import torch
    except ImportError as exc:
        print(f"gpu_e2e: needs torch and diffusers ({exc}); install paintwire[diffusers]. Skipped.")
        return 0
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()  # random weights: no "weights missing" notes, no progress bars
    transformers.logging.set_verbosity_error()
    sizes = SMOKE if args.smoke else FULL
    if args.steps:
        sizes = Sizes(**{**sizes.__dict__, "steps": args.steps})
    if args.smoke:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        print(f"gpu_e2e: no CUDA device here ({machine()}; torch {torch.__version__}). Skipped: run it on a machine with a GPU, or --smoke.")
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paintwire-gpu-e2e-") as tmp:
        root = Path(tmp)
        models = root / "models"
        pipes = {family: build_pipeline(torch, family, models / family, args.smoke, device) for family in ("sd15", "sdxl")}
        upscaler = build_upscaler(torch, models / "upscalers" / "esrgan-x4.safetensors", args.smoke)
        for pipe in pipes.values():
            pipe.to("cpu")
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"models built in {time.perf_counter() - started:.0f} s", flush=True)

        # The server first, to learn the dtype it chose; the direct path then uses the same.
        server = start_server_process(model_dirs=[str(models)], engines=["diffusers"], device=device.type,
                                      previews_per_second=0.0)
        try:
            served, first, info = server_runs(server, sizes, args.repeat, upscaler is not None)
        finally:
            code = server.stop()
        if code != 0:
            print(server.log())
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[info.dtype]
        direct = direct_runs(torch, pipes, upscaler, sizes, device, dtype, args.repeat)

    device_name = info.summary() + f", torch {torch.__version__}" + (f", CUDA {torch.version.cuda}" if torch.version.cuda else "")
    labels = {
        "txt2img sd15": f"txt2img SD1.5-size {sizes.sd15}x{sizes.sd15}, {sizes.steps} steps",
        "txt2img sdxl": f"txt2img SDXL-size {sizes.sdxl}x{sizes.sdxl}, {sizes.steps} steps",
        "inpaint only masked": f"inpaint only masked, {sizes.hole}px hole on {sizes.canvas}x{sizes.canvas}, {int(sizes.steps * 0.75)} steps",
        "upscale 4x": f"upscale 4x ESRGAN, {sizes.upscale_in}x{sizes.upscale_in} -> {4 * sizes.upscale_in}x{4 * sizes.upscale_in}",
    }
    rows = []
    for case, label in labels.items():
        if case not in served:
            rows.append((label, "skipped: spandrel not installed", "-", "-", "-", info.name))
            continue
        rows.append((label, ms(direct[case]), ms(served[case]), ratio(served[case], direct[case]), ms(first[case]), info.name))
    print(f"\ndevice: {device_name}\nmachine: {machine()}\ntotal time: {time.perf_counter() - started:.0f} s")
    table(f"Whole jobs, median of {args.repeat}, {info.dtype} ({device_name})",
          ["case", "diffusers directly", "through the server", "server vs direct", "first job (with any model load)", "device"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
