"""The GPU benchmarks on a machine without a GPU: they parse their arguments, say what
they measure, and refuse with a sentence (exit status 2) rather than measuring the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / args[0]), *args[1:]], capture_output=True, text=True, timeout=300, cwd=BENCH.parent)


@pytest.mark.parametrize("script,says", [
    ("gpu_all.py", "Flux.2 Klein 4B"),
    ("gpu_flux.py", "Flux.1-dev        1024x1024, 20 steps"),
])
def test_help(script, says):
    run = _run(script, "--help")
    assert run.returncode == 0, run.stderr
    assert says in run.stdout and "--smoke" in run.stdout


def test_without_cuda_they_refuse_with_a_sentence():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    flux = _run("gpu_flux.py", "--repeat", "1")
    assert flux.returncode == 2 and "gpu_flux: refused: no CUDA device here" in flux.stderr and "--smoke" in flux.stderr
    every = _run("gpu_all.py", "--out", "never-written")
    assert every.returncode == 2 and "gpu_all: refused: no CUDA device here" in every.stderr
    assert not (BENCH.parent / "never-written").exists()
    bad = _run("gpu_flux.py", "--repeat", "many")
    assert bad.returncode == 2 and "invalid int value" in bad.stderr
