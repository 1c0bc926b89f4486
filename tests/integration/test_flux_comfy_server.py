"""Through the real server: a Flux.2 Klein kept as ComfyUI keeps it (transformer, Qwen3 text
encoder and VAE in their folders, the tokenizer in a folder beside the encoder) is one
model that generates, and a Flux.1 transformer without its parts is listed with the
sentence that names the missing files, and refused with it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

pytest.importorskip("diffusers")

from fixtures import tiny_flux  # noqa: E402
from helpers import layer_pixels  # noqa: E402
from paintwire.protocol import Client, ErrorCode, JobFailed, JobRequest  # noqa: E402
from server_process import start_server_process  # noqa: E402

KLEIN = "tiny-flux2-klein-distilled"


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("comfy")
    tiny_flux.save_flux2_klein(work, layout="comfy")
    models = work / "ComfyUI" / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        shutil.move(str(work / sub), str(models / sub))
    # The tokenizer a text-encoder file does not carry, beside it (the documented convention).
    shutil.copytree(work / "diffusers" / "tokenizer", models / "text_encoders" / "qwen_3_4b.tokenizer")
    tiny_flux.save_comfy_transformer_only(models)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub")))  # nothing to borrow from
        server = start_server_process(model_dirs=[str(models)], engines=["diffusers"], previews_per_second=0.0)
    yield server, work
    server.stop()


def test_a_comfy_klein_is_one_model_that_generates_and_a_bare_transformer_says_what_it_lacks(comfy_server):
    server, work = comfy_server
    with Client(server.url, name="flux-files", timeout=120) as client:
        models = {m.name: m for m in client.capabilities.models if m.engine == "diffusers"}
        assert set(models) == {KLEIN, "tiny-flux1-dev"}  # the encoder and the VAE are parts, not models
        assert models[KLEIN].usable and models[KLEIN].kind == "flux2-klein" and models[KLEIN].family == "flux2"
        problem = models["tiny-flux1-dev"].problem
        assert not models["tiny-flux1-dev"].usable
        assert "text_encoders/clip_l.safetensors" in problem and "vae/ae.safetensors" in problem
        params = {"prompt": "a lighthouse", "steps": 2, "seed": 3, "width": 64, "height": 64}
        result = client.run(JobRequest("diffusers", "txt2img", model=KLEIN, params=params), timeout=300)
        pixels = layer_pixels(result.layers[0])
        assert pixels.shape[:2] == (64, 64) and pixels[..., :3].std() > 0
        with pytest.raises(JobFailed) as info:
            client.run(JobRequest("diffusers", "txt2img", model="tiny-flux1-dev", params=params), timeout=60)
        assert info.value.error.code is ErrorCode.UNKNOWN_MODEL and "clip_l.safetensors" in info.value.error.message
    # The same pixels as the diffusers folder of the same weights, made in this process.
    reference = _reference_pixels(work / "diffusers", params)
    np.testing.assert_array_equal(pixels, reference)


def _reference_pixels(folder: Path, params: dict) -> np.ndarray:
    from paintwire.protocol import validate_params
    from paintwire.server.config import DeviceConfig, ModelsConfig
    from paintwire.server.engines.base import EngineJob, JobContext
    from paintwire.server.engines.diffusion import DiffusersEngine
    from paintwire.server.engines.diffusion.models import ModelRegistry

    engine = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[folder]), ModelRegistry.scan([folder], include_hf_cache=False))
    try:
        spec = next(m for m in engine.modes() if m.name == "txt2img")
        job = EngineJob("reference", "txt2img", validate_params(spec.params, params), model="diffusers")
        return engine.run(job, JobContext()).layers[0].pixels
    finally:
        engine.close()
