"""VAE encodes per inpaint on a full-size SD1.5 checkpoint: the engine as it is (the image
encoded once) against the same job with the masked image encoded too, as diffusers' inpaint
pipeline does by itself for an ordinary 4-channel UNet that never reads it.

The checkpoint is bench/real_size.py's random full-size SD1.5 file (built there on first
use). The two ways run interleaved in one process on one loaded model, and their pixels
must be identical.

    ./run bench inpaint_encodes
    ./run bench inpaint_encodes --size 512 --repeat 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np

from _common import machine, ratio, table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_size import CACHE, CHECKPOINT, build_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way, interleaved")
    args = parser.parse_args()
    path = CACHE / CHECKPOINT
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building {path} ...")
        build_checkpoint(path)

    from paintwire.protocol import validate_params
    from paintwire.server.config import ServerConfig
    from paintwire.server.engines.base import EngineJob, JobContext
    from paintwire.server.engines.diffusion import DiffusersEngine, modes, vae_encodes

    engine = DiffusersEngine(ServerConfig(model_dirs=[path.parent], device="cpu"))
    name = path.stem
    spec = next(m for m in engine.modes() if m.name == "inpaint")
    n = args.size
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (n, n, 4), np.uint8)
    image[..., 3] = 255
    mask = np.zeros((n, n), np.uint8)
    mask[n // 4: 3 * n // 4, n // 4: 3 * n // 4] = 255
    # One denoising step (2 steps at strength 0.5), the whole picture: the encoder's share shows.
    params = validate_params(spec.params, {"steps": 2, "strength": 0.5, "seed": 1, "scheduler": "euler_a",
                                           "inpaint_area": "whole_picture", "prompt": "a lighthouse"})
    vae = engine.cache.get(engine.registry.get(name)).base.vae
    encoder_s: list[float] = []

    def time_encoder(module, args, output=None):  # noqa: ANN001
        encoder_s.append(time.perf_counter())

    vae.encoder.register_forward_pre_hook(time_encoder)
    vae.encoder.register_forward_hook(time_encoder)

    def run(before: bool) -> tuple[float, int, float, np.ndarray]:
        encoder_s.clear()
        with ExitStack() as stack:
            if before:
                for module in (vae_encodes, modes):
                    stack.enter_context(mock.patch.object(module, "reads_masked_image", lambda pipe: True))
            start = time.perf_counter()
            out = engine.run(EngineJob("b", "inpaint", dict(params), image=image, mask=mask, model=name), JobContext())
            took = time.perf_counter() - start
        spans = [b - a for a, b in zip(encoder_s[::2], encoder_s[1::2])]
        return took, len(spans), sum(spans), out.layers[0].pixels

    print(machine())
    print(f"warm-up (loads the model) ... {run(False)[0]:.1f} s")
    rows: dict[str, list[tuple[float, int, float]]] = {"before": [], "after": []}
    pixels: dict[str, np.ndarray] = {}
    for _ in range(args.repeat):
        for way in ("after", "before"):
            took, count, enc, px = run(way == "before")
            rows[way].append((took, count, enc))
            pixels[way] = px
            print(f"  {way}: {took:.1f} s, {count} encoder runs ({enc:.1f} s)")
    assert np.array_equal(pixels["after"], pixels["before"]), "the pixels differ"
    base = statistics.median(t for t, _, _ in rows["before"])
    table(f"Inpaint {n}x{n}, full-size SD1.5 (random weights), 1 step, CPU fp32; pixels identical", ["way", "encoder runs", "encoder time (median)",
          "job min", "job median", "vs before"],
          [[way, r[0][1], f"{statistics.median(e for _, _, e in r):.1f} s", f"{min(t for t, _, _ in r):.1f} s",
            f"{statistics.median(t for t, _, _ in r):.1f} s", ratio(statistics.median(t for t, _, _ in r), base)]
           for way, r in (("before", rows["before"]), ("after", rows["after"]))])
    engine.close()


if __name__ == "__main__":
    main()
