"""The edit mode through the real server and the real client (and the paintwire command),
with the tiny Flux.1 Kontext and Flux.2 Klein models: an instruction applied to a
selection (the promises of an inpaint) or to the whole picture, with edit reference
layers, and the jobs it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import layer_pixels, mask_payload, rgba_payload, run_and_cancel
from PIL import Image

pytest.importorskip("diffusers")

from fixtures.control_models import write_tiny_controlnet  # noqa: E402
from fixtures.edit_models import KLEIN, KONTEXT, build_edit_models  # noqa: E402
from fixtures.tiny_models import build_tiny_sd15  # noqa: E402
from paintwire.protocol import Client, ControlInput, ErrorCode, JobFailed, JobRequest  # noqa: E402
from paintwire.server import masks  # noqa: E402
from paintwire.server.layers import OutputLayer  # noqa: E402
from paintwire.server.region import flatten  # noqa: E402
from server_process import start_server_process  # noqa: E402

W, H = 96, 80
FAST = {"steps": 2, "seed": 7, "prompt": "put the red hat on it"}
SELECTION = (20, 24, 36, 28)  # x, y, w, h
SD = "tiny-sd15"
MODELS = (KONTEXT, KLEIN)


def picture() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    img = np.empty((H, W, 4), np.uint8)
    img[..., 0] = x * 255 // (W - 1)
    img[..., 1] = y * 255 // (H - 1)
    img[..., 2] = ((x // 8 + y // 8) % 2) * 180 + 40
    img[..., 3] = 255
    return img


def selection() -> np.ndarray:
    x, y, w, h = SELECTION
    mask = np.zeros((H, W), np.uint8)
    mask[y:y + h, x:x + w] = 255
    return mask


def hat_layer() -> np.ndarray:
    """A layer of the canvas's size holding a small picture far from the selection."""
    layer = np.zeros((H, W, 4), np.uint8)
    layer[4:20, 60:92] = (220, 30, 40, 255)
    layer[12:20, 66:86] = (250, 240, 20, 255)
    return layer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = build_edit_models(tmp_path_factory.mktemp("edit-models"))
    build_tiny_sd15(folder / SD)
    write_tiny_controlnet(folder / "controlnet" / "tiny_scribble.safetensors", folder / SD)
    proc = start_server_process(engines=["classical", "diffusers"], model_dirs=[str(folder)], device="cpu", previews_per_second=50.0)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, name="edit-test", timeout=180) as c:
        yield c


def reference(layer: np.ndarray | None = None, strength: float = 1.0) -> ControlInput:
    return ControlInput("edit_reference", rgba_payload(hat_layer() if layer is None else layer), strength=strength)


def run(client, model, mask=None, controls=(), events=None, mode="edit", image=None, **params):
    request = JobRequest("diffusers", mode, rgba_payload(picture() if image is None else image),
                         mask_payload(mask) if mask is not None else None, model=model, params={**FAST, **params}, controls=tuple(controls))
    return client.run(request, on_event=events.append if events is not None else None, timeout=180)


def flat(result, i=0) -> np.ndarray:
    layer = result.layers[i]
    return flatten(picture(), OutputLayer(layer_pixels(layer), layer.x, layer.y, layer.name))


# -- what the server offers ----------------------------------------------------------------


def test_the_edit_mode_runs_on_the_models_that_edit_and_its_reference_kind_needs_no_model(client):
    engine = client.capabilities.engine("diffusers")
    edit = engine.mode("edit")
    assert edit is not None and edit.label == "Edit"
    assert {str(getattr(k, "value", k)) for k in edit.model_kinds} == {"flux-kontext", "flux2-klein", "flux2-klein-base"}
    kinds = {m.name: m.kind for m in client.capabilities.models if m.engine == "diffusers"}
    assert kinds[KONTEXT] == "flux-kontext" and kinds[KLEIN] == "flux2-klein"
    assert [i.kind.value for i in edit.inputs] == ["image", "mask", "control"]
    assert not edit.needs_mask and edit.crop.whole  # reference layers are read whole, wherever they lie
    spec = engine.control("edit_reference")
    assert spec is not None and spec.usable and spec.preprocessors == ("none",)
    assert engine.control("reference") is not None  # the IP-Adapter kind stays, for SD models


# -- a selection -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_selection_edit_with_a_reference_keeps_every_pixel_outside_the_selection(client, model):
    events: list = []
    result = run(client, model, selection(), [reference()], events=events, mask_blur=4)
    (layer,) = result.layers
    x, y, w, h = SELECTION
    # Placed like an inpaint: a layer over the selection's bounds, the feathered mask as alpha.
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (x, y, w, h)
    assert (result.width, result.height) == (W, H)
    out = flat(result)
    soft = masks.feather(selection(), 4, False)
    assert np.array_equal(out[soft == 0], picture()[soft == 0]), "a pixel outside the selection changed"
    inside = selection() > 0
    assert (out[inside] != picture()[inside]).any(axis=-1).mean() > 0.5
    # Progress, phases and previews as for any mode; the settings recall the job.
    denoising = [(e.step, e.total) for e in events if e.TYPE == "progress" and e.phase == "denoising"]
    assert denoising[-1] == (2, 2), denoising
    assert {"encoding", "denoising", "decoding"} <= {e.phase for e in events if e.TYPE == "progress"}
    assert any(e.TYPE == "preview" for e in events)
    assert layer.seed == 7 and layer.settings["prompt"] == FAST["prompt"] and layer.settings["model"] == model
    assert layer.settings["mode"] == "edit" and layer.settings["strength"] == 1.0 and layer.name == "Edit"


@pytest.mark.parametrize("model", MODELS)
def test_the_reference_layer_reaches_the_model_and_strength_changes_the_run(client, model):
    plain = layer_pixels(run(client, model, selection()).layers[0])
    again = layer_pixels(run(client, model, selection()).layers[0])
    guided = layer_pixels(run(client, model, selection(), [reference()]).layers[0])
    off = layer_pixels(run(client, model, selection(), [reference(strength=0.0)]).layers[0])
    kept = layer_pixels(run(client, model, selection(), strength=0.5).layers[0])
    assert np.array_equal(plain, again)  # same seed, same pixels
    assert not np.array_equal(plain, guided), "the reference layer did not change the result"
    assert np.array_equal(plain, off)  # a layer at strength 0 is left out
    # A lower strength starts from the original partly noised (the random tiny models cannot
    # show that it keeps more of it; that it runs another way, they can).
    assert not np.array_equal(plain, kept)


def test_a_selection_edit_can_be_cancelled(client):
    request = JobRequest("diffusers", "edit", rgba_payload(picture()), mask_payload(selection()), model=KLEIN,
                         params={**FAST, "steps": 6}, controls=(reference(),))
    events = run_and_cancel(client, request, "denoising")
    assert not any(e.TYPE == "result" for e in events)


# -- the whole picture -------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_the_whole_picture_is_edited_at_its_size_with_and_without_a_reference(client, model):
    plain = run(client, model)
    (layer,) = plain.layers
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (0, 0, W, H) and (plain.width, plain.height) == (W, H)
    pixels = layer_pixels(layer)
    assert (pixels[..., 3] == 255).all() and not np.array_equal(pixels, picture())
    guided = layer_pixels(run(client, model, controls=[reference()]).layers[0])
    kept = layer_pixels(run(client, model, strength=0.5).layers[0])
    assert not np.array_equal(pixels, guided), "the reference layer did not change the result"
    assert not np.array_equal(pixels, kept)


# -- refusals ----------------------------------------------------------------------------------


def refused(client, **kwargs) -> tuple[ErrorCode, str, str]:
    with pytest.raises(JobFailed) as info:
        run(client, **kwargs)
    return info.value.error.code, info.value.error.message, info.value.error.field


def test_an_sd_model_cannot_edit(client):
    code, message, field = refused(client, model=SD, controls=[reference()])
    assert code is ErrorCode.UNKNOWN_MODEL and field == "job.model"
    assert "Edit runs on models of kind flux-kontext, flux2-klein, flux2-klein-base" in message and "SD 1.5" in message


def test_an_edit_reference_goes_with_the_edit_mode_only(client):
    jobs = (
        JobRequest("diffusers", "txt2img", model=KLEIN, params={**FAST, "width": 64, "height": 64}, controls=(reference(),)),
        JobRequest("diffusers", "inpaint", rgba_payload(picture()), mask_payload(selection()), model=KLEIN, params=FAST, controls=(reference(),)),
        JobRequest("diffusers", "img2img", rgba_payload(picture()), model=SD, params=FAST, controls=(reference(),)),
    )
    for request in jobs:
        with pytest.raises(JobFailed) as info:
            client.run(request, timeout=180)
        error = info.value.error
        assert error.code is ErrorCode.INVALID_PARAM and error.field == "job.controls.0.kind", (request.mode, error)
        assert error.message.startswith("Edit reference layers are read by the Edit mode only"), error.message


def test_controlnet_layers_do_not_guide_flux_models_and_the_ip_adapter_kind_stays_for_sd(client):
    lines = np.zeros((H, W, 4), np.uint8)
    lines[30:32, 10:80] = (0, 0, 0, 255)
    scribble = ControlInput("scribble", rgba_payload(lines))
    code, message, field = refused(client, model=KLEIN, controls=[scribble])
    assert code is ErrorCode.INVALID_PARAM and field == "job.controls.0.kind"
    assert message.startswith("Flux.2 models take no scribble layers") and "edit reference layer" in message
    # The same ControlNet still guides an SD job.
    guided = run(client, SD, mode="img2img", controls=[scribble], strength=0.5)
    assert guided.layers


def test_an_empty_or_thin_reference_layer_is_refused_with_its_field(client):
    code, message, field = refused(client, model=KLEIN, controls=[reference(np.zeros((H, W, 4), np.uint8))])
    assert code is ErrorCode.BAD_IMAGE and field == "job.controls.0.image" and "empty" in message
    thin = np.zeros((H, W, 4), np.uint8)
    thin[10, 0:90] = 255
    code, message, field = refused(client, model=KLEIN, controls=[reference(), reference(thin)])
    assert code is ErrorCode.BAD_IMAGE and field == "job.controls.1.image" and "8 times" in message


# -- the paintwire command -----------------------------------------------------------------------


def test_the_cli_edits_a_selection_with_a_reference_picture(server, tmp_path: Path):
    Image.fromarray(picture(), "RGBA").save(tmp_path / "in.png")
    Image.fromarray(selection(), "L").save(tmp_path / "mask.png")
    hat = Image.new("RGB", (40, 24), (220, 30, 40))  # a picture of another size: fitted, its shape kept
    hat.save(tmp_path / "hat.png")
    run_cli = subprocess.run(
        [sys.executable, "-m", "paintwire.cli.main", "run", "edit", "--engine", "diffusers", "--model", KONTEXT,
         "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "--control", f"edit_reference={tmp_path / 'hat.png'}",
         "-p", "prompt=put the red hat on it", "-p", "steps=2", "-p", "seed=7", "-p", "mask_blur=0",
         "-o", str(tmp_path / "out.png"), "--layers", str(tmp_path / "layers"), "--url", server.url],
        capture_output=True, text=True, timeout=240,
    )
    assert run_cli.returncode == 0, run_cli.stderr
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGBA"))
    outside = selection() == 0
    assert np.array_equal(out[outside], picture()[outside]) and not np.array_equal(out, picture())
    meta = json.loads((tmp_path / "layers" / "layers.json").read_text())
    x, y, _, _ = SELECTION
    assert (meta["layers"][0]["x"], meta["layers"][0]["y"]) == (x, y) and meta["layers"][0]["settings"]["mode"] == "edit"
    # The same job without the reference gives other pixels: the picture reached the model.
    plain = subprocess.run(
        [sys.executable, "-m", "paintwire.cli.main", "run", "edit", "--engine", "diffusers", "--model", KONTEXT,
         "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
         "-p", "prompt=put the red hat on it", "-p", "steps=2", "-p", "seed=7", "-p", "mask_blur=0",
         "-o", str(tmp_path / "plain.png"), "-q", "--url", server.url],
        capture_output=True, text=True, timeout=240,
    )
    assert plain.returncode == 0, plain.stderr
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "plain.png").convert("RGBA")), out)
    # A reference on a mode that does not read it: the command says why and exits 1.
    wrong = subprocess.run(
        [sys.executable, "-m", "paintwire.cli.main", "run", "txt2img", "--engine", "diffusers", "--model", KLEIN,
         "--control", f"edit_reference={tmp_path / 'hat.png'}", "-p", "steps=1", "-p", "width=64", "-p", "height=64",
         "-o", str(tmp_path / "no.png"), "-q", "--url", server.url],
        capture_output=True, text=True, timeout=240,
    )
    assert wrong.returncode == 1 and "read by the Edit mode only" in wrong.stderr, wrong.stderr
