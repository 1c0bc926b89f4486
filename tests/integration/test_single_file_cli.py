"""A painter's setup: one checkpoint file with the real CLIP vocabulary, alone in an
empty model folder, generating through `paintwire serve` and the `paintwire` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

pytest.importorskip("diffusers")

from fixtures import tiny_models  # noqa: E402
from server_process import start_server_process  # noqa: E402


@pytest.fixture(scope="module")
def single_file_server(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("painter-models")
    tiny_models.write_tiny_single_file(folder / "my-checkpoint.safetensors", vocab_size=tiny_models.CLIP_VOCAB_SIZE)
    # An empty hub cache: nothing to borrow a tokenizer from, as on a fresh machine.
    monkeypatch_module.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub")))
    server = start_server_process(model_dirs=[str(folder)], engines=["diffusers"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_a_real_vocabulary_single_file_generates_from_the_cli(single_file_server, tmp_path):
    out = tmp_path / "out.png"
    run = subprocess.run(
        [sys.executable, "-m", "paintwire.cli.main", "run", "txt2img", "--engine", "diffusers", "--model", "my-checkpoint",
         "-p", "prompt=(a lighthouse:1.2) on a cliff, [fog] BREAK oil painting", "-p", "negative_prompt=blurry",
         "-p", "steps=2", "-p", "width=64", "-p", "height=64", "-p", "seed=5", "-o", str(out), "-q", "--url", single_file_server.url],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr + single_file_server.log()[-3000:]
    pixels = np.asarray(Image.open(out))
    assert pixels.shape[:2] == (64, 64) and pixels[..., :3].std() > 0
