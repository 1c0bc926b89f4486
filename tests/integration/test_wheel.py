"""The wheel, as a user installs it: built from the sources, installed into a fresh
virtual environment without ``-e``, serving a diffusers job with a control layer.

Editable installs read the source folders, so a subpackage the wheel leaves out
(paintwire.server.engines.diffusion.control once was) shows only here. The fresh
environment borrows this one's third-party packages through a .pth file (no
download); Paintwire itself comes only from the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import layer_pixels, rgba_payload
from server_process import start_server_process

from paintwire.protocol import Client, ControlInput, JobRequest, ModelKind

pytest.importorskip("diffusers")
from fixtures import control_models as cm  # noqa: E402
from fixtures.tiny_models import build_tiny_sd15  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from: pyproject.toml names the readme; setup.py finds the packages in the rooms.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "paintwire", "protocol", "hostkit", "server", "cli")
ROOMS = ("protocol", "hostkit", "server", "cli")  # each is paintwire.<room>
W = H = 64


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _third_party_paths() -> list[str]:
    """This environment's package folders (a shared one named by a .pth too); never the sources."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv's python with the wheel installed into it."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy, so no build/ or egg-info is left in the checkout
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    # No build isolation: the setuptools of this environment (pinned in the test extra) builds it offline.
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", base / "dist", source)
    (wheel,) = (base / "dist").glob("paintwire-*.whl")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (site / "_borrowed.pth").write_text("\n".join(_third_party_paths()) + "\n", encoding="utf-8")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel)
    return python


def test_the_wheel_holds_every_package_and_its_data(installed: Path, tmp_path: Path) -> None:
    site = _run(installed, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).strip()
    where = _run(installed, "-c", "import paintwire.server.engines.diffusion.control.detect as m, "
                 "paintwire.server.engines.diffusion.clip_vocab as v; print(m.__file__); print(v.__file__)", cwd=tmp_path)
    for path in where.split():
        assert path.startswith(site), f"{path} is not the wheel's copy in {site}"
    package = Path(site) / "paintwire"
    wanted = {Path("__main__.py")} | {Path(room) / p.relative_to(ROOT / room) for room in ROOMS for p in (ROOT / room).rglob("*.py")}
    assert wanted - {p.relative_to(package) for p in package.rglob("*.py")} == set()
    assert (Path(site) / "paintwire/server/web/static/index.html").is_file()
    assert (Path(site) / "paintwire/server/engines/diffusion/clip_bpe/bpe_simple_vocab_16e6.txt.gz").is_file()


def test_the_installed_server_runs_a_control_layer_job(installed: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    sd15 = build_tiny_sd15(models / "tiny_sd15")
    cm.write_tiny_controlnet(models / "controlnet" / cm.CANNY_FOLDER, sd15, folder=True, seed=cm.SEED + 11)
    server = start_server_process(launcher=[str(installed), "-m", "paintwire"], cwd=tmp_path,
                                  model_dirs=[str(models)], engines=["diffusers"])
    try:
        with Client(server.url, name="wheel-test", timeout=120) as client:
            kinds = {m.name: m.kind for m in client.capabilities.models}
            assert kinds[cm.CANNY_FOLDER] == ModelKind.CONTROLNET.value
            lines = np.zeros((H, W, 4), np.uint8)
            lines[10:14, 8:56] = lines[10:54, 30:34] = (0, 0, 0, 255)
            params = {"steps": 2, "seed": 7, "prompt": "a red apple", "width": W, "height": H}
            plain = client.run(JobRequest("diffusers", "txt2img", model="tiny_sd15", params=params), timeout=120)
            guided = client.run(JobRequest("diffusers", "txt2img", model="tiny_sd15", params=params,
                                           controls=(ControlInput("canny", rgba_payload(lines)),)), timeout=120)
        a, b = layer_pixels(plain.layers[0]).astype(int), layer_pixels(guided.layers[0]).astype(int)
        assert a.shape == b.shape == (H, W, 4)
        assert np.abs(a - b).max() > 20  # the control layer took part
    finally:
        assert server.stop() == 0, server.log()
    assert "diffusers engine not loaded" not in server.log()
