"""The Krita plug-in's network worker, outside Krita: its Qt signals, from the
packaged plug-in, in the system Python that Krita uses (PyQt5 from Debian),
against a real server. Skips where that Python has no PyQt5."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Krita on Linux runs the distribution's Python; PyQt5 comes from its packages.
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else (shutil.which("python3") or "python3")

# Runs in the system Python: a QCoreApplication, the plug-in's Worker, and a
# script of connect / submit / wait steps; prints what the signals said as JSON.
DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import paintwire_krita  # puts the vendored packages on sys.path
from PyQt5.QtCore import QCoreApplication, QTimer
from paintwire.protocol import PixelFormat
from paintwire.hostkit.request import JobSettings, build_request
from paintwire.hostkit.snapshot import Snapshot
from paintwire_krita.worker import Worker

url, dead_url, stop_file = sys.argv[2], sys.argv[3], sys.argv[4]
app = QCoreApplication([])
worker = Worker()
seen = []
W, H = 32, 24
pixels = bytes([90, 60, 30, 255]) * (W * H)
selection = bytes(255 if 8 <= x < 16 and 6 <= y < 12 else 0 for y in range(H) for x in range(W))
settings = JobSettings("inpaint", "classical", "opencv", {"method": "telea", "mask_blur": 2})
caps = []

def on_disconnected(reason):
    seen.append(["disconnected", reason])
    if len([s for s in seen if s[0] == "disconnected"]) == 1:
        worker.connect_to(url, None)  # the dead server first, then the live one
    else:
        app.quit()

def on_connected(capabilities, server):
    seen.append(["connected", server, [e.name for e in capabilities.engines]])
    caps.append(capabilities)
    snap = Snapshot(W, H, pixels, PixelFormat.BGRA8, selection=selection)
    worker.submit(1, build_request(snap, capabilities, settings, PixelFormat.BGRA8))

def on_done(number, result):
    seen.append(["done", number, [(l.name, l.x, l.y, l.image.format.value) for l in result.layers]])
    empty = Snapshot(W, H, pixels, PixelFormat.BGRA8, mask_layer=bytes(W * H))  # the server rejects it
    worker.submit(2, build_request(empty, caps[0], settings, PixelFormat.BGRA8))

def on_failed(number, message):
    seen.append(["failed", number, message])
    open(stop_file, "w").close()  # the test now stops the server

worker.disconnected.connect(on_disconnected)
worker.connected.connect(on_connected)
worker.job_event.connect(lambda n, ev: seen.append(["event", n, type(ev).__name__]))
worker.job_done.connect(on_done)
worker.job_failed.connect(on_failed)
QTimer.singleShot(0, lambda: worker.connect_to(dead_url, None))
QTimer.singleShot(60000, app.quit)  # a safety net; the test fails on a missing signal
app.exec_()
print(json.dumps(seen))
"""

@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("paintwire_krita_build_w", REPO / "plugins" / "krita" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("plugin")
    zipfile.ZipFile(module.build(out / "paintwire-krita.zip")).extractall(out / "pykrita")
    return out / "pykrita"


def run_in_krita_python(source: str, plugin: Path, tmp_path: Path, needs: str = "PyQt5.QtGui", env: dict | None = None) -> dict:
    """Run a driver script in Krita's Python with the unpacked plug-in; its last line of
    output is JSON. Skips where that Python lacks PyQt5."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", f"import {needs}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} has no PyQt5 (Krita's Python on Debian: apt install python3-pyqt5)")
    (tmp_path / "driver.py").write_text(source, encoding="utf-8")
    run = subprocess.run([SYSTEM_PYTHON, str(tmp_path / "driver.py"), str(plugin)], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_worker_reports_connection_jobs_failures_and_a_lost_server(plugin_dir, start_server, tmp_path):
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import PyQt5.QtCore"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} has no PyQt5 (Krita's Python does; apt-get install python3-pyqt5)")
    server = start_server()
    stop_file = tmp_path / "stop"
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-I", "-c", DRIVER, str(plugin_dir), server.url, "ws://127.0.0.1:9/ws", str(stop_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not stop_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop()  # the connection is lost while the worker waits for the next job
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    seen = json.loads(out.strip().splitlines()[-1])
    kinds = [s[0] for s in seen]
    # A server that is not there: disconnected with the reason, nothing else.
    assert seen[0][0] == "disconnected" and "Cannot connect to ws://127.0.0.1:9/ws" in seen[0][1]
    # The real one: capabilities, then the job's events and its result in Krita's byte order.
    connected = seen[kinds.index("connected")]
    assert connected[1].startswith("paintwire/") and "classical" in connected[2]
    events = [s[2] for s in seen if s[0] == "event" and s[1] == 1]
    assert events[0] == "Queued" and "Started" in events
    done = seen[kinds.index("done")]
    assert done[1] == 1 and done[2][0][3] == "bgra8"
    # The rejected job: its reason, and the connection stays up.
    failed = seen[kinds.index("failed")]
    assert failed[1] == 2 and "mask is empty" in failed[2]
    # The server going away: reported as a lost connection.
    assert kinds[-1] == "disconnected" and seen[-1][1], seen
