"""Flux.1 and Flux.2 Klein through the real server, the real client and the CLI, with tiny
models built by the tests: every mode keeps the promises the SD modes keep (pixels outside
the selection exact, progress phases, previews, cancel, recall settings), LoRAs in the
formats people download, and clear refusals for what these families do not do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from diffusion_fixtures import box_mask, picture
from helpers import layer_pixels, mask_payload, rgba_payload, run_and_cancel
from PIL import Image

from fixtures import tiny_flux, tiny_models
from paintwire.protocol import Client, ErrorCode, JobFailed, JobRequest
from paintwire.server import masks
from paintwire.server.layers import OutputLayer
from paintwire.server.region import flatten
from server_process import start_server_process

W = H = 64
FAST = {"steps": 2, "seed": 11, "prompt": "a red apple"}
MASK = box_mask(W, H, 16, 20, 28, 24)
MODELS = {"flux-dev": "flux", "flux-schnell": "flux-schnell", "flux-fill": "flux-fill", "flux-kontext": "flux-kontext",
          "klein": "flux2-klein", "klein-base": "flux2-klein-base"}


def _place(built: Path, dest: Path) -> Path:
    shutil.move(str(built), dest)
    return dest


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    build, root = tmp_path_factory.mktemp("flux-build"), tmp_path_factory.mktemp("flux-models")
    for name, variant in (("flux-dev", "dev"), ("flux-schnell", "schnell"), ("flux-fill", "fill"), ("flux-kontext", "kontext")):
        _place(tiny_flux.save_flux(build / name, variant), root / name)
    _place(tiny_flux.save_flux2_klein(build / "klein", "distilled"), root / "klein")
    _place(tiny_flux.save_flux2_klein(build / "klein-base", "base"), root / "klein-base")
    loras = root / "loras"
    dev_transformer = root / "flux-dev" / "transformer"
    tiny_flux.save_flux_lora(loras / "flux-diffusers.safetensors", dev_transformer, "diffusers")
    # diffusers' Flux.1 kohya reader splits the single blocks at the real widths: the tiny
    # LoRAs compared across formats leave them out.
    tiny_flux.save_flux_lora(loras / "flux-diffusers-double.safetensors", dev_transformer, "diffusers", single_blocks=False)
    tiny_flux.save_flux_lora(loras / "flux-bfl.safetensors", dev_transformer, "bfl", single_blocks=False)
    tiny_flux.save_flux_lora(loras / "flux-kohya.safetensors", dev_transformer, "kohya", single_blocks=False)
    tiny_flux.save_flux_lora(loras / "klein-kohya.safetensors", root / "klein" / "transformer", "kohya")
    sd = tiny_models.build_tiny_sd15(build / "sd15")
    tiny_models.write_tiny_lora(loras / "sd-lora.safetensors", sd)
    return root


@pytest.fixture(scope="module")
def server(models):
    server = start_server_process(model_dirs=[str(models)], engines=["diffusers"], previews_per_second=50.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, name="flux-test", timeout=120) as c:
        yield c


def run(client, mode, model, image=None, mask=None, events=None, **params):
    request = JobRequest("diffusers", mode, rgba_payload(image) if image is not None else None,
                         mask_payload(mask) if mask is not None else None, model=model, params={**FAST, **params})
    return client.run(request, on_event=events.append if events is not None else None, timeout=120)


def flat(image, result, i=0):
    layer = result.layers[i]
    return flatten(image, OutputLayer(layer_pixels(layer), layer.x, layer.y, layer.name))


def test_each_model_is_listed_with_its_kind_and_family(client):
    listed = {m.name: m for m in client.capabilities.models if m.engine == "diffusers"}
    for name, kind in MODELS.items():
        assert listed[name].kind == kind and listed[name].usable, name
        assert listed[name].family == kind.split("-")[0]
    txt2img = next(m for m in client.capabilities.engine("diffusers").modes if m.name == "txt2img")
    assert set(MODELS.values()) <= set(txt2img.model_kinds)


@pytest.mark.parametrize("model", list(MODELS))
def test_txt2img_makes_the_asked_size_with_progress_and_previews(client, model):
    events: list = []
    result = run(client, "txt2img", model, events=events, width=W, height=48, batch_size=2)
    assert [layer_pixels(layer).shape for layer in result.layers] == [(48, W, 4)] * 2
    phases = [e.phase for e in events if e.TYPE == "progress"]
    assert "denoising" in phases and "decoding" in phases
    assert any(e.TYPE == "preview" for e in events)
    settings = result.layers[0].settings
    assert settings["model"] == model and settings["seed"] == 11 and settings["scheduler"] == "euler"


@pytest.mark.parametrize("model", list(MODELS))
def test_inpaint_changes_the_selection_and_nothing_outside_it(client, model):
    image = picture(W, H)
    result = run(client, "inpaint", model, image=image, mask=MASK, mask_blur=4)
    out = flat(image, result)
    soft = masks.feather(MASK, 4, False)
    assert np.array_equal(out[soft == 0], image[soft == 0])
    assert (out[MASK > 0] != image[MASK > 0]).any(axis=-1).mean() > 0.5


@pytest.mark.parametrize("model", ["flux-dev", "klein"])
def test_img2img_and_expand(client, model):
    image = picture(W, H)
    assert layer_pixels(run(client, "img2img", model, image=image, strength=0.6).layers[0]).shape == (H, W, 4)
    grown = run(client, "outpaint", model, image=image, right=16)
    out = layer_pixels(grown.layers[0])
    assert out.shape == (H, W + 16, 4)
    far = masks.blur(np.pad(np.zeros((H, W), np.uint8), ((0, 0), (0, 16)), constant_values=255), 4)[:, :W]
    assert np.array_equal(out[:, :W][far == 0], image[far == 0])  # the original, bit for bit, beyond the feather


def test_the_same_seed_gives_the_same_pixels(client):
    a = layer_pixels(run(client, "txt2img", "klein", width=W, height=H).layers[0])
    b = layer_pixels(run(client, "txt2img", "klein", width=W, height=H).layers[0])
    assert np.array_equal(a, b)


def test_cancel_stops_a_flux_job(client):
    request = JobRequest("diffusers", "txt2img", model="flux-dev", params={**FAST, "steps": 30, "width": W, "height": H})
    events = run_and_cancel(client, request, "denoising")
    assert events[-1].TYPE == "cancelled"


@pytest.mark.parametrize("lora", ["flux-diffusers", "flux-bfl", "flux-kohya"])
def test_flux_loras_in_each_format_change_the_picture(client, lora):
    plain = layer_pixels(run(client, "txt2img", "flux-dev", width=W, height=H).layers[0])
    with_lora = layer_pixels(run(client, "txt2img", "flux-dev", width=W, height=H, prompt=f"a red apple <lora:{lora}:1>").layers[0])
    assert not np.array_equal(plain, with_lora)


def test_the_three_flux_lora_formats_carry_the_same_update(client):
    made = [layer_pixels(run(client, "txt2img", "flux-dev", width=W, height=H, prompt=f"a red apple <lora:{lora}:1>").layers[0])
            for lora in ("flux-diffusers-double", "flux-bfl", "flux-kohya")]
    assert np.abs(made[0].astype(int) - made[1].astype(int)).max() <= 1
    assert np.abs(made[0].astype(int) - made[2].astype(int)).max() <= 1


def test_a_klein_lora_loads(client):
    plain = layer_pixels(run(client, "txt2img", "klein", width=W, height=H).layers[0])
    with_lora = layer_pixels(run(client, "txt2img", "klein", width=W, height=H, prompt="a red apple <lora:klein-kohya:1>").layers[0])
    assert not np.array_equal(plain, with_lora)


def test_a_lora_of_another_family_is_refused_and_the_model_still_works(client):
    with pytest.raises(JobFailed) as info:
        run(client, "txt2img", "flux-dev", width=W, height=H, prompt="a red apple <lora:sd-lora:1>")
    assert info.value.error.code is ErrorCode.INVALID_PARAM and "another model family" in info.value.error.message
    assert layer_pixels(run(client, "txt2img", "flux-dev", width=W, height=H).layers[0]).shape == (H, W, 4)


@pytest.mark.parametrize("params,field", [({"soft_inpaint": True}, "soft_inpaint"),
                                          ({"masked_content": "latent_noise", "strength": 0.7}, "masked_content")])
def test_latent_blends_are_refused_with_a_sentence(client, params, field):
    with pytest.raises(JobFailed) as info:
        run(client, "inpaint", "flux-dev", image=picture(W, H), mask=MASK, **params)
    assert info.value.error.code is ErrorCode.INVALID_PARAM and info.value.error.field == f"job.params.{field}"
    assert "Flux.1" in info.value.error.message


def test_info_json_gives_each_models_family(server):
    out = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "info", "--json", "--url", server.url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    families = {m["name"]: m.get("family") for m in json.loads(out.stdout)["models"]}
    assert families["flux-fill"] == "flux" and families["klein"] == "flux2" and families.get("sd-lora") is None


def test_the_cli_inpaints_with_klein(server, tmp_path):
    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    Image.fromarray(picture(W, H)).save(image)
    Image.fromarray(MASK).save(mask)
    out = tmp_path / "out.png"
    run = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "inpaint", str(image), "--mask", str(mask), "--engine", "diffusers",
                          "--model", "klein", "-p", "steps=2", "-p", "prompt=a red apple", "-q", "-o", str(out), "--url", server.url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = np.asarray(Image.open(out).convert("RGBA"))
    soft = masks.feather(MASK, 4, False)
    assert np.array_equal(result[soft == 0], picture(W, H)[soft == 0])


def test_live_painting_with_the_distilled_klein(client):
    from helpers import scene

    from paintwire.protocol.live import LiveFrame, LiveStart, LiveStarted, LiveState, LiveStop, LiveStopped

    def expect(kind):
        for message in client.events(120):
            if isinstance(message, (LiveStarted, LiveFrame, LiveStopped)):
                assert isinstance(message, kind), message
                return message

    client.live(LiveStart(1, "diffusers", "img2img", "klein", {"prompt": "a red apple", "steps": 2, "strength": 0.8, "seed": 5}))
    expect(LiveStarted)
    frames = []
    for seq in (1, 2):
        image = scene(W, H)
        image[20:30, 4:8 + 30 * (seq - 1), :3] = (20, 200, 40)
        client.live(LiveState(1, seq, rgba_payload(image), None, 0, 0, {}))
        frames.append(expect(LiveFrame))
    assert [f.seq for f in frames] == [1, 2] and (frames[0].image.width, frames[0].image.height) == (W, H)
    assert frames[0].image.data != frames[1].image.data  # the painted change reached the model
    client.live(LiveStop(1))
    assert expect(LiveStopped).reason == "requested"


@pytest.mark.parametrize("model", ["flux-dev", "klein"])
def test_upscale_refines_in_tiles(client, model):
    image = picture(W, H)
    events: list = []
    result = run(client, "upscale", model, image=image, events=events, scale=2.0, refine=True, strength=0.3, tile_size=64)
    assert layer_pixels(result.layers[0]).shape == (2 * H, 2 * W, 4)
    assert any(e.TYPE == "progress" and e.stage == "refining" for e in events)
