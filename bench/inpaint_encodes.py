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
    from paintwire.server.config import DeviceConfig, ModelsConfig
    from paintwire.server.engines.base import EngineJob, JobContext
    from paintwire.server.engines.diffusion import DiffusersEngine, modes, vae_encodes

    engine = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[path.parent]))
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

    def run(before: bool) -> tuple[float, float, int, float, np.ndarray]:
        """Wall and CPU seconds of the job (CPU time: the process's, all threads; steadier
        than wall time on a machine that other work shares), encoder runs and their wall time."""
        encoder_s.clear()
        with ExitStack() as stack:
            if before:
                for module in (vae_encodes, modes):
                    stack.enter_context(mock.patch.object(module, "reads_masked_image", lambda pipe: True))
            start, cpu = time.perf_counter(), time.process_time()
            out = engine.run(EngineJob("b", "inpaint", dict(params), image=image, mask=mask, model=name), JobContext())
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
        spans = [b - a for a, b in zip(encoder_s[::2], encoder_s[1::2])]
        return took, cpu, len(spans), sum(spans), out.layers[0].pixels

    print(machine())
    print(f"warm-up (loads the model) ... {run(False)[0]:.1f} s")
    rows: dict[str, list[tuple[float, float, int, float]]] = {"before": [], "after": []}
    pixels: dict[str, np.ndarray] = {}
    for _ in range(args.repeat):
        for way in ("after", "before"):
            took, cpu, count, enc, px = run(way == "before")
            rows[way].append((took, cpu, count, enc))
            pixels[way] = px
            print(f"  {way}: {took:.1f} s wall, {cpu:.1f} s CPU, {count} encoder runs ({enc:.1f} s)")
    assert np.array_equal(pixels["after"], pixels["before"]), "the pixels differ"

    def med(way: str, i: int) -> float:
        return statistics.median(r[i] for r in rows[way])

    table(f"Inpaint {n}x{n}, full-size SD1.5 (random weights), 1 step, CPU fp32; pixels identical",
          ["way", "encoder runs", "encoder wall (median)", "job wall min", "job wall median", "job CPU min", "job CPU median", "CPU vs before"],
          [[way, rows[way][0][2], f"{med(way, 3):.1f} s", f"{min(r[0] for r in rows[way]):.1f} s", f"{med(way, 0):.1f} s",
            f"{min(r[1] for r in rows[way]):.1f} s", f"{med(way, 1):.1f} s", ratio(med(way, 1), med("before", 1))]
           for way in ("before", "after")])
    engine.close()


if __name__ == "__main__":
    main()
