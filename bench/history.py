"""The history's costs: recording one result, whether a client sees any delay
because of it, and listing pages of a 10,000-result history.

1. Recording (in process): settings, the PNG with its metadata, the WebP
   thumbnail and the SQLite row, per result size; the baseline is encoding
   the PNG alone (what saving the picture costs anyway).
2. Delay seen by a client (real `paintwire serve`, classical engine): submit to
   result for upscales with the history on, against the same server with it
   off; one at a time (the recorder idle at each submit: does recording delay
   the result itself?) and back to back (the recorder works while the next
   job runs: does it slow that job?).
3. Listing (in process, 10,000 records): the newest page, a page deep in the
   history, and filtered pages; the baseline is the newest page.

    ./run bench history
    ./run bench history --repeat 15 --sizes 512,1024,2048
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine, median_of, ms, ratio, start_server_process, table
from paintwire.protocol import Client, JobRequest, Layer, Result, raw_image
from paintwire.protocol.images import PixelFormat
from paintwire.server.history import Finished, HistoryRecorder, HistoryStore
from paintwire.server.history.store import Filters, NewRecord
from paintwire.server.history.recorder import thumbnail
from paintwire.server.imaging import array_to_payload, encode_png


def picture(side: int, seed: int = 0) -> np.ndarray:
    """Smooth colour with fine noise: compresses like a generated picture, not like a flat test card."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    img = np.empty((side, side, 4), np.uint8)
    img[..., 0] = (127 + 100 * np.sin(6 * x + seed)).astype(np.uint8)
    img[..., 1] = (127 + 100 * np.cos(5 * y)).astype(np.uint8)
    img[..., 2] = (127 + 60 * np.sin(9 * (x + y))).astype(np.uint8)
    img[..., :3] = np.clip(img[..., :3].astype(np.int16) + rng.integers(-12, 13, (side, side, 3)), 0, 255).astype(np.uint8)
    img[..., 3] = 255
    return img


def recording(sizes: list[int], repeat: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="paintwire-bench-history-") as tmp:
        store = HistoryStore(Path(tmp))
        recorder = HistoryRecorder(store, lambda engine, name: None, lambda engine, mode: {})
        for side in sizes:
            rgba = picture(side)
            params = {"prompt": "a lighthouse at dusk, oil painting", "negative_prompt": "blurry", "steps": 20, "cfg_scale": 7.0,
                      "scheduler": "dpmpp_2m", "seed": 1234, "width": side, "height": side}
            layer = Layer(array_to_payload(rgba), 0, 0, "bench", 1234, {"model": "bench-model", **params})
            result = Result("bench", (layer,), side, side)
            finished = Finished("bench", time.time(), JobRequest("diffusers", "txt2img", params=params), result)
            png = median_of(lambda: encode_png(rgba), repeat)  # what saving the picture costs anyway
            thumb = median_of(lambda: thumbnail(rgba), repeat)
            record = median_of(lambda: recorder._record(finished), repeat)
            newest = store.list(limit=1)[0][0]
            size = store.image_path(newest.id).stat().st_size + store.thumb_path(newest.id).stat().st_size
            rows.append((f"{side}x{side}", ms(png), ms(thumb), ms(record), ratio(record, png), f"{size / 2**20:.2f} MiB"))
        recorder.stop()
        store.close()
    table("Recording one result (in the history's own thread, after the result was sent)",
          ["result", "PNG encode alone (baseline)", "thumbnail alone", "whole record", "ratio", "PNG + thumbnail on disk"], rows)


def client_delay(side: int, jobs: int, tmp: Path, block: int = 4) -> None:
    """Two servers at once, one with the history off (the baseline) and one with it on,
    taking turns, so that both see the same load from everything else on the machine."""
    img = picture(side // 2)
    request = JobRequest("classical", "upscale", raw_image(img.shape[1], img.shape[0], PixelFormat.RGBA8, img.tobytes()), params={"scale": 2.0})
    labels = ("history off (baseline)", "history on")
    servers = [start_server_process(history=False), start_server_process(history=True, history_dir=str(tmp / "delay"))]
    times: dict[tuple[str, str], list[float]] = {}
    try:
        clients = [Client(s.url, name="bench") for s in servers]
        for client in clients:
            client.connect()
            client.run(request, timeout=120)  # warm-up
        for turn in range(max(1, jobs // block)):
            for i in (0, 1) if turn % 2 == 0 else (1, 0):
                # One at a time: the recorder is idle at the submit. Does recording delay the result itself?
                time.sleep(1.0)
                start = time.perf_counter()
                clients[i].run(request, timeout=120)
                times.setdefault(("one at a time", labels[i]), []).append(time.perf_counter() - start)
                # Back to back: each record is written while the next job runs. Does it slow that job?
                time.sleep(0.5)
                for _ in range(block):
                    start = time.perf_counter()
                    clients[i].run(request, timeout=120)
                    times.setdefault(("back to back", labels[i]), []).append(time.perf_counter() - start)
        for client in clients:
            client.close()
    finally:
        for server in servers:
            server.stop()
    rows = []
    for (pace, label), values in times.items():
        base = statistics.median(times[(pace, labels[0])])
        rows.append((pace, label, len(values), ms(statistics.median(values)), ms(max(values)), ratio(statistics.median(values), base)))
    rows.sort(key=lambda r: (r[0] != "one at a time", r[1] != labels[0]))
    table(f"Submit to result, classical upscales to {side}x{side}, two servers taking turns (real servers)",
          ["jobs", "server", "runs", "median", "slowest", "ratio"], rows)


def listing(count: int, repeat: int, tmp: Path) -> None:
    store = HistoryStore(tmp / "listing")
    models, modes = ("sd15-a", "sdxl-b", "sd15-c"), ("txt2img", "img2img", "inpaint", "upscale")
    start = time.perf_counter()
    for i in range(count):
        store.add(NewRecord(1_760_000_000.0 + i * 60, "bench", "diffusers", modes[i % 4], models[i % 3], f"prompt {i} of a {('cat', 'fox', 'owl')[i % 3]}",
                            i, 512, 512, {"params": {"seed": i}}, b"", b"", None))
    fill = time.perf_counter() - start
    deep_cursor = store.list(Filters(), limit=1, before=200)[0][0].id + 1
    cases = [
        ("newest 100 (baseline)", lambda: store.list(Filters(), 100)),
        (f"100 starting {count - 200:,} deep", lambda: store.list(Filters(), 100, before=deep_cursor)),
        ("model = sdxl-b", lambda: store.list(Filters(model="sdxl-b"), 100)),
        ("mode + text 'fox'", lambda: store.list(Filters(mode="inpaint", text="fox"), 100)),
        ("a day, starred", lambda: store.list(Filters(starred=True, since=1_760_000_000.0, until=1_760_086_400.0), 100)),
    ]
    times = {name: median_of(fn, repeat) for name, fn in cases}
    base = times["newest 100 (baseline)"]
    table(f"Listing a page of a {count:,}-result history (filling it took {fill:.1f} s)",
          ["page", "median", "ratio"], [(name, ms(t), ratio(t, base)) for name, t in times.items()])
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024,2048", help="result sides to record (comma-separated)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=32, help="back-to-back jobs per server in the delay test")
    parser.add_argument("--side", type=int, default=1024, help="the delay test's result side")
    parser.add_argument("--records", type=int, default=10_000, help="records in the listing test")
    parser.add_argument("--parts", default="recording,delay,listing", help="which measurements to run (comma-separated)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"Machine: {machine()}")
    if "recording" in parts:
        recording([int(s) for s in args.sizes.split(",")], args.repeat)
    with tempfile.TemporaryDirectory(prefix="paintwire-bench-history-") as tmp:
        if "delay" in parts:
            client_delay(args.side, args.jobs, Path(tmp))
        if "listing" in parts:
            listing(args.records, args.repeat, Path(tmp))


if __name__ == "__main__":
    main()
