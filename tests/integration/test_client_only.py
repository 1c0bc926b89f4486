"""A client-only install: the CLI and the protocol package run without OpenCV,
torch, diffusers or aiohttp (the server's dependencies)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from helpers import rect_mask, scene
from PIL import Image

SERVER_ONLY = ("cv2", "torch", "diffusers", "transformers", "aiohttp")

# Runs the CLI with the server's dependencies made unimportable, as on a machine
# where only the client was installed.
LAUNCHER = f"""
import importlib.abc, runpy, sys

class ServerOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            raise ImportError(f"{{name}} is not installed (client-only test)")
        return None

sys.meta_path.insert(0, ServerOnly())
sys.argv = ["paintwire"] + sys.argv[1:]
runpy.run_module("paintwire.cli.main", run_name="__main__")
"""


def client_only(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LAUNCHER, *args], capture_output=True, text=True, timeout=120)


def test_the_cli_runs_jobs_without_the_servers_dependencies(live_server, tmp_path):
    img = scene()
    Image.fromarray(img, "RGBA").save(tmp_path / "in.png")
    Image.fromarray(rect_mask(160, 120, 30, 30, 30, 30), "L").save(tmp_path / "mask.png")
    info = client_only("info", "--url", live_server.url)
    assert info.returncode == 0, info.stderr
    assert "engine classical" in info.stdout
    run = client_only("inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "-o", str(tmp_path / "out.png"),
                      "--layers", str(tmp_path / "layers"), "-q", "--url", live_server.url)
    assert run.returncode == 0, run.stderr
    out = np.asarray(Image.open(tmp_path / "out.png"))
    outside = rect_mask(160, 120, 30, 30, 30, 30) == 0
    assert np.array_equal(out[outside], img[outside]) and not np.array_equal(out, img)
    assert (tmp_path / "layers" / "layers.json").exists()


def test_the_launcher_really_hides_the_server(live_server):
    hidden = client_only("serve", "--port", "0")
    assert hidden.returncode != 0 and "client-only test" in hidden.stderr
