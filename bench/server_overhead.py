"""Server overhead: one job through the real `paintwire serve` against the same
work called directly in process; time from submit to the first progress event;
the cost of live previews as a share of a step.

With the diffusers engine available, the job is a tiny SD1.5-shaped pipeline
(tests/fixtures/tiny_models.py: real architecture, random weights, built here
in a temporary folder), txt2img at 64x64, Euler; the direct call is the same
diffusers pipeline loaded from the same folder. Without it (``--engine
classical``, or when diffusers is not installed) the job is a classical
"fill" inpaint, whose passes are its steps.

    ./run bench server_overhead                  # diffusers when installed, else classical
    ./run bench server_overhead --engine classical
    ./run bench server_overhead --steps 20 --repeat 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import machine, median_of, ms, ratio, start_server_process, table
from paintwire.protocol import Client, JobRequest, Preview, Progress, Queued, Started, encode, raw_image
from paintwire.server.imaging import array_to_payload
from paintwire.protocol.rect import Rect
from paintwire.server.runner import _shrink


def served(client: Client, request: JobRequest, repeat: int, warmup: bool = True) -> dict[str, float]:
    """Median times from submit to queued, started, first progress, first preview and result."""
    marks: dict[str, list[float]] = {k: [] for k in ("queued", "started", "progress", "preview", "result")}
    if warmup:
        client.run(request, timeout=300)  # model load, first allocations
    for _ in range(repeat):
        seen: dict[str, float] = {}
        start = time.perf_counter()

        def on_event(message: Any) -> None:
            for name, kind in (("queued", Queued), ("started", Started), ("progress", Progress), ("preview", Preview)):
                if isinstance(message, kind) and name not in seen:
                    seen[name] = time.perf_counter() - start

        client.run(request, on_event=on_event, timeout=300)
        seen["result"] = time.perf_counter() - start
        for name, value in seen.items():
            marks[name].append(value)
    return {k: statistics.median(v) for k, v in marks.items() if v}


def preview_path_cost(rgba: np.ndarray, box: Rect, repeat: int = 20) -> float:
    """What the server does for one preview once it has RGB pixels: shrink, payload, msgpack."""
    from paintwire.protocol import Preview as PreviewMessage

    def once() -> None:
        encode(PreviewMessage("j", array_to_payload(_shrink(rgba)), box.x, box.y, box.width, box.height))

    return median_of(once, repeat)


# --- diffusers ----------------------------------------------------------------------------


def diffusers_case(args: argparse.Namespace) -> list[tuple]:
    import torch
    from diffusers import StableDiffusionPipeline

    from fixtures import tiny_models
    from paintwire.server.engines.base import JobContext
    from paintwire.server.engines.diffusion.previews import PreviewMaker

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the servers started below inherit it
    tmp = Path(tempfile.mkdtemp(prefix="paintwire-bench-"))
    folder = tiny_models.build_tiny_sd15(tmp / "checkpoints" / tiny_models.SD15)
    side, steps = args.size, args.steps

    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    step_times: list[float] = []
    first_steps: list[float] = []

    def direct() -> float:
        marks: list[float] = []
        start = time.perf_counter()

        def on_step(p: Any, i: int, t: Any, kw: dict) -> dict:
            marks.append(time.perf_counter() - start)
            return kw

        pipe("a red house by the sea", num_inference_steps=steps, height=side, width=side, guidance_scale=7.0,
             generator=torch.Generator().manual_seed(1), output_type="np", callback_on_step_end=on_step)
        step_times.extend(np.diff(marks))
        first_steps.append(marks[0])
        return time.perf_counter() - start

    request = JobRequest("diffusers", "txt2img", model=tiny_models.SD15, params={
        "prompt": "a red house by the sea", "steps": steps, "width": side, "height": side, "cfg_scale": 7.0, "seed": 1, "scheduler": "euler"})
    # Both servers run side by side and the three ways take turns, so that a
    # busy moment of the machine hits all of them alike.
    servers = {rate: start_server_process(model_dirs=[str(tmp)], engines=["diffusers"], previews_per_second=rate) for rate in (0.0, 1000.0)}
    try:
        clients = {rate: Client(srv.url, name="bench-overhead") for rate, srv in servers.items()}
        for c in clients.values():
            c.connect()
        direct()
        results: dict[Any, list[dict[str, float]]] = {"direct": [], 0.0: [], 1000.0: []}
        for _ in range(args.repeat):
            results["direct"].append({"result": direct()})
            for rate, c in clients.items():
                results[rate].append(served(c, request, 1, warmup=not results[rate]))
        for c in clients.values():
            c.close()
    finally:
        for srv in servers.values():
            srv.stop()
    med = {k: {m: statistics.median(r[m] for r in v if m in r) for m in v[0]} for k, v in results.items()}
    t_direct, t_off, t_on = med["direct"]["result"], med[0.0]["result"], med[1000.0]["result"]
    step_time = statistics.median(step_times)
    rows = [(f"diffusers pipeline called directly ({steps} steps, {side}x{side})", ms(t_direct), "1.00x", "-", "-", ms(statistics.median(first_steps)), "-")]
    for rate, label in ((0.0, "previews off"), (1000.0, "previews every step")):
        t = med[rate]
        rows.append((f"through the server, {label}", ms(t["result"]), ratio(t["result"], t_direct), ms(t["queued"]), ms(t["started"]),
                     ms(t["progress"]), ms(t["preview"]) if "preview" in t else "-"))

    # Previews: the engine's projection of the latents plus the server's shrink and encode.
    def preview_cost(latent_side: int, box_side: int) -> float:
        box = Rect(0, 0, box_side, box_side)
        sink_cost: list[float] = []
        ctx = JobContext(on_preview=lambda rgba, b: sink_cost.append(preview_path_cost(rgba, b, 3)), previews_per_second=1e9)
        maker = PreviewMaker(ctx, box, "sd15")
        latents = torch.randn(1, 4, latent_side, latent_side)
        return median_of(lambda: maker.offer(latents), 10)

    latent = side // (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    p_tiny = preview_cost(latent, side)
    p_512, p_1024 = preview_cost(64, 512), preview_cost(128, 1024)
    shares = [
        ("tiny pipeline step (direct, median)", ms(step_time), "-"),
        (f"one preview at the tiny job's size ({latent}x{latent} latents -> {side}x{side})", ms(p_tiny), f"{p_tiny / step_time:.1%} of a tiny step"),
        ("one preview, SD1.5 at 512 (64x64 latents -> 256 px sent)", ms(p_512), "compare with a GPU step"),
        ("one preview, SDXL at 1024 (128x128 latents -> 256 px sent)", ms(p_1024), "compare with a GPU step"),
        ("job time, previews every step vs off (through the server)", f"{ms(t_on)} vs {ms(t_off)}", f"{(t_on - t_off) / steps / step_time:+.1%} of a step per step"),
    ]
    return rows, shares, f"diffusers, tiny SD1.5-shaped pipeline, txt2img {side}x{side}, {steps} steps, Euler, {args.threads} torch thread(s)"


# --- classical ----------------------------------------------------------------------------


def classical_case(args: argparse.Namespace) -> list[tuple]:
    from paintwire.server.engines.base import EngineJob, JobContext
    from paintwire.server.engines.classical import FILL_PASSES, ClassicalEngine

    side = max(args.size, 512)
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (side, side, 4), dtype=np.uint8)
    image[..., 3] = 255
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 255
    params = {"method": "fill", "radius": 5, "mask_blur": 4, "mask_blur_outward": False, "invert_mask": False, "padding": 32}
    engine = ClassicalEngine()
    marks: list[float] = []

    def direct() -> None:
        marks.clear()
        start = time.perf_counter()
        engine.run(EngineJob("d", "inpaint", params, image, mask), JobContext(on_progress=lambda update: marks.append(time.perf_counter() - start)))

    t_direct = median_of(direct, args.repeat)
    step_time = statistics.median(np.diff(marks)) if len(marks) > 1 else t_direct / FILL_PASSES
    request = JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image.tobytes()), raw_image(side, side, "l8", mask.tobytes()), params={"method": "fill"})
    server = start_server_process()
    try:
        with Client(server.url, name="bench-overhead") as client:
            t = served(client, request, args.repeat)
    finally:
        server.stop()
    rows = [
        (f"classical fill called directly ({FILL_PASSES} passes, {side}x{side})", ms(t_direct), "1.00x", "-", "-", ms(marks[0]), "-"),
        ("through the server (previews: the classical engine sends none)", ms(t["result"]), ratio(t["result"], t_direct), ms(t["queued"]), ms(t["started"]), ms(t["progress"]), "-"),
    ]
    area = Rect(0, 0, side // 2 + 64, side // 2 + 64)
    p = preview_path_cost(np.zeros((area.height, area.width, 4), np.uint8), area)
    shares = [
        ("fill pass (a step), direct", ms(step_time), "-"),
        (f"server's part of one preview of the {area.width}x{area.height} work area (shrink, payload, msgpack)", ms(p), f"{p / step_time:.1%} of a step"),
    ]
    return rows, shares, f"classical engine, fill inpaint {side}x{side}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("auto", "diffusers", "classical"), default="auto")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="image side for the diffusers job")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, here and in the server (default 1: steady on a small shared machine)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    engine = args.engine
    if engine == "auto":
        try:
            import diffusers  # noqa: F401

            from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: F401
            engine = "diffusers"
        except ImportError as exc:
            print(f"diffusers engine not available ({exc}); measuring with the classical engine")
            engine = "classical"
    case: Callable = diffusers_case if engine == "diffusers" else classical_case
    rows, shares, what = case(args)
    table(f"Server overhead: {what} (median of {args.repeat}; times from submit)",
          ["path", "job", "vs direct", "queued", "started", "first progress", "first preview"], rows)
    table("Preview cost", ["what", "time", "share"], shares)


if __name__ == "__main__":
    main()
