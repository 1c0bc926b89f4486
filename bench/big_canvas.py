"""Big canvas: inpainting a small region of a big canvas costs about what the
region costs, because the server works on the mask's bounds plus padding
("only masked") and sends back a layer of that size only.

Measured in the same run, with the classical engine (telea and fill) and,
when it is installed, the diffusers engine with a tiny SD1.5-shaped inpainting
model (tests/fixtures/tiny_models.py, built here), sent as the plug-ins send it:
built by the plug-ins' own request builder (paintwire.hostkit) from
the selection and the mode's defaults only, so the server's default inpaint
area (region first) decides what it costs:
  region      the same 256x256 hole on a canvas just big enough for it and its padding
  big canvas  the hole on a 4096x4096 canvas
both in process (the engine call on decoded arrays) and through the real
`paintwire serve` (client bytes in, result layer out), with the transfer of
the big canvas alone measured right after each big-canvas job (a job refused
after decoding), so that "less the transfer" compares like with like.

    ./run bench big_canvas                  # 4096 canvas, 256 hole
    ./run bench big_canvas --canvas 8192 --hole 512 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine, median_of, ms, ratio, start_server_process, table, timed
from paintwire.protocol import Client, Error, JobRequest, PixelFormat, raw_image
from paintwire.hostkit.request import JobSettings, build_request
from paintwire.hostkit.snapshot import Snapshot
from paintwire.server.engines.base import EngineJob, JobContext
from paintwire.server.engines.classical import ClassicalEngine

PADDING = 32


def canvas(side: int, hole: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:side, 0:side]
    image = np.dstack([(x * 255 // side), (y * 255 // side), np.full((side, side), 128), np.full((side, side), 255)]).astype(np.uint8)
    image[..., :3] = np.clip(image[..., :3] + rng.normal(0, 4, (side, side, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((side, side), np.uint8)
    at = (side - hole) // 2
    mask[at: at + hole, at: at + hole] = 255
    return image, mask


def tiny_inpaint_model() -> tuple[Path, str] | None:
    """A tiny 9-channel SD1.5-shaped inpainting model in a temporary model folder,
    or None when the diffusers engine is not installed."""
    try:
        from fixtures import tiny_models

        from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: F401
    except ImportError as exc:
        print(f"diffusers engine not available ({exc}); classical engine only")
        return None
    root = Path(tempfile.mkdtemp(prefix="paintwire-bench-"))
    tiny_models.build_tiny_sd15(root / "checkpoints" / tiny_models.SD15_INPAINT, inpaint=True)
    return root, tiny_models.SD15_INPAINT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvas", type=int, default=4096)
    parser.add_argument("--hole", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-diffusers", action="store_true", help="classical engine only")
    parser.add_argument("--whole-side", type=int, default=1024, help="canvas side for the whole_picture comparison row")
    args = parser.parse_args()
    print(f"machine: {machine()}")

    region_side = args.hole + 2 * PADDING + 2 * 8  # the hole, its padding, and the mask blur's reach
    cases = {"region": canvas(region_side, args.hole), "big canvas": canvas(args.canvas, args.hole)}
    engine = ClassicalEngine()
    rows = []
    diffusers_model = None if args.no_diffusers else tiny_inpaint_model()
    extra = {"model_dirs": [str(diffusers_model[0])], "engines": ["classical", "diffusers"], "previews_per_second": 0.0} if diffusers_model else {}
    if diffusers_model:
        os.environ["OMP_NUM_THREADS"] = "1"  # steadier on a small shared machine; the server inherits it
    server = start_server_process(max_pixels=max(8192 * 8192, args.canvas**2), **extra)
    try:
        with Client(server.url, name="bench-big-canvas") as client:
            # The big canvas's transfer and decoding alone: a job refused once its pixels were read and checked.
            image, mask = cases["big canvas"]
            side = image.shape[0]
            refused = JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image.tobytes()), raw_image(side, side, "l8", mask.tobytes()),
                                 params={"radius": 0})

            def transfer() -> None:
                try:
                    client.run(refused, timeout=120)
                except Exception as exc:  # JobFailed(INVALID_PARAM), expected
                    assert isinstance(getattr(exc, "error", None), Error)

            transfers: list[float] = []

            def serve(request: JobRequest, big: bool, timeout: float) -> tuple[float, float, Any]:
                """Median job time, and median job time less the transfer of the same
                canvas measured right after it (pairs, so a busy moment hits both)."""
                results = [client.run(request, timeout=timeout)]  # warm-up
                whole, beyond = [], []
                for _ in range(args.repeat):
                    t, _ = timed(lambda: results.append(client.run(request, timeout=timeout)))
                    whole.append(t)
                    if big:
                        t_transfer, _ = timed(transfer)
                        transfers.append(t_transfer)
                        beyond.append(t - t_transfer)
                    else:
                        beyond.append(t)
                return statistics.median(whole), statistics.median(beyond), results[-1].layers[0]

            for method, params in (("telea", {"radius": 5}), ("fill", {})):
                params = {"method": method, **params}
                times = {}
                for name, (image, mask) in cases.items():
                    side = image.shape[0]
                    full = {"method": method, "radius": params.get("radius", 5), "mask_blur": 4, "mask_blur_outward": False, "invert_mask": False, "padding": PADDING}
                    direct = median_of(lambda: engine.run(EngineJob("b", "inpaint", full, image, mask), JobContext()), args.repeat)
                    request = JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image.tobytes()), raw_image(side, side, "l8", mask.tobytes()),
                                         params={**params, "padding": PADDING})
                    served, beyond, layer = serve(request, name == "big canvas", 120)
                    times[name] = (direct, served, beyond, layer)
                r_direct, r_served, _, _ = times["region"]
                for name, (direct, served, beyond, layer) in times.items():
                    side = cases[name][0].shape[0]
                    rows.append((method, f"{name} {side}x{side}", ms(direct), ratio(direct, r_direct), ms(served), ratio(served, r_served),
                                 ratio(beyond, r_served), f"{layer.image.width}x{layer.image.height} at ({layer.x}, {layer.y})"))

            if diffusers_model:
                times = {}
                # The panel's own choices only (prompt, steps, seed): everything else is the mode's default.
                settings = JobSettings("inpaint", "diffusers", diffusers_model[1], {"prompt": "a stone wall", "steps": 4, "seed": 1})
                for name, (image, mask) in cases.items():
                    side = image.shape[0]
                    snapshot = Snapshot(side, side, image.tobytes(), PixelFormat.RGBA8, selection=mask.tobytes())
                    request = build_request(snapshot, client.capabilities, settings)
                    assert "inpaint_area" not in request.params  # the server's default decides
                    times[name] = serve(request, name == "big canvas", 300)
                r_served = times["region"][0]
                for name, (served, beyond, layer) in times.items():
                    side = cases[name][0].shape[0]
                    rows.append(("diffusers tiny SD1.5 inpaint, 4 steps, plug-in defaults", f"{name} {side}x{side}", "-", "-", ms(served),
                                 ratio(served, r_served), ratio(beyond, r_served), f"{layer.image.width}x{layer.image.height} at ({layer.x}, {layer.y})"))
                # What whole_picture (the former default) costs, on a canvas 16 times smaller than the big one.
                side = min(args.canvas, args.whole_side)
                image, mask = canvas(side, args.hole)
                snapshot = Snapshot(side, side, image.tobytes(), PixelFormat.RGBA8, selection=mask.tobytes())
                whole = build_request(snapshot, client.capabilities, JobSettings("inpaint", "diffusers", diffusers_model[1],
                                                                                      {**settings.params, "inpaint_area": "whole_picture"}))
                served, _, layer = serve(whole, False, 600)
                rows.append(("diffusers tiny SD1.5 inpaint, 4 steps, whole_picture", f"canvas {side}x{side}", "-", "-", ms(served),
                             ratio(served, r_served), "-", f"{layer.image.width}x{layer.image.height} at ({layer.x}, {layer.y})"))
            rows.append(("-", f"transfer + decode only, {args.canvas}x{args.canvas}", "-", "-", ms(statistics.median(transfers)), "-", "-", "(refused job, median)"))
    finally:
        server.stop()
    table(f"Big canvas: a {args.hole}x{args.hole} inpaint, region first (padding {PADDING}) (median of {args.repeat})",
          ["method", "canvas", "engine in process", "vs region", "through the server", "vs region", "vs region, less the transfer", "result layer"], rows)


if __name__ == "__main__":
    main()
