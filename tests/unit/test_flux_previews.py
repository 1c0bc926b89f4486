"""Previews of a family without published latent-to-RGB factors: the projection is fitted
on the model's own VAE once per loaded model, not once per job, tile or live frame."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_flux  # noqa: E402
from paintwire.protocol import validate_params  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine, generate  # noqa: E402


def test_the_fitted_projection_is_made_once_per_model(tmp_path, monkeypatch):
    root = tmp_path / "models"
    root.mkdir()
    shutil.move(str(tiny_flux.save_flux2_klein(tmp_path / "build", "distilled")), root / "klein")
    fits = []
    fit = generate.fitted_projection
    monkeypatch.setattr(generate, "fitted_projection", lambda family, pipe: fits.append(1) or fit(family, pipe))
    engine = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[root]))
    spec = next(m for m in engine.modes() if m.name == "txt2img")
    previews = []
    try:
        for seed in (1, 2):
            params = validate_params(spec.params, {"steps": 2, "seed": seed, "width": 64, "height": 64, "prompt": "a cat"})
            context = JobContext(on_preview=lambda rgba, box: previews.append(rgba.shape), previews_per_second=1000)
            engine.run(EngineJob("j", "txt2img", params, model="klein"), context)
    finally:
        engine.close()
    assert len(previews) >= 2 and all(shape == (64, 64, 4) for shape in previews)
    assert fits == [1]
