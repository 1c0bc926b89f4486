"""The engine runs in the server as it runs alone: its thread has the process's
torch threads and priority, and the memory a step frees is reused, not faulted
in again (a pinned mmap threshold once made the engine 1.8x slower in the
server than called directly: docs/performance.md). And the memory a job used
still comes back, once the engine has been idle for a moment, while the client
stays connected."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from paintwire.protocol import Client, JobRequest, raw_image

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads per-thread figures only Linux gives (RUSAGE_THREAD, /proc)")

PROBE = "fixtures.thread_probe_engine:ThreadProbeEngine"
MIB = 1 << 20
WAIT = 30.0


def probe_job() -> JobRequest:
    return JobRequest("probe", "probe", raw_image(8, 8, "rgba8", np.full((8, 8, 4), 200, np.uint8).tobytes()))


def huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


def test_the_engine_thread_runs_with_the_process_settings_and_reuses_freed_memory(start_server, tmp_path):
    # With the history on, its recorder thread (which lowers its own priority) has
    # recorded a result before the second job runs.
    server = start_server(engines=[PROBE], history=True, history_dir=str(tmp_path / "history"))
    with Client(server.url) as client:
        client.run(probe_job())
        (layer,) = client.run(probe_job()).layers
    seen = layer.settings
    assert seen["torch_threads"] == seen["torch_threads_at_start"], seen
    assert seen["nice"] == seen["nice_at_start"], seen
    if huge_pages_always():
        pytest.skip("transparent huge pages are always on here: page faults do not show whether freed memory is reused")
    # A pinned mmap threshold maps every such tensor afresh: a fault for each page written.
    assert seen["faults"] < seen["pages_written"] // 4, seen


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def upscale_job(side: int) -> JobRequest:
    image = np.full((side, side, 4), 90, np.uint8)
    image[::5, :, 1] = 250
    return JobRequest("classical", "upscale", raw_image(side, side, "rgba8", image.tobytes()), params={"scale": 2.0})


def test_memory_comes_back_once_the_engine_is_idle_while_the_client_stays(start_server):
    server = start_server(engines=["classical"])
    pid = server.process.pid
    with Client(server.url) as client:
        client.run(upscale_job(64))
        base = rss_mib(pid)
        for side in (1024, 700, 1024, 1500, 900) * 2:  # results of 8 to 36 MB, freed once sent
            client.run(upscale_job(side), timeout=WAIT)
        held = rss_mib(pid)
        deadline = time.monotonic() + WAIT
        while rss_mib(pid) >= base + 30:
            assert time.monotonic() < deadline, f"RSS stayed at {rss_mib(pid):.0f} MiB (base {base:.0f}, {held:.0f} after the jobs)"
            time.sleep(0.05)
