"""Live painting: a scripted painting stream through the real server, against the
engine called directly in the same run.

A brush stroke moves over a 512x512 region and every move is a new state, sent
at 30 changes a second for 20 seconds while the frames are read as they come.
Reported per step count, first the engine itself: the same img2img on the
same pixels, called directly in this process and through the server one state
at a time, taking turns frame by frame (so load on the machine hits both
alike); the server's figure is the engine time it reports for the frame
(model_ms), measured around the same call. Then the painting streams:
  frames/s              frames received per second of streaming
  change to frame       from sending a state to receiving the frame made from it
                        (median and 95th percentile; states dropped have none)
  outside the model     per frame, the time that is not the engine's: measured
                        one state at a time (send, wait for its frame), as the
                        latency less the engine time the server reports for that
                        frame (model_ms): protocol, queue, pixels in and out, both
                        ends' msgpack and the socket
  states                changes sent as states, and states the server dropped
                        (replaced by newer ones before any work was done)
Two clients per step count: one paced as the plug-ins are (at most
MAX_UNANSWERED states unanswered, the newest change sent when a frame comes)
and one that sends every change at once (the server drops what it cannot use).
The streams' baseline is that same direct engine time.

    ./run bench live                        # a small model on the CPU, 1 and 4 steps
    ./run bench live --seconds 5 --steps 1  # shorter
    python bench/live.py --gpu              # SD1.5-size model (random weights) on CUDA; see bench/gpu_all.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _common import build_small_sd15, machine, ms, ratio, start_server_process, table
from paintwire.protocol import Client, ImagePayload, PixelFormat
from paintwire.hostkit.live import MAX_UNANSWERED
from paintwire.protocol.live import LiveFrame, LiveStart, LiveStarted, LiveState, LiveStop, LiveStopped

SIDE = 512
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def live_params(steps: int) -> dict[str, Any]:
    # A few-step recipe: LCM sampling, no classifier-free guidance, every step run whatever the strength.
    return {"prompt": PROMPT, "steps": steps, "strength": 0.6, "exact_steps": True, "scheduler": "lcm", "cfg_scale": 1.0, "seed": 1}


def canvas(t: int) -> np.ndarray:
    """The region after ``t`` brush moves: a background and a stroke of dabs along a curve."""
    img = np.empty((SIDE, SIDE, 4), np.uint8)
    img[..., 0] = np.linspace(40, 200, SIDE, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(60, 160, SIDE, dtype=np.uint8)[:, None]
    img[..., 2], img[..., 3] = 120, 255
    yy, xx = np.ogrid[:SIDE, :SIDE]
    for i in range(0, t + 1, max(1, t // 40 + 1)):  # at most about 40 dabs: the cost stays the same over the run
        cx = int(SIDE / 2 + SIDE / 3 * np.cos(i / 20))
        cy = int(SIDE / 2 + SIDE / 3 * np.sin(i / 13))
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 18**2, :3] = (230, 60, 40)
    return img


def payload(img: np.ndarray) -> ImagePayload:
    return ImagePayload(SIDE, SIDE, PixelFormat.RGBA8, img.tobytes())


@dataclass
class Stream:
    sent: dict[int, float] = field(default_factory=dict)  # change number (the state's seq) -> when it was made
    frames: list[tuple[float, LiveFrame]] = field(default_factory=list)
    changes: int = 0


def expect(client: Client, kind: type, timeout: float = 600) -> Any:
    for message in client.events(timeout):
        if isinstance(message, kind):
            return message
        if isinstance(message, LiveStopped):
            raise RuntimeError(f"the stream stopped: {message}")


@dataclass
class Turns:
    """One state at a time through the server, each frame after the same work on the engine called directly."""
    direct: list[float] = field(default_factory=list)  # the engine called in this process
    served: list[float] = field(default_factory=list)  # the engine in the server (the frame's model_ms)
    cycles: list[float] = field(default_factory=list)  # send a state, receive its frame
    outside: list[float] = field(default_factory=list)  # the cycle less model_ms


def one_at_a_time(client: Client, steps: int, count: int, direct: "DirectEngine") -> Turns:
    """Send a state, wait for its frame, run the same img2img directly: ``count`` times,
    after two warm-up turns (first allocations at this size)."""
    turns = Turns()
    client.live(LiveStart(1, "diffusers", "img2img", "sd15", live_params(steps)))
    expect(client, LiveStarted)
    for seq in range(count + 2):
        direct_seconds = direct.run(steps, seq)
        image = payload(canvas(seq))
        start = time.perf_counter()
        client.live(LiveState(1, seq, image))
        frame: LiveFrame = expect(client, LiveFrame)
        if seq >= 2:
            turns.cycles.append(time.perf_counter() - start)
            turns.outside.append(turns.cycles[-1] - frame.model_ms / 1000)
            turns.served.append(frame.model_ms / 1000)
            turns.direct.append(direct_seconds)
    client.live(LiveStop(1))
    expect(client, LiveStopped)
    return turns


DISTINCT = 60  # drawn beforehand and cycled (every change differs from the one before): the painter keeps its rate


def painting(client: Client, steps: int, seconds: float, rate: float, flood: bool, stream_id: int) -> Stream:
    """The scripted stream: the painter makes ``rate`` changes a second for ``seconds``;
    frames are read as they come. ``flood``: every change is sent as a state at once
    (the server drops what it cannot use); otherwise the plug-ins' rule: at most
    MAX_UNANSWERED states unanswered, the newest change sent as soon as a frame comes."""
    stream = Stream()
    client.live(LiveStart(stream_id, "diffusers", "img2img", "sd15", live_params(steps)))
    expect(client, LiveStarted)
    drawn = [payload(canvas(t)) for t in range(DISTINCT)]
    changes = int(seconds * rate)
    made: dict[int, float] = {}
    lock = threading.Lock()
    pace = {"latest": -1, "sent": -1, "answered": -1, "in_flight": 0}
    done = threading.Event()

    def send_newest() -> None:  # under the lock
        t = pace["latest"]
        if t > pace["sent"] and (flood or pace["in_flight"] < MAX_UNANSWERED):
            pace["sent"] = t
            pace["in_flight"] += 1
            stream.sent[t] = made[t]
            client.live(LiveState(stream_id, t, drawn[t % DISTINCT]))

    def paint() -> None:
        start = time.perf_counter()
        for t in range(changes):
            delay = start + t / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with lock:
                made[t] = time.perf_counter()
                pace["latest"] = t
                send_newest()
        done.set()

    painter = threading.Thread(target=paint, daemon=True)
    painter.start()
    last = changes - 1
    while True:
        frame = expect(client, LiveFrame)
        stream.frames.append((time.perf_counter(), frame))
        with lock:
            # The frame answers its state and every older one the server dropped.
            pace["in_flight"] = sum(1 for seq in stream.sent if seq > frame.seq)
            send_newest()
        if frame.seq == last and done.is_set():
            break
    painter.join()
    stream.changes = changes
    client.live(LiveStop(stream_id))
    expect(client, LiveStopped)
    return stream


class DirectEngine:
    """The diffusers engine in this process, on the same model folder as the server's."""

    def __init__(self, model_dir: Path, device: str) -> None:
        from paintwire.server.config import DeviceConfig, ModelsConfig
        from paintwire.server.engines.diffusion import DiffusersEngine

        self.engine = DiffusersEngine(DeviceConfig(name=device), ModelsConfig(model_dirs=[model_dir]))
        self.spec = next(m for m in self.engine.modes() if m.name == "img2img")

    def run(self, steps: int, seq: int) -> float:
        """Seconds of the engine's run on the img2img of state ``seq``, timed as the server times model_ms."""
        from paintwire.protocol import validate_params
        from paintwire.server.engines.base import EngineJob, JobContext

        job = EngineJob("bench", "img2img", validate_params(self.spec.params, live_params(steps)), image=canvas(seq), model="sd15")
        start = time.perf_counter()
        self.engine.run(job, JobContext())
        return time.perf_counter() - start

    def close(self) -> None:
        self.engine.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def build_models(root: Path, gpu: bool) -> Path:
    models = root / "models"
    if gpu:
        import torch

        from gpu_e2e import build_pipeline

        build_pipeline(torch, "sd15", models / "sd15", False, torch.device("cuda")).to("cpu")
        torch.cuda.empty_cache()
    else:
        build_small_sd15(models / "sd15")
    return models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="1,4", help="step counts to stream, comma-separated (default 1,4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each painting stream (default 20)")
    parser.add_argument("--rate", type=float, default=30.0, help="changes a second (default 30)")
    parser.add_argument("--repeat", type=int, default=10, help="frames for the one-at-a-time and direct measurements (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch, here and in the server (default 1: steadier on a shared machine)")
    parser.add_argument("--smoke", action="store_true", help="the small model on the CPU for 3 s a step count: checks the script (bench/gpu_all.py --smoke)")
    parser.add_argument("--gpu", action="store_true", help="an SD1.5-size model with random weights on CUDA instead of the tiny one on the CPU")
    args = parser.parse_args()
    try:
        import diffusers
        import torch
        import transformers
    except ImportError as exc:
        print(f"live: needs paintwire[diffusers] ({exc}). Skipped.")
        return 0
    diffusers.utils.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    if args.smoke:
        args.gpu, args.seconds, args.repeat = False, 3.0, 3
    if args.gpu and not torch.cuda.is_available():
        print(f"live --gpu: no CUDA device here ({machine()}). Skipped: run it on a machine with a GPU.")
        return 0
    device = "cuda" if args.gpu else "cpu"
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server started below inherits it
    step_counts = [int(s) for s in args.steps.split(",")]
    rows, inside_rows, engine_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="paintwire-bench-live-") as tmp:
        models = build_models(Path(tmp), args.gpu)
        direct = DirectEngine(models, device)
        server = start_server_process(model_dirs=[str(models)], engines=["diffusers"], device=device, previews_per_second=0.0)
        try:
            with Client(server.url, name="bench-live", timeout=600) as client:
                info = client.capabilities.engine("diffusers").device
                for steps in step_counts:
                    turns = one_at_a_time(client, steps, args.repeat, direct)
                    baseline = statistics.median(turns.direct)
                    engine_rows.append((
                        steps, ms(baseline), ms(min(turns.direct)), ms(statistics.median(turns.served)), ms(min(turns.served)),
                        ratio(statistics.median(turns.served), baseline), ratio(min(turns.served), min(turns.direct)),
                    ))
                    for flood in (False, True):
                        stream = painting(client, steps, args.seconds, args.rate, flood, 2 + int(flood))
                        frames = stream.frames
                        span = frames[-1][0] - stream.sent[min(stream.sent)]
                        latency = [t - stream.sent[f.seq] for t, f in frames]
                        server_side = [(f.run_ms - f.model_ms) / 1000 for _, f in frames]
                        cycle = span / len(frames)
                        how = "every change sent (flood)" if flood else "paced as the plug-ins send"
                        rows.append((
                            steps, how, f"{len(frames) / span:.1f}", ms(statistics.median(latency)), ms(percentile(latency, 0.95)),
                            ms(statistics.median(turns.cycles)), ms(statistics.median(turns.outside)),
                            f"{len(stream.sent)} sent of {stream.changes}, {frames[-1][1].dropped} dropped by the server",
                            ms(baseline), ms(cycle), ratio(cycle, baseline),
                        ))
                        streamed = statistics.median(f.model_ms for _, f in frames) / 1000
                        inside_rows.append((steps, how, ms(streamed), ratio(streamed, baseline),
                                            ms(statistics.median(server_side)), ms(percentile(server_side, 0.95))))
        finally:
            code = server.stop()
            direct.close()
        if code != 0:
            print(server.log())
    where = f"{info.summary()}, torch {torch.__version__}" if info else device
    print(f"\nmachine: {machine()}\ndevice: {where}")
    table(f"The engine in the server against the engine alone: the same img2img {SIDE}x{SIDE} on the same pixels, one state at a time, "
          f"taking turns with the direct call ({args.repeat} turns, {args.threads} torch thread(s) on both sides)",
          ["steps", "engine directly, median", "min", "engine in the server (model_ms), median", "min", "server vs direct, median", "min"], engine_rows)
    table(f"Live painting, img2img {SIDE}x{SIDE}, strength 0.6, LCM, cfg 1, {args.rate:g} changes/s for {args.seconds:g} s ({where})",
          ["steps", "client", "frames/s", "change to frame, median", "p95", "warm cycle, one state at a time", "outside the model per frame",
           "states", "engine directly (baseline)", "frame cycle in the stream", "cycle vs engine"], rows)
    table("Inside the server, per frame of the stream (median): the engine, while this process paints and reads frames on the same "
          "machine, and the rest (reading the state, packing the frame)",
          ["steps", "client", "engine while streaming (model_ms)", "vs engine directly", "server outside the engine", "p95"], inside_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
