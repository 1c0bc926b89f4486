"""Fixtures for the diffusers tests: tiny models built once per session, and a
real server (in a child process) that serves them.

Import them into a test module with
``from diffusion_fixtures import diffusers_server, tiny_models  # noqa: F401``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fixtures and server_process

from fixtures import tiny_models  # noqa: E402
from server_process import ServerProcess, start_server_process  # noqa: E402

pytest.importorskip("diffusers")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with every kind of tiny model (see tiny_models.build_model_folder)."""
    return tiny_models.build_model_folder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def hf_cache_dir(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> Path:
    """A Hugging Face hub cache layout holding one pipeline, ``tiny/cached``."""
    cache = tmp_path_factory.mktemp("hf-hub")
    repo = cache / "models--tiny--cached"
    shutil.copytree(tiny_models_dir / "checkpoints" / tiny_models.SD15, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    return cache


@pytest.fixture(scope="session")
def diffusers_server(tiny_models_dir: Path, hf_cache_dir: Path) -> Iterator[ServerProcess]:
    """One server with the classical and diffusers engines over the tiny models,
    shared by the tests of a session (the diffusers import is the slow part)."""
    server = start_with_cache(hf_cache_dir, model_dirs=[str(tiny_models_dir)], engines=["classical", "diffusers"], previews_per_second=50.0)
    yield server
    server.stop()


def start_with_cache(hf_cache_dir: Path, **options: Any) -> ServerProcess:
    """A server process whose Hugging Face cache is the tests' own (the child inherits
    HF_HUB_CACHE; never the user's cache)."""
    old = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(hf_cache_dir)
    try:
        return start_server_process(**options)
    finally:
        if old is None:
            os.environ.pop("HF_HUB_CACHE", None)
        else:
            os.environ["HF_HUB_CACHE"] = old


def picture(width: int = 64, height: int = 64) -> np.ndarray:
    """An opaque RGBA test picture with structure (gradients and a bright square)."""
    img = np.zeros((height, width, 4), np.uint8)
    img[..., 0] = np.linspace(20, 220, width, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(200, 40, height, dtype=np.uint8)[:, None]
    img[..., 2] = 120
    img[height // 4: height // 2, width // 4: width // 2, :3] = (250, 250, 40)
    img[..., 3] = 255
    return img


def box_mask(width: int, height: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y:y + h, x:x + w] = 255
    return mask
