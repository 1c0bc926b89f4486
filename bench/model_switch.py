"""Model switch: how long switching between two models takes on a warm server, and
whether other clients are served meanwhile.

Two models, alternated job by job, with a memory budget that keeps only one
loaded, so that every job but the first is a switch (the model before is
unloaded, the next one loaded). Against the same job on the model already
loaded, measured in the same run. Meanwhile a second client pings the
server's /health endpoint every 20 ms: the slowest answer during the switches
says whether loading blocks the event loop (it runs in the engine thread).

    ./run bench model_switch                                    # two tiny SD1.5-shaped models
    ./run bench model_switch --model-dir DIR --models A B       # two real checkpoints in DIR
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _common import machine, ms, ratio, start_server_process, table
from paintwire.protocol import Client, JobRequest, Phase, Progress


def tiny_pair() -> tuple[Path, list[str]]:
    from fixtures import tiny_models

    root = Path(tempfile.mkdtemp(prefix="paintwire-switch-"))
    tiny_models.build_tiny_sd15(root / "tiny-a")
    tiny_models.build_tiny_sd15(root / "tiny-b")
    return root, ["tiny-a", "tiny-b"]


class Pinger(threading.Thread):
    """GET /health every ``every`` seconds; keeps the slowest answer of each window."""

    def __init__(self, url: str, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.window: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=60) as r:
                r.read()
            self.window.append(time.perf_counter() - start)
            time.sleep(self.every)

    def take(self) -> list[float]:
        out, self.window = self.window, []
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="folder holding the two models (default: two tiny ones built here)")
    parser.add_argument("--models", nargs=2, metavar=("A", "B"), help="the two model names in --model-dir")
    parser.add_argument("--size", type=int, default=0, help="image side (default: the model's native size)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=4, help="switches to time (and warm jobs)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.model_dir:
        root, names = args.model_dir, list(args.models)
    else:
        root, names = tiny_pair()
    # A budget below one model keeps exactly one loaded: every change of model is a load.
    server = start_server_process(model_dirs=[str(root)], engines=["diffusers"], memory_budget_gb=0.000001,
                                  previews_per_second=0.0, model_rescan_seconds=0, max_pixels=8192 * 8192)
    pinger = Pinger(server.http + "/health")
    rows = []
    try:
        with Client(server.url, name="bench-switch", timeout=600) as client:
            def job(model: str) -> tuple[float, float]:
                """Seconds for the whole job, and in its loading_model phase."""
                marks: list[tuple[float, str]] = []
                params = {"prompt": "a lighthouse", "steps": args.steps, "seed": 1, "width": args.size, "height": args.size}
                start = time.perf_counter()
                client.run(JobRequest("diffusers", "txt2img", model=model, params=params),
                           on_event=lambda e: isinstance(e, Progress) and marks.append((time.perf_counter(), e.phase)), timeout=600)
                total = time.perf_counter() - start
                loading = [t for t, p in marks if p == Phase.LOADING_MODEL.value]
                after = [t for t, p in marks if p not in (Phase.LOADING_MODEL.value, Phase.PREPARING.value)]
                load = (after[0] - loading[0]) if loading and after else 0.0
                return total, load

            job(names[0])  # the first load (imports, caches): not a switch
            pinger.start()
            pinger.take()
            switches, loads, switch_pings = [], [], []
            for i in range(args.repeat):
                total, load = job(names[(i + 1) % 2])
                switches.append(total)
                loads.append(load)
                switch_pings += pinger.take()
            warm, warm_pings = [], []
            for _ in range(args.repeat):
                warm.append(job(names[args.repeat % 2])[0])
                warm_pings += pinger.take()
    finally:
        pinger.stop.set()
        server.stop()
    base = statistics.median(warm)
    rows.append(("same model, warm", ms(base), "1.00x", "-", ms(max(warm_pings)) if warm_pings else "-"))
    rows.append((f"switch {names[0]} <-> {names[1]}", ms(statistics.median(switches)), ratio(statistics.median(switches), base),
                 ms(statistics.median(loads)), ms(max(switch_pings)) if switch_pings else "-"))
    table(f"Model switch: txt2img, {args.steps} steps, median of {args.repeat}",
          ["job", "job time", "vs warm", "in 'loading model'", "slowest /health meanwhile"], rows)


if __name__ == "__main__":
    main()
