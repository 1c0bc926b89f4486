"""The warm path of live painting: the text encoder runs once per prompt per loaded
model (a cached conditioning gives the same pixels), and a LoRA asked for again is
not loaded again."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_models  # noqa: E402
from paintwire.protocol import validate_params  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: E402
from paintwire.server.engines.diffusion.prompt_cache import PromptCache  # noqa: E402


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-models")
    tiny_models.build_tiny_sd15(root / "sd15")
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[root]))
    yield eng
    eng.close()


def img2img(engine, **params) -> np.ndarray:
    spec = next(m for m in engine.modes() if m.name == "img2img")
    image = np.zeros((64, 64, 4), np.uint8)
    image[..., 0] = np.arange(64, dtype=np.uint8)[None, :] * 3
    image[..., 3] = 255
    p = validate_params(spec.params, {"steps": 2, "seed": 3, "strength": 1.0, "exact_steps": True, "prompt": "a red apple", **params})
    out = engine.run(EngineJob("j", "img2img", p, image=image, model="sd15"), JobContext())
    return out.layers[0].pixels


def test_the_text_encoder_runs_once_per_prompt_and_cached_conditioning_gives_the_same_pixels(engine):
    first = img2img(engine)
    loaded = engine.cache.get(engine.registry.get("sd15"))
    calls = []
    hook = loaded.base.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        again = img2img(engine)
        assert calls == [], "a repeated prompt must not run the text encoder again"
        assert np.array_equal(first, again)
        img2img(engine, prompt="a blue boat")
        assert len(calls) == 2, "a new prompt (and its negative) is encoded"
        img2img(engine, prompt="a blue boat", clip_skip=2)
        assert len(calls) == 4, "clip skip changes the conditioning"
    finally:
        hook.remove()


def test_the_cache_keeps_the_newest_entries_only():
    cache = PromptCache(size=2)
    made = []
    for key in ("a", "b", "a", "c", "b"):
        cache.get(key, lambda k=key: made.append(k) or {"k": k})
    assert made == ["a", "b", "c", "b"]  # "b" was the oldest when "c" came
    assert (cache.hits, cache.misses) == (1, 4)


def test_a_lora_stays_loaded_while_jobs_ask_for_it_and_leaves_when_they_do_not(engine, tmp_path):
    """Live painting repeats its LoRA every frame: it is loaded once; a job without it
    (or with another weight) gets the model as it would have without the earlier jobs."""
    tiny_models.write_tiny_lora(engine.models_config.model_dirs[0] / "loras" / "tinylora.safetensors", engine.models_config.model_dirs[0] / "sd15")
    engine.rescan()
    assert engine.registry.get("tinylora") is not None
    plain = img2img(engine)
    pipe = engine.cache.get(engine.registry.get("sd15")).base
    loads = []
    original = pipe.load_lora_weights
    pipe.load_lora_weights = lambda *a, **k: (loads.append(a[0]), original(*a, **k))[1]
    try:
        with_lora = img2img(engine, prompt="a red apple <lora:tinylora:1.0>")
        again = img2img(engine, prompt="a red apple <lora:tinylora:1.0>")
        assert len(loads) == 1 and np.array_equal(with_lora, again), "the same LoRA is not loaded again"
        assert not np.array_equal(with_lora, plain)
        assert np.array_equal(img2img(engine), plain), "a job without the LoRA does not see it"
        half = img2img(engine, prompt="a red apple <lora:tinylora:0.5>")
        assert len(loads) == 2 and not np.array_equal(half, with_lora)
    finally:
        del pipe.load_lora_weights
