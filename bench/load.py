"""Load: several clients submitting at once to the real `paintwire serve`.

Checks and measures, in one run:
  - every job completes (none lost, none failed);
  - each client gets only its own events (an event for a job it does not own is
    counted as a leak between clients);
  - fairness: how far apart the clients' progress gets while all are busy, and
    the spread of their mean job latencies (1.00x = perfectly even);
  - server memory (VmRSS of the server process) before, during and after the
    jobs, and the /info queue status at the end (nothing queued, nothing running).

    ./run bench load                         # 8 clients, 200 jobs (under 2 minutes)
    ./run bench load --clients 16 --jobs 1000 --size 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request
from typing import Any

import numpy as np

from _common import machine, rss_kib, start_server_process, table
from paintwire.protocol import Cancelled, Client, Error, JobRequest, Preview, Progress, Queued, Result, Started, raw_image


def job(side: int, seed: int) -> JobRequest:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (side, side, 4), dtype=np.uint8)
    mask = np.zeros((side, side), np.uint8)
    h = side // 4
    mask[h: 2 * h, h: 2 * h] = 255
    return JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image.tobytes()), raw_image(side, side, "l8", mask.tobytes()),
                      params={"method": "telea", "radius": 3})


class Worker(threading.Thread):
    def __init__(self, index: int, url: str, jobs: int, window: int, side: int, start: threading.Barrier, done_log: list, lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.index, self.url, self.jobs, self.window = index, url, jobs, window
        self.request = job(side, index)
        self.start_barrier, self.done_log, self.lock = start, done_log, lock
        self.latencies: list[float] = []
        self.foreign = 0  # events for jobs this client does not own
        self.failed: list[Any] = []
        self.completed = 0

    def run(self) -> None:
        with Client(self.url, name=f"bench-load-{self.index}") as client:
            submitted_at: dict[int, float] = {}
            owned: dict[str, int] = {}
            self.start_barrier.wait()

            def submit() -> None:
                ref = client.submit(self.request)
                submitted_at[ref] = time.perf_counter()

            for _ in range(min(self.window, self.jobs)):
                submit()
            sent = min(self.window, self.jobs)
            while self.completed + len(self.failed) < self.jobs:
                message = next(client.events(60))
                job_id = getattr(message, "job", None)
                if isinstance(message, Queued) and message.ref in submitted_at and job_id not in owned:
                    owned[job_id] = message.ref
                    continue
                if isinstance(message, Error) and message.job is None:
                    self.failed.append(message)
                    continue
                if job_id not in owned:
                    self.foreign += 1
                    continue
                if isinstance(message, (Started, Progress, Preview, Queued)):
                    continue
                ref = owned.pop(job_id)
                if isinstance(message, Result):
                    self.latencies.append(time.perf_counter() - submitted_at.pop(ref))
                    self.completed += 1
                    with self.lock:
                        self.done_log.append(self.index)
                else:  # Error or Cancelled
                    self.failed.append(message)
                if sent < self.jobs:
                    submit()
                    sent += 1


def info(server: Any) -> dict:
    with urllib.request.urlopen(f"{server.http}/info", timeout=30) as response:
        return json.loads(response.read())


def run_round(url: str, clients: int, jobs: int, window: int, side: int) -> tuple[list[Worker], list[int], float]:
    per_client = [jobs // clients + (1 if i < jobs % clients else 0) for i in range(clients)]
    barrier = threading.Barrier(clients)
    done_log: list[int] = []
    lock = threading.Lock()
    workers = [Worker(i, url, n, window, side, barrier, done_log, lock) for i, n in enumerate(per_client)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(600)
    return workers, done_log, time.perf_counter() - start


def max_spread(done_log: list[int], workers: list[Worker]) -> int:
    """Largest gap in completed jobs between two clients while every client still had work."""
    counts = [0] * len(workers)
    worst = 0
    for index in done_log:
        counts[index] += 1
        if all(c < w.jobs for c, w in zip(counts, workers)):
            worst = max(worst, max(counts) - min(counts))
    return worst


def greedy_and_newcomer(url: str, side: int) -> tuple[int, float, float]:
    """A client fills its queue; another then submits one job. Returns the
    newcomer's first queue position, its time to result, and one job's time."""
    request = job(side, 99)
    with Client(url, name="greedy") as greedy, Client(url, name="newcomer") as newcomer:
        one = time.perf_counter()
        greedy.run(request, timeout=60)
        one = time.perf_counter() - one
        refs = [greedy.submit(request) for _ in range(16)]
        accepted: set[str] = set()
        ended: set[str] = set()

        def note(message: Any) -> None:
            if isinstance(message, Queued) and message.ref in refs:
                accepted.add(message.job)
            elif isinstance(message, (Result, Error, Cancelled)):
                ended.add(getattr(message, "job", None) or f"ref{message.ref}")

        while len(accepted) + sum(1 for e in ended if e.startswith("ref")) < len(refs):
            note(next(greedy.events(60)))
        start = time.perf_counter()
        positions: list[int] = []
        newcomer.run(request, on_event=lambda m: positions.append(m.position) if isinstance(m, Queued) else None, timeout=60)
        wait = time.perf_counter() - start
        while len(ended) < len(refs):
            note(next(greedy.events(60)))
    return positions[0], wait, one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the measured round, over all clients")
    parser.add_argument("--window", type=int, default=4, help="jobs each client keeps submitted at a time")
    parser.add_argument("--size", type=int, default=256, help="canvas side of each job")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    server = start_server_process()
    pid = server.process.pid
    try:
        rss_start = rss_kib(pid)["VmRSS"]
        warm, _, _ = run_round(server.url, args.clients, args.clients * 4, args.window, args.size)  # import and allocator warm-up
        rss_warm = rss_kib(pid)["VmRSS"]
        samples = [rss_warm]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                samples.append(rss_kib(pid)["VmRSS"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        workers, done_log, elapsed = run_round(server.url, args.clients, args.jobs, args.window, args.size)
        stop.set()
        sampler.join()
        rss_after = rss_kib(pid)
        second, _, _ = run_round(server.url, args.clients, args.jobs, args.window, args.size)  # does memory keep growing?
        rss_second = rss_kib(pid)
        newcomer_position, newcomer_wait, greedy_job = greedy_and_newcomer(server.url, args.size)
        time.sleep(0.3)
        status = info(server)

        completed = sum(w.completed for w in workers)
        failed = sum(len(w.failed) for w in workers)
        foreign = sum(w.foreign for w in workers + second)
        means = [statistics.mean(w.latencies) for w in workers if w.latencies]
        rows = [
            ("clients, jobs", f"{args.clients}, {args.jobs} ({args.size}x{args.size} telea inpaint, {args.window} in flight per client)"),
            ("completed / failed", f"{completed} / {failed} (second round: {sum(w.completed for w in second)} / {sum(len(w.failed) for w in second)})"),
            ("events for another client's job", str(foreign)),
            ("throughput", f"{completed / elapsed:.1f} jobs/s ({elapsed:.1f} s)"),
            ("mean latency per client, min / max", f"{min(means) * 1000:.0f} / {max(means) * 1000:.0f} ms ({max(means) / min(means):.2f}x)"),
            ("largest gap in completed jobs between clients", f"{max_spread(done_log, workers)} jobs (while all had work)"),
            ("clients that finished nothing in the first half", str(sum(1 for i in range(len(workers)) if i not in done_log[: len(done_log) // 2]))),
            ("newcomer behind a client with 16 queued: position, wait", f"{newcomer_position} ({newcomer_wait * 1000:.0f} ms, one job takes {greedy_job * 1000:.0f} ms)"),
            ("server RSS: start / after warm-up", f"{rss_start / 1024:.0f} / {rss_warm / 1024:.0f} MiB"),
            ("server RSS: during round (min / max)", f"{min(samples) / 1024:.0f} / {max(samples) / 1024:.0f} MiB"),
            ("server RSS: after round 1 / after round 2", f"{rss_after['VmRSS'] / 1024:.0f} / {rss_second['VmRSS'] / 1024:.0f} MiB "
                                                          f"(growth over round 2: {(rss_second['VmRSS'] - rss_after['VmRSS']) / 1024:+.1f} MiB)"),
            ("server peak RSS (VmHWM)", f"{rss_second['VmHWM'] / 1024:.0f} MiB"),
            ("/info queue at the end", json.dumps(status["queue"]) + f", clients {status['clients']}"),
        ]
        table("Load: clients submitting at once to one server", ["measure", "value"], rows)
        assert completed == args.jobs and failed == 0 and foreign == 0, "jobs lost or events leaked"
        assert status["queue"]["queued"] == 0 and not status["queue"]["running"]
    finally:
        server.stop()


if __name__ == "__main__":
    main()
