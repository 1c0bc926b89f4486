"""Every platform: the server needs no POSIX-only module and no signal handlers
(as on Windows), and an installed wheel gives ``paintwire`` and ``python -m paintwire``."""

from __future__ import annotations

import ast
import email
import os
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from paintwire.protocol import Client, JobRequest, PixelFormat, raw_image

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "tests" / "fixtures" / "without_posix.py"
POSIX_ONLY = {"fcntl", "resource", "termios", "tty", "pty", "pwd", "grp", "syslog", "posix_ipc"}


def test_no_posix_only_imports_in_the_project():
    """Every import in the server, protocol, CLI and plug-ins, even inside functions."""
    found = []
    for folder in ("protocol", "server", "cli", "plugins", "paintwire"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in POSIX_ONLY]
    assert not found


@pytest.mark.slow
def test_the_server_runs_as_on_windows(start_server, tmp_path):
    """No POSIX-only imports from Paintwire, add_signal_handler raising
    NotImplementedError: the server starts through ``python -m paintwire`` with both
    engines, does a job, and stops cleanly on Ctrl-C."""
    server = start_server(launcher=[sys.executable, str(LAUNCHER)], engines=["classical", "diffusers"], model_dirs=[str(tmp_path)])
    image = np.zeros((32, 32, 4), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 255
    with Client(server.url, name="windows-like") as client:
        assert {e.name for e in client.capabilities.engines} == {"classical", "diffusers"}
        assert client.capabilities.engine("diffusers").device.kind in ("cpu", "cuda", "rocm", "mps")
        result = client.run(JobRequest("classical", "inpaint", raw_image(32, 32, PixelFormat.RGBA8, image.tobytes()),
                                          raw_image(32, 32, PixelFormat.L8, mask.tobytes())))
        assert result.layers
    server.process.send_signal(signal.SIGINT)  # what Ctrl-C sends in a Windows console too
    assert server.process.wait(60) == 0
    log = server.log()
    assert "Paintwire stopping." in log and "POSIX-only imports refused: none" in log, log


@pytest.mark.slow
def test_an_installed_wheel_gives_the_command_and_python_m(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("paintwire-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(zf.read(info))
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "paintwire/__main__.py" in names and "paintwire/__init__.py" not in names  # still a namespace package
    assert {"paintwire/protocol/__init__.py", "paintwire/server/app.py", "paintwire/cli/main.py"} <= names
    assert "paintwire = paintwire.cli.main:main" in entry_points  # pip makes paintwire(.exe) from this
    assert "diffusers" in metadata.get_all("Provides-Extra")
    target = tmp_path / "installed"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    # -S: without site, so that this checkout's editable install is not seen; the
    # dependencies come from this environment's site-packages, after the wheel.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    for args in (["-S", "-m", "paintwire", "--version"], ["-S", "-c", "import paintwire.server.app, paintwire.cli.main as m; print(m.__file__)"]):
        run = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "paintwire 0.1.0" in run.stdout or str(target) in run.stdout
