"""Big canvas: inpainting a small region of a big canvas costs about what the
region costs, transfer included, because the plug-ins send only the part of
the canvas the mode reads (a crop with its offset, protocol/crops.py) and the
server works on the mask's bounds plus padding and sends back a layer of that
size only.

Measured in the same run, through the real `paintwire serve` (client bytes in,
result layer out), with the classical engine (telea and fill) and, when it is
installed, the diffusers engine with a tiny SD1.5-shaped inpainting model
(tests/fixtures/tiny_models.py, built here). Each request is built by the
plug-ins' own request builder (paintwire.hostkit) from the selection and the
mode's defaults, and its building is timed with the job:
  region              the same 256x256 hole on a canvas just big enough for it
  big canvas, whole   the hole on a 4096x4096 canvas, sent whole (before crops)
  big canvas, crop    the same, sent as the host kit sends it now (the crop)
with the bytes each sends, the client's shared memory off (the plain path that
every platform has) and on.

    ./run bench big_canvas                  # 4096 canvas, 256 hole
    ./run bench big_canvas --canvas 8192 --hole 512 --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine, median_of, ms, ratio, start_server_process, table
from paintwire.protocol import Client, JobRequest, PixelFormat, raw_image
from paintwire.hostkit.request import JobSettings, build_request
from paintwire.hostkit.snapshot import Snapshot

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
    args = parser.parse_args()
    print(f"machine: {machine()}")

    region_side = args.hole + 2 * PADDING + 2 * 8  # the hole, its padding, and the mask blur's reach
    cases = {"region": canvas(region_side, args.hole), "big canvas": canvas(args.canvas, args.hole)}
    snapshots = {name: Snapshot(img.shape[1], img.shape[0], img.tobytes(), PixelFormat.RGBA8, selection=m.tobytes()) for name, (img, m) in cases.items()}
    rows = []
    diffusers_model = None if args.no_diffusers else tiny_inpaint_model()
    extra = {"model_dirs": [str(diffusers_model[0])], "engines": ["classical", "diffusers"], "previews_per_second": 0.0} if diffusers_model else {}
    if diffusers_model:
        os.environ["OMP_NUM_THREADS"] = "1"  # steadier on a small shared machine; the server inherits it
    server = start_server_process(max_pixels=max(8192 * 8192, args.canvas**2), **extra)
    jobs = [(f"classical {method}", JobSettings("inpaint", "classical", None, {"method": method, "padding": PADDING})) for method in ("telea", "fill")]
    if diffusers_model:
        # The panel's own choices only (prompt, steps, seed): everything else is the mode's default.
        jobs.append(("diffusers tiny SD1.5 inpaint, 4 steps, plug-in defaults",
                     JobSettings("inpaint", "diffusers", diffusers_model[1], {"prompt": "a stone wall", "steps": 4, "seed": 1})))
    try:
        for shared in (False, True):
            with Client(server.url, name="bench-big-canvas", shared_memory=shared) as client:
                path = "shared memory" if client.uses_shared_memory else "plain (blob frames)"
                if shared and not client.uses_shared_memory:
                    continue  # no shared memory here: the plain rows say it all
                for label, settings in jobs:
                    def whole_canvas() -> JobRequest:
                        request = build_request(snapshots["big canvas"], client.capabilities, settings)
                        side = args.canvas
                        return dataclasses.replace(request, image=snapshots["big canvas"].image(), crop=None,
                                                   mask=raw_image(side, side, "l8", snapshots["big canvas"].mask()))

                    variants = {
                        "region": lambda: build_request(snapshots["region"], client.capabilities, settings),
                        "big canvas, whole": whole_canvas,
                        "big canvas, crop": lambda: build_request(snapshots["big canvas"], client.capabilities, settings),
                    }
                    times: dict[str, tuple[float, Any, JobRequest]] = {}
                    for name, make in variants.items():
                        request = make()
                        if name == "big canvas, whole":
                            make = lambda request=request: request  # noqa: E731  (sending the whole canvas needs no building)
                        results = [client.run(make(), timeout=300)]  # warm-up
                        t = median_of(lambda: results.append(client.run(make(), timeout=300)), args.repeat, warmup=0)
                        times[name] = (t, results[-1].layers[0], request)
                    base = times["region"][0]
                    for name, (t, layer, request) in times.items():
                        sent = request.image.width * request.image.height * 5 / 1e6
                        where = f"crop {request.image.width}x{request.image.height}" if request.crop else f"whole {request.image.width}x{request.image.height}"
                        rows.append((label, path, name, where, f"{sent:.1f} MB", ms(t), ratio(t, base),
                                     f"{layer.image.width}x{layer.image.height} at ({layer.x}, {layer.y})"))
                    print(f"{label}, {path}: big canvas crop / region = {times['big canvas, crop'][0] / base:.2f}x", flush=True)
    finally:
        server.stop()
    table(f"Big canvas: a {args.hole}x{args.hole} inpaint through the server, request building included (median of {args.repeat})",
          ["job", "pixels", "canvas", "sent", "image + mask", "time", "vs region", "result layer"], rows)


if __name__ == "__main__":
    main()
