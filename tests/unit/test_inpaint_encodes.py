"""An inpaint runs the VAE encoder once per image it needs, and its pixels are those of the
run that also encoded the masked image an ordinary (4-channel) UNet never reads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import control_models, tiny_models  # noqa: E402
from paintwire.protocol import validate_params  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import DecodedControl, EngineJob, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine, modes, vae_encodes  # noqa: E402

CANNY = "tiny-canny"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("encode-models")
    tiny_models.build_tiny_sd15(root / "sd15")
    tiny_models.build_tiny_sd15(root / "sd15-inpaint", inpaint=True)
    tiny_models.build_tiny_sdxl(root / "sdxl")
    tiny_models.build_tiny_sdxl(root / "sdxl-inpaint", inpaint=True)
    control_models.write_tiny_controlnet(root / "controlnet" / CANNY, root / "sd15", folder=True)
    eng = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[root]))
    yield eng
    eng.close()


def picture() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (64, 64, 4), np.uint8)
    image[..., 3] = 255
    return image


def square(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[16:48, 20:44] = 255
    return mask


def run(engine: DiffusersEngine, mode: str, model: str, controls: tuple[DecodedControl, ...] = (), **params) -> tuple[list[np.ndarray], int]:
    """The job's result pixels, and how many times the VAE encoder ran."""
    spec = next(m for m in engine.modes() if m.name == mode)
    values = validate_params(spec.params, {"steps": 3, "seed": 11, "scheduler": "euler_a", "mask_blur": 2, **params})
    mask = None if mode == "outpaint" else square()
    job = EngineJob("j", mode, values, image=picture(), mask=mask, model=model, controls=controls)
    vae = engine.cache.get(engine.registry.get(model)).base.vae
    calls = []
    hook = vae.encoder.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape))
    try:
        out = engine.run(job, JobContext())
    finally:
        hook.remove()
    return [layer.pixels for layer in out.layers], len(calls)


def canny() -> tuple[DecodedControl, ...]:
    edges = np.zeros((64, 64, 4), np.uint8)
    edges[8:56, 30:34] = 255
    return (DecodedControl("canny", edges, "none", {}, CANNY),)


# (mode, model, params, controls, encoder runs): one for the image, one more where the
# UNet reads the masked image (inpainting models), none for the image where nothing reads it.
CASES = [
    ("inpaint", "sd15", {"masked_content": "original", "strength": 0.75}, False, 1),
    ("inpaint", "sd15", {"masked_content": "fill", "strength": 0.75, "batch_size": 2}, False, 1),
    ("inpaint", "sd15", {"masked_content": "latent_noise", "strength": 0.75}, False, 1),
    ("inpaint", "sd15", {"masked_content": "latent_nothing", "strength": 0.75}, False, 1),
    ("inpaint", "sd15", {"masked_content": "original", "strength": 1.0}, False, 1),
    ("inpaint", "sd15", {"soft_inpaint": True, "strength": 0.75}, False, 1),
    ("inpaint", "sd15", {"soft_inpaint": True, "strength": 0.75, "scheduler": "dpmpp_2m"}, False, 1),
    ("inpaint", "sd15", {"soft_inpaint": True, "strength": 1.0}, False, 1),
    ("inpaint", "sd15", {"strength": 0.75}, True, 1),
    ("inpaint_sketch", "sd15", {"strength": 0.75, "mask_transparency": 0.2}, False, 1),
    ("outpaint", "sd15", {"right": 16, "strength": 0.75}, False, 1),
    ("inpaint", "sdxl", {"masked_content": "original", "strength": 0.75}, False, 1),
    ("inpaint", "sdxl", {"soft_inpaint": True, "strength": 0.75}, False, 1),
    ("inpaint", "sd15-inpaint", {"masked_content": "original", "strength": 0.75}, False, 2),
    ("inpaint", "sd15-inpaint", {"masked_content": "original", "strength": 1.0}, False, 1),
    ("inpaint", "sd15-inpaint", {"masked_content": "latent_noise", "strength": 0.75}, False, 2),
    ("inpaint", "sd15-inpaint", {"soft_inpaint": True, "strength": 0.75}, False, 2),
    ("inpaint", "sd15-inpaint", {"soft_inpaint": True, "strength": 1.0}, False, 2),  # the soft blend's own encode
    ("inpaint", "sdxl-inpaint", {"masked_content": "fill", "strength": 0.75}, False, 2),
]


@pytest.mark.parametrize("mode, model, params, controls, encodes", CASES,
                         ids=[f"{c[0]}-{c[1]}-" + "-".join(f"{k}={v}" for k, v in c[2].items()) + ("-canny" if c[3] else "") for c in CASES])
def test_each_image_is_encoded_once_and_the_pixels_do_not_change(engine, monkeypatch, mode, model, params, controls, encodes):
    layers = canny() if controls else ()
    pixels, calls = run(engine, mode, model, layers, **params)
    assert calls == encodes
    # The same job with every masked image encoded, as the pipelines do by themselves.
    with monkeypatch.context() as patched:
        for module in (vae_encodes, modes):
            patched.setattr(module, "reads_masked_image", lambda pipe: True)
        before, before_calls = run(engine, mode, model, layers, **params)
    reads = vae_encodes.reads_masked_image(engine.cache.get(engine.registry.get(model)).base)
    assert before_calls == calls + (0 if reads else 1)
    assert len(pixels) == len(before)
    for a, b in zip(pixels, before):
        assert np.array_equal(a, b)


def test_the_masked_image_latents_an_ordinary_unet_skips_take_the_same_noise(engine):
    """The placeholder's sample draws what the encoder's would: the generator stays in step."""
    pipe = engine.cache.get(engine.registry.get("sd15")).pipeline("inpaint")
    x = torch.zeros(1, 3, 64, 64)
    real = pipe.vae.encode(x).latent_dist
    with vae_encodes.unread_masked_image_skipped(pipe):
        assert "prepare_mask_latents" in pipe.__dict__
    assert "prepare_mask_latents" not in pipe.__dict__ and "encode" not in pipe.vae.__dict__
    placeholder = vae_encodes._placeholder_encode(pipe.vae)(x).latent_dist
    assert placeholder.mean.shape == real.mean.shape and placeholder.mean.dtype == real.mean.dtype
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    real.sample(a), placeholder.sample(b)
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))
