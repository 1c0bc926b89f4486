"""Flux on a GPU: whole jobs through the real server against diffusers called directly,
in the same run, on the same card, at real size with random weights (the compute does
not depend on the weight values).

Cases:
  Flux.2 Klein 4B   1024x1024, 4 steps (distilled: no guidance pass)
  Flux.1-dev        1024x1024, 20 steps (guidance distilled into the model)

Each model runs twice: with the card's whole memory, and again with the server held to
--budget GiB (default 12: a 12 GB card) so that it follows its memory plan for such a
card (fp8 or NF4 transformer, blocks streamed, text encoders freed or streamed: the
plan is printed from the server's start-up summary). The direct path under the budget
uses diffusers' own advice for small cards, model CPU offload, and reports its peak.
Each job has a prompt of its own, so neither path reuses a prompt's conditioning.
Row values: the median of --repeat jobs after one warm-up.

    python bench/gpu_flux.py                  # on a machine with a CUDA GPU of 24 GB or more (about 10 minutes)
    python bench/gpu_flux.py --budget 0       # the whole card only
    python bench/gpu_flux.py --smoke          # tiny models on the CPU: checks the script, measures nothing useful
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from _common import machine, ms, ratio, start_server_process, table

PROMPT = "a lighthouse on a cliff at dusk, oil painting"


@dataclass(frozen=True)
class Case:
    name: str  # the model's folder name, what jobs send as model
    label: str
    side: int
    steps: int
    guidance: float


FULL = (Case("klein-4b", "Flux.2 Klein 4B", 1024, 4, 1.0), Case("flux1-dev", "Flux.1-dev", 1024, 20, 3.5))
SMOKE = (Case("klein-4b", "tiny Klein", 64, 2, 1.0), Case("flux1-dev", "tiny Flux.1", 64, 2, 3.5))


# --- models with random weights ------------------------------------------------------------


def build(torch: Any, name: str, smoke: bool, device: Any) -> Any:
    """A pipeline of ``name`` at real size (random weights, made on ``device``: seconds,
    not minutes), or the tests' tiny one with ``smoke``."""
    from fixtures import tiny_flux

    if smoke:
        pipe = tiny_flux.build_flux2_klein("distilled") if name == "klein-4b" else tiny_flux.build_flux("dev")
        return pipe
    import diffusers
    import transformers
    from fixtures import real_sizes as real
    from fixtures import tiny_models

    torch.manual_seed(0)
    with torch.device(device):
        if name == "klein-4b":
            tokenizer = tiny_flux.qwen3_tokenizer()  # byte-level, Qwen's special tokens: any text, no download
            qwen = transformers.Qwen3Config(**real.QWEN3["4b"], pad_token_id=tokenizer.pad_token_id)
            return diffusers.Flux2KleinPipeline(
                scheduler=tiny_flux.klein_scheduler(), vae=diffusers.AutoencoderKLFlux2(),
                text_encoder=transformers.Qwen3ForCausalLM(qwen), tokenizer=tokenizer,
                transformer=diffusers.Flux2Transformer2DModel(**real.KLEIN_TRANSFORMERS["4b"]), is_distilled=True)
        clip_tokenizer = tiny_models._tokenizer(Path(tempfile.mkdtemp(prefix="paintwire-clip-")))  # byte-level: any text
        vocab = clip_tokenizer.get_vocab()
        clip = transformers.CLIPTextConfig(**{**real.CLIP_L, "bos_token_id": vocab["<|startoftext|>"],
                                              "eos_token_id": vocab["<|endoftext|>"], "pad_token_id": vocab["<|endoftext|>"]})
        return diffusers.FluxPipeline(
            scheduler=tiny_flux.flux_scheduler("dev"), vae=diffusers.AutoencoderKL(**real.FLUX1_VAE),
            text_encoder=transformers.CLIPTextModel(clip), tokenizer=clip_tokenizer,
            text_encoder_2=transformers.T5EncoderModel(transformers.T5Config(**real.T5_XXL)), tokenizer_2=tiny_flux.t5_tokenizer(),
            transformer=diffusers.FluxTransformer2DModel(**real.FLUX1_DEV_TRANSFORMER))


# --- the two paths ---------------------------------------------------------------------------------


def median_time(fn: Callable[[int], Any], repeat: int, sync: Callable[[], None]) -> float:
    fn(0)  # warm-up
    sync()
    times = []
    for i in range(1, repeat + 1):
        start = time.perf_counter()
        fn(i)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def direct(torch: Any, pipe: Any, case: Case, device: Any, dtype: Any, repeat: int, offload: bool) -> tuple[float, int]:
    """Median seconds of ``pipe`` called directly, and its peak device memory (0 on the CPU)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    pipe.to(dtype=dtype)
    if offload and device.type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run(i: int) -> Any:
        return pipe(prompt=f"{PROMPT}, take {i}", height=case.side, width=case.side, num_inference_steps=case.steps,
                    guidance_scale=case.guidance, generator=torch.Generator("cpu").manual_seed(1), output_type="np").images

    seconds = median_time(run, repeat, sync)
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else 0
    if offload and device.type == "cuda":
        pipe.remove_all_hooks()
    pipe.to("cpu")
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return seconds, peak


def served(models: Path, cases: tuple[Case, ...], device: Any, repeat: int, budget: float) -> tuple[dict[str, float], dict[str, float], Any, list[str]]:
    """Median job seconds and the first job (with the model load) per case, through a server
    held to ``budget`` GiB (0: the card's free memory); and its start-up summary's memory lines."""
    from paintwire.protocol import Client, JobRequest

    server = start_server_process(model_dirs=[str(models)], engines=["diffusers"], device=device.type, previews_per_second=0.0,
                                  memory_budget_gb=budget or None)
    medians: dict[str, float] = {}
    first: dict[str, float] = {}
    try:
        with Client(server.url, name="gpu-flux") as client:
            info = client.capabilities.engine("diffusers").device
            for case in cases:
                def job(i: int) -> JobRequest:
                    return JobRequest("diffusers", "txt2img", model=case.name,
                                      params={"prompt": f"{PROMPT}, take {i}", "steps": case.steps, "cfg_scale": case.guidance,
                                              "seed": 1, "width": case.side, "height": case.side})
                start = time.perf_counter()
                client.run(job(0), timeout=1800)
                first[case.name] = time.perf_counter() - start
                times = []
                for i in range(1, repeat + 1):
                    start = time.perf_counter()
                    client.run(job(i), timeout=1800)
                    times.append(time.perf_counter() - start)
                medians[case.name] = statistics.median(times)
                print(f"  server ({f'{budget:g} GiB' if budget else 'whole card'}) {case.label}: {ms(medians[case.name])}", flush=True)
        # The start-up summary's plan of each model (printed just after the server became ready).
        plans = [line.split("memory:", 1)[1].strip() for line in server.output if "  memory: " in line]
    finally:
        code = server.stop()
        if code != 0:
            print(server.log())
    return medians, first, info, plans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", "--tiny", action="store_true", help="tiny models on the CPU: checks the script, measures nothing useful")
    parser.add_argument("--repeat", type=int, default=3, help="timed jobs per case and path, after one warm-up (default 3)")
    parser.add_argument("--budget", type=float, default=12.0,
                        help="GiB the server may use in the second round, as on a smaller card (default 12; 0: no second round)")
    parser.add_argument("--models", default="klein-4b,flux1-dev", help="which of klein-4b, flux1-dev (default both)")
    args = parser.parse_args()
    try:
        import torch
    except ImportError as exc:
        print(f"gpu_flux: needs torch and diffusers ({exc}); install paintwire[diffusers].", file=sys.stderr)
        return 2
    if not args.smoke and not torch.cuda.is_available():
        print(f"gpu_flux: refused: no CUDA device here ({machine()}; torch {torch.__version__}). Real-size Flux needs an NVIDIA "
              "card with 24 GB or more (Flux.1-dev in bf16 is 34 GB with its T5); run it on such a machine, or --smoke here.",
              file=sys.stderr)
        return 2
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()  # random weights: no "weights missing" notes, no progress bars
    transformers.logging.set_verbosity_error()
    wanted = set(args.models.split(","))
    cases = tuple(c for c in (SMOKE if args.smoke else FULL) if c.name in wanted)
    device = torch.device("cpu" if args.smoke else "cuda")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="paintwire-gpu-flux-") as tmp:
        models = Path(tmp) / "models"
        pipes = {}
        for case in cases:
            pipe = build(torch, case.name, args.smoke, device)
            pipe.to(torch.float32 if args.smoke else torch.bfloat16).save_pretrained(models / case.name, safe_serialization=True)
            pipes[case.name] = pipe.to("cpu")
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(f"models built and saved in {time.perf_counter() - started:.0f} s", flush=True)
        rounds = [0.0] + ([args.budget] if args.budget > 0 else [])
        for budget in rounds:
            medians, first, info, plans = served(models, cases, device, args.repeat, budget)
            for line in plans:
                print(f"  server plan ({f'{budget:g} GiB' if budget else 'whole card'}): {line}")
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[info.dtype]
            for case in cases:
                seconds, peak = direct(torch, pipes[case.name], case, device, dtype, args.repeat, offload=budget > 0)
                how = "model CPU offload" if budget > 0 and device.type == "cuda" else "pipe.to(device)"
                rows.append((f"{case.label} {case.side}x{case.side}, {case.steps} steps", f"{budget:g} GiB" if budget else "whole card",
                             f"{ms(seconds)} ({how}{f', peak {peak / 2**30:.1f} GiB' if peak else ''})", ms(medians[case.name]),
                             ratio(medians[case.name], seconds), ms(first[case.name]), info.name))
    device_name = info.summary() + f", torch {torch.__version__}" + (f", CUDA {torch.version.cuda}" if torch.version.cuda else "")
    print(f"\ndevice: {device_name}\nmachine: {machine()}\ntotal time: {time.perf_counter() - started:.0f} s")
    table(f"Flux whole jobs, median of {args.repeat}, {info.dtype} ({device_name})",
          ["case", "server memory", "diffusers directly", "through the server", "server vs direct", "first job (with the load)", "device"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
