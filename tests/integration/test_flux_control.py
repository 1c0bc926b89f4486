"""Flux.1 ControlNets (InstantX-style FluxControlNetModel) through the real server and client,
with the tiny Flux.1 dev and tiny ControlNets built in code: a diffusers folder, a single
diffusers-named file and a union model guide each task; a ControlNet of another family, a
reference layer on Flux and any control layer on Flux.2 Klein or Flux.1 Fill are refused
with a sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from diffusion_fixtures import box_mask, picture
from helpers import layer_pixels, mask_payload, rgba_payload

from fixtures import control_models as cm
from fixtures import tiny_flux, tiny_models
from paintwire.protocol import Client, ControlInput, ErrorCode, JobFailed, JobRequest, ModelKind
from server_process import start_server_process

W = H = 64
FAST = {"steps": 2, "seed": 5, "prompt": "a red apple"}
MASK = box_mask(W, H, 16, 20, 28, 24)
CANNY, DEPTH_FILE, UNION, SD_CANNY = "tiny_flux_canny", "tiny_flux_depth", "tiny_flux_union", "tiny_sd_canny"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    build, root = tmp_path_factory.mktemp("fluxcn-build"), tmp_path_factory.mktemp("fluxcn-models")
    for name, variant in (("flux-dev", "dev"), ("flux-fill", "fill")):
        shutil.move(str(tiny_flux.save_flux(build / name, variant)), root / name)
    shutil.move(str(tiny_flux.save_flux2_klein(build / "klein", "distilled")), root / "klein")
    transformer, nets = root / "flux-dev" / "transformer", root / "controlnet"
    tiny_flux.save_flux_controlnet(nets / CANNY, transformer)
    tiny_flux.save_flux_controlnet(nets / f"{DEPTH_FILE}.safetensors", transformer, folder=False, seed=tiny_flux.SEED + 41)
    tiny_flux.save_flux_controlnet(nets / UNION, transformer, union=True, seed=tiny_flux.SEED + 42)
    sd15 = tiny_models.build_tiny_sd15(root / "sd15")
    cm.write_tiny_controlnet(nets / SD_CANNY, sd15, folder=True)
    # An IP-Adapter and its encoder, so that reference layers are offered (for SD).
    cm.write_tiny_ip_adapter(root / "ipadapter" / "tiny_ip_adapter.safetensors", sd15)
    cm.write_tiny_image_encoder(root / "clip_vision" / "tiny_encoder")
    return root


@pytest.fixture(scope="module")
def client(models):
    server = start_server_process(model_dirs=[str(models)], engines=["diffusers"])
    try:
        with Client(server.url, name="flux-control-test", timeout=120) as c:
            yield c
    finally:
        server.stop()


def lines(offset: int = 0, value: int = 0) -> np.ndarray:
    """Strokes on a transparent layer: dark ones to find edges in, bright ones for a map taken as it is."""
    layer = np.zeros((H, W, 4), np.uint8)
    layer[10 + offset:14 + offset, 8:56] = (value, value, value, 255)
    layer[10:54, 30 + offset:34 + offset] = (value, value, value, 255)
    return layer


def a_map(offset: int = 0) -> np.ndarray:
    return lines(offset, value=255)


def control(kind: str = "canny", image: np.ndarray | None = None, **over) -> ControlInput:
    return ControlInput(kind, rgba_payload(lines() if image is None else image), **over)


def request(mode: str, controls=(), model: str = "flux-dev", **params) -> JobRequest:
    image = None if mode == "txt2img" else picture(W, H)
    mask = MASK if mode == "inpaint" else None
    size = {"width": W, "height": H} if mode == "txt2img" else {}
    return JobRequest("diffusers", mode, rgba_payload(image) if image is not None else None,
                      mask_payload(mask) if mask is not None else None, model=model, params={**FAST, **size, **params},
                      controls=tuple(controls))


def pixels(client, *args, **kwargs) -> np.ndarray:
    return layer_pixels(client.run(request(*args, **kwargs), timeout=120).layers[0]).astype(int)


def differs(a: np.ndarray, b: np.ndarray, least: int = 200) -> bool:
    return (a != b).any(axis=-1).sum() > least and np.abs(a - b).max() > 10


def refused(client, field: str, *args, **kwargs) -> str:
    with pytest.raises(JobFailed) as info:
        client.run(request(*args, **kwargs), timeout=120)
    assert info.value.error.field == field, info.value
    assert info.value.error.code in (ErrorCode.INVALID_PARAM, ErrorCode.UNKNOWN_MODEL), info.value
    return info.value.error.message


def test_flux_controlnets_are_listed_as_controlnets(client):
    kinds = {m.name: m.kind for m in client.capabilities.models}
    assert kinds[CANNY] == kinds[DEPTH_FILE] == kinds[UNION] == ModelKind.CONTROLNET.value
    assert kinds["flux-dev"] == "flux"


def test_a_canny_layer_guides_flux_dev_and_follows_its_image(client):
    plain = pixels(client, "txt2img")
    guided = pixels(client, "txt2img", [control()])
    assert differs(guided, plain)
    assert differs(pixels(client, "txt2img", [control(image=lines(offset=12))]), guided)
    assert np.array_equal(pixels(client, "txt2img", [control()]), guided)  # the same request, the same pixels
    # At strength 0 the control image no longer matters. (diffusers' Flux ControlNet pipelines
    # draw the control image's latents from the seed's generator first, so the noise, and with it
    # the picture, is not the one of a run without the layer.)
    unguided = pixels(client, "txt2img", [control(strength=0.0)])
    assert np.array_equal(pixels(client, "txt2img", [control(image=lines(offset=12), strength=0.0)]), unguided)


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_a_control_guides_img2img_and_inpaint(client, mode):
    guided = pixels(client, mode, [control()], strength=1.0)
    assert differs(pixels(client, mode, [control(image=lines(offset=12))], strength=1.0), guided, least=50)


def test_a_single_file_controlnet_and_a_union_one(client):
    plain = pixels(client, "txt2img")
    depth = pixels(client, "txt2img", [control("depth", a_map(), preprocessor="none")])
    assert differs(depth, plain)
    assert differs(pixels(client, "txt2img", [control("depth", a_map(12), preprocessor="none")]), depth)
    named = pixels(client, "txt2img", [control("depth", a_map(), preprocessor="none", model=DEPTH_FILE)])
    assert np.array_equal(named, depth)
    # Only the union model serves pose (its mode 4; test_flux_control_models checks the modes given).
    pose = pixels(client, "txt2img", [control("pose", a_map(), preprocessor="none")])
    assert differs(pose, plain)
    assert differs(pixels(client, "txt2img", [control("pose", a_map(12), preprocessor="none")]), pose)


def test_two_controlnets_together(client):
    one = pixels(client, "txt2img", [control()])
    both = pixels(client, "txt2img", [control(), control("depth", a_map(), preprocessor="none", strength=0.5)])
    assert differs(both, one)


def test_controlnets_of_another_family_are_refused(client):
    message = refused(client, "job.controls.0.model", "txt2img", [control(model=SD_CANNY)])
    assert SD_CANNY in message and "SD 1.5" in message and "Flux.1" in message
    message = refused(client, "job.controls.0.model", "txt2img", [control(model=CANNY)], model="sd15")
    assert CANNY in message and "made for Flux.1" in message and "SD 1.5" in message


def test_reference_klein_and_fill_are_refused_with_a_sentence(client):
    message = refused(client, "job.controls.0.kind", "txt2img", [control("reference")])
    assert message.startswith("Flux.1 models take no reference layers") and "Stable Diffusion" in message
    message = refused(client, "job.controls.0.kind", "txt2img", [control()], model="klein")
    assert message.startswith("Flux.2 models take no canny edges layers") and "Flux.1 (dev, schnell)" in message
    message = refused(client, "job.controls.0.kind", "inpaint", [control()], model="flux-fill")
    assert message.startswith("Flux.1 Fill models take no canny edges layers")
    # The model still works after the refusals.
    assert pixels(client, "txt2img").shape == (H, W, 4)
