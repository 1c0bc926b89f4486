"""Server overhead: one job through the real `paintwire serve` against the same
work called directly in process; time from submit to the first progress event;
the cost of live previews as a share of a step.

With the diffusers engine available, the jobs are txt2img, Euler, on two
models with random weights built here in a temporary folder: a tiny
SD1.5-shaped pipeline (tests/fixtures/tiny_models.py) at 64x64, and a small
one with SD1.5's shapes (64x64 latents) at 512x512. Each is run four ways,
taking turns: the diffusers engine called directly in this process (the
baseline: the work the server's engine does, without the server), the bare
diffusers pipeline, and a job through each of two real servers (previews off,
previews every step). Without diffusers (``--engine classical``, or when it
is not installed) the job is a classical "fill" inpaint, whose passes are its
steps.

    ./run bench server_overhead                  # diffusers when installed, else classical
    ./run bench server_overhead --engine classical
    ./run bench server_overhead --steps 20 --repeat 9 --small-steps 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import build_small_sd15, machine, median_of, ms, ratio, start_server_process, table
from paintwire.protocol import Client, JobRequest, Preview, Progress, Queued, Started, encode, raw_image
from paintwire.server.imaging import array_to_payload
from paintwire.protocol.rect import Rect
from paintwire.server.runner import _shrink

PROMPT = "a red house by the sea"


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


@dataclass(frozen=True)
class Shape:
    name: str  # the model's folder, so its name in the server
    what: str
    side: int
    steps: int


def diffusers_case(args: argparse.Namespace) -> list[tuple]:
    import torch

    from fixtures import tiny_models

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the servers started below inherit it
    tmp = Path(tempfile.mkdtemp(prefix="paintwire-bench-"))
    shapes = [Shape(tiny_models.SD15, "tiny SD1.5-shaped pipeline", args.size, args.steps)]
    tiny_models.build_tiny_sd15(tmp / "checkpoints" / tiny_models.SD15)
    if args.small_steps > 0:
        shapes.append(Shape("small-sd15", "small SD1.5-shaped pipeline (64x64 latents)", 512, args.small_steps))
        build_small_sd15(tmp / "checkpoints" / "small-sd15")
    # Both servers run side by side and the four ways take turns, so that a
    # busy moment of the machine hits all of them alike.
    servers = {rate: start_server_process(model_dirs=[str(tmp)], engines=["diffusers"], device="cpu", previews_per_second=rate) for rate in (0.0, 1000.0)}
    direct = DirectEngine(tmp)
    rows: list[tuple] = []
    shares: list[tuple] = []
    try:
        clients = {rate: Client(srv.url, name="bench-overhead") for rate, srv in servers.items()}
        for c in clients.values():
            c.connect()
        for shape in shapes:
            rows += compare(shape, tmp / "checkpoints" / shape.name, direct, clients, args.repeat, shares if shape is shapes[0] else None)
        for c in clients.values():
            c.close()
    finally:
        direct.close()
        for srv in servers.values():
            srv.stop()
    return rows, shares, f"diffusers, txt2img, Euler, {args.threads} torch thread(s), CPU, taking turns"


class DirectEngine:
    """The diffusers engine in this process, on the same model folders as the servers'."""

    def __init__(self, models: Path) -> None:
        from paintwire.server.config import DeviceConfig, ModelsConfig
        from paintwire.server.engines.diffusion import DiffusersEngine

        self.engine = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[models]))
        self.spec = next(m for m in self.engine.modes() if m.name == "txt2img")

    def run(self, request: JobRequest) -> float:
        """Seconds of the engine's run on ``request``'s job, timed as the server's runner times it."""
        from paintwire.protocol import validate_params
        from paintwire.server.engines.base import EngineJob, JobContext

        job = EngineJob("bench", "txt2img", validate_params(self.spec.params, request.params), model=request.model)
        start = time.perf_counter()
        self.engine.run(job, JobContext())
        return time.perf_counter() - start

    def close(self) -> None:
        self.engine.close()


def compare(shape: Shape, folder: Path, direct: DirectEngine, clients: dict[float, Client], repeat: int, shares: list[tuple] | None) -> list[tuple]:
    """The same txt2img four ways, taking turns: the engine and the bare pipeline called
    in this process, and a job through each server (previews off, previews every step)."""
    import torch
    from diffusers import StableDiffusionPipeline

    side, steps = shape.side, shape.steps
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    step_times: list[float] = []
    first_steps: list[float] = []

    def pipeline() -> float:
        marks: list[float] = []
        start = time.perf_counter()

        def on_step(p: Any, i: int, t: Any, kw: dict) -> dict:
            marks.append(time.perf_counter() - start)
            return kw

        pipe(PROMPT, num_inference_steps=steps, height=side, width=side, guidance_scale=7.0,
             generator=torch.Generator().manual_seed(1), output_type="np", callback_on_step_end=on_step)
        step_times.extend(np.diff(marks))
        first_steps.append(marks[0])
        return time.perf_counter() - start

    request = JobRequest("diffusers", "txt2img", model=shape.name, params={
        "prompt": PROMPT, "steps": steps, "width": side, "height": side, "cfg_scale": 7.0, "seed": 1, "scheduler": "euler"})
    pipeline()
    direct.run(request)
    results: dict[Any, list[dict[str, float]]] = {"engine": [], "pipeline": [], 0.0: [], 1000.0: []}
    for _ in range(repeat):
        results["engine"].append({"result": direct.run(request)})
        results["pipeline"].append({"result": pipeline()})
        for rate, c in clients.items():
            results[rate].append(served(c, request, 1, warmup=not results[rate]))
    med = {k: {m: statistics.median(r[m] for r in v if m in r) for m in v[0]} for k, v in results.items()}
    low = {k: min(r["result"] for r in v) for k, v in results.items()}
    t_engine = med["engine"]["result"]
    what = f"{shape.what}, {side}x{side}, {steps} steps"
    rows = [
        (what, "engine called directly", ms(t_engine), "1.00x", "1.00x", "-", "-", "-", "-"),
        (what, "diffusers pipeline called directly", ms(med["pipeline"]["result"]), ratio(med["pipeline"]["result"], t_engine),
         ratio(low["pipeline"], low["engine"]), "-", "-", ms(statistics.median(first_steps)), "-"),
    ]
    for rate, label in ((0.0, "previews off"), (1000.0, "previews every step")):
        t = med[rate]
        rows.append((what, f"through the server, {label}", ms(t["result"]), ratio(t["result"], t_engine), ratio(low[rate], low["engine"]),
                     ms(t["queued"]), ms(t["started"]), ms(t["progress"]), ms(t["preview"]) if "preview" in t else "-"))
    if shares is not None:
        shares += preview_shares(pipe, side, steps, statistics.median(step_times), med[1000.0]["result"], med[0.0]["result"])
    return rows


def preview_shares(pipe: Any, side: int, steps: int, step_time: float, t_on: float, t_off: float) -> list[tuple]:
    """Previews: the engine's projection of the latents plus the server's shrink and encode."""
    import torch

    from paintwire.server.engines.base import JobContext
    from paintwire.server.engines.diffusion.families import family_named
    from paintwire.server.engines.diffusion.previews import PreviewMaker

    def preview_cost(latent_side: int, box_side: int) -> float:
        box = Rect(0, 0, box_side, box_side)
        ctx = JobContext(on_preview=lambda rgba, b: preview_path_cost(rgba, b, 3), previews_per_second=1e9)
        maker = PreviewMaker(ctx, box, family_named("sd15"))
        latents = torch.randn(1, 4, latent_side, latent_side)
        return median_of(lambda: maker.offer(latents), 10)

    latent = side // (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    p_tiny = preview_cost(latent, side)
    p_512, p_1024 = preview_cost(64, 512), preview_cost(128, 1024)
    return [
        ("tiny pipeline step (direct, median)", ms(step_time), "-"),
        (f"one preview at the tiny job's size ({latent}x{latent} latents -> {side}x{side})", ms(p_tiny), f"{p_tiny / step_time:.1%} of a tiny step"),
        ("one preview, SD1.5 at 512 (64x64 latents -> 256 px sent)", ms(p_512), "compare with a GPU step"),
        ("one preview, SDXL at 1024 (128x128 latents -> 256 px sent)", ms(p_1024), "compare with a GPU step"),
        ("job time, previews every step vs off (through the server)", f"{ms(t_on)} vs {ms(t_off)}", f"{(t_on - t_off) / steps / step_time:+.1%} of a step per step"),
    ]


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
        (f"classical fill, {side}x{side}, {FILL_PASSES} passes", "engine called directly", ms(t_direct), "1.00x", "-", "-", "-", ms(marks[0]), "-"),
        (f"classical fill, {side}x{side}, {FILL_PASSES} passes", "through the server (the classical engine sends no previews)", ms(t["result"]),
         ratio(t["result"], t_direct), "-",
         ms(t["queued"]), ms(t["started"]), ms(t["progress"]), "-"),
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
    parser.add_argument("--size", type=int, default=64, help="image side for the tiny model's job")
    parser.add_argument("--small-steps", type=int, default=2, help="steps of the 512x512 job on the small SD1.5-shaped model (0: skip it)")
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
          ["job", "path", "time", "vs engine directly, median", "min", "queued", "started", "first progress", "first preview"], rows)
    table("Preview cost", ["what", "time", "share"], shares)


if __name__ == "__main__":
    main()
