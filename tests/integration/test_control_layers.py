"""Control layers (ControlNet, IP-Adapter) through the real server and the real client,
with tiny SD1.5- and SDXL-shaped checkpoints and tiny control models built in code."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from diffusion_fixtures import box_mask, hf_cache_dir, picture, tiny_models_dir  # noqa: F401
from helpers import layer_pixels, mask_payload, rgba_payload
from server_process import start_server_process

from fixtures import control_models as cm
from fixtures.tiny_models import SD15, SDXL
from paintwire.protocol import (
    Client, ControlInput, ErrorCode, InputKind, JobFailed, JobRequest, ModelKind, PixelFormat, Submit, encode,
)

W = H = 64
FAST = {"steps": 2, "seed": 7, "prompt": "a red apple"}
MASK = box_mask(W, H, 16, 20, 28, 24)


@pytest.fixture(scope="module")
def control_dir(tmp_path_factory, tiny_models_dir):
    checkpoints = tiny_models_dir / "checkpoints"
    return cm.build_control_folder(tmp_path_factory.mktemp("controls"), checkpoints / SD15, checkpoints / SDXL)


@pytest.fixture(scope="module")
def server(tiny_models_dir, control_dir):
    # Only the two checkpoints and the control models: a small registry, a quick start.
    server = start_server_process(model_dirs=[str(tiny_models_dir / "checkpoints" / SD15), str(tiny_models_dir / "checkpoints" / SDXL),
                                              str(control_dir)], engines=["diffusers"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, name="control-test", timeout=120) as c:
        yield c


def lines_layer(width: int = W, height: int = H) -> np.ndarray:
    """A painter's layer: dark strokes on a transparent background."""
    layer = np.zeros((height, width, 4), np.uint8)
    layer[10:14, 8:56] = (0, 0, 0, 255)
    layer[10:54, 30:34] = (0, 0, 0, 255)
    return layer


def control(kind: str = "canny", image: np.ndarray | None = None, **over) -> ControlInput:
    return ControlInput(kind, rgba_payload(lines_layer() if image is None else image), **over)


def request(mode, controls=(), model=SD15, image=None, mask=None, **params) -> JobRequest:
    if mode != "txt2img" and image is None:
        image = picture(W, H)
    if mode in ("inpaint", "inpaint_sketch") and mask is None:
        mask = MASK
    extra = {"width": W, "height": H} if mode == "txt2img" else {"left": 16, "strength": 1.0} if mode == "outpaint" else {}
    return JobRequest("diffusers", mode, rgba_payload(image) if image is not None else None,
                      mask_payload(mask) if mask is not None else None, model=model, params={**FAST, **extra, **params},
                      controls=tuple(controls))


_SEEN: dict[str, np.ndarray] = {}  # a fixed seed gives the same pixels: each distinct request runs once


def pixels(client, *args, fresh: bool = False, **kwargs) -> np.ndarray:
    """The first result layer's pixels of the job; a request run before is answered from memory unless ``fresh``."""
    job = request(*args, **kwargs)
    key = hashlib.sha1(encode(Submit(0, job))).hexdigest()
    if fresh or key not in _SEEN:
        _SEEN[key] = layer_pixels(client.run(job, timeout=120).layers[0]).astype(int)
    return _SEEN[key]


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    """Visibly different: many pixels changed, some by a lot (inpaint and expand change only their area)."""
    return (a != b).any(axis=-1).sum() > 200 and np.abs(a - b).max() > 20


def refused(client, code: ErrorCode, field: str, *args, **kwargs) -> str:
    with pytest.raises(JobFailed) as info:
        client.run(request(*args, **kwargs), timeout=120)
    assert (info.value.error.code, info.value.error.field) == (code, field), info.value
    return info.value.error.message


# -- capabilities ---------------------------------------------------------------------------


def test_capabilities_list_the_control_models_and_kinds(client):
    kinds = {m.name: m.kind for m in client.capabilities.models}
    assert kinds[cm.CANNY_FOLDER] == kinds[cm.SCRIBBLE_FILE] == kinds[cm.DEPTH_ORIGINAL] == kinds[cm.XL_CANNY] == ModelKind.CONTROLNET.value
    assert kinds[cm.ADAPTER] == kinds[cm.XL_ADAPTER] == ModelKind.IP_ADAPTER.value
    assert kinds[cm.ENCODER] == ModelKind.IMAGE_ENCODER.value
    engine = client.capabilities.engine("diffusers")
    specs = {c.name: c for c in engine.controls}
    assert not specs["canny"].problem and not specs["scribble"].problem and not specs["depth"].problem and not specs["reference"].problem
    assert "controlnet/" in specs["pose"].problem and "'pose'" in specs["pose"].problem  # names the file to add and where
    assert specs["canny"].preprocessors[0] == "canny" and {p.name for p in specs["canny"].params} == {"low_threshold", "high_threshold"}
    with_controls = {m.name for m in engine.modes if m.input(InputKind.CONTROL) is not None}
    assert with_controls == {"txt2img", "img2img", "edit", "inpaint", "inpaint_sketch", "outpaint"}
    # Edit takes edit reference layers only, read by a model that edits; none is installed here.
    assert "edit_reference" in specs and "edits by instruction" in specs["edit_reference"].problem


# -- every mode --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint", "inpaint_sketch", "outpaint"])
def test_a_control_changes_the_result_and_strength_zero_does_not(client, mode):
    plain = pixels(client, mode)
    guided = pixels(client, mode, [control()])
    assert differs(guided, plain)
    assert np.array_equal(pixels(client, mode, [control(strength=0.0)]), plain)


def test_an_sdxl_checkpoint_takes_its_own_controlnet(client):
    plain = pixels(client, "txt2img", model=SDXL)
    assert differs(pixels(client, "txt2img", [control()], model=SDXL), plain)


def test_the_step_range_is_honoured(client):
    plain = pixels(client, "txt2img")
    full = pixels(client, "txt2img", [control()])
    # 2 steps: a control from 0.6 to 1.0 covers no whole step, so it never acts.
    assert np.array_equal(pixels(client, "txt2img", [control(start=0.6, end=1.0)]), plain)
    first_half = pixels(client, "txt2img", [control(start=0.0, end=0.5)])
    assert not np.array_equal(first_half, plain) and not np.array_equal(first_half, full)


@pytest.mark.parametrize("name", [cm.CANNY_FOLDER, cm.SCRIBBLE_FILE, cm.DEPTH_ORIGINAL])
def test_every_controlnet_format_loads_and_guides(client, name):
    kind = "depth" if name == cm.DEPTH_ORIGINAL else "scribble" if name == cm.SCRIBBLE_FILE else "canny"
    plain = pixels(client, "txt2img")
    assert differs(pixels(client, "txt2img", [control(kind, model=name, preprocessor="none")]), plain)


def test_several_controls_at_once(client):
    ref = picture(W, H)
    one = pixels(client, "txt2img", [control()])
    both = pixels(client, "txt2img", [control(), control("depth", strength=0.7, start=0.0, end=0.75)])
    three = pixels(client, "txt2img", [control(), control("depth", strength=0.7), control("reference", ref)])
    assert not np.array_equal(one, both) and not np.array_equal(both, three)


# -- reference images (IP-Adapter) ---------------------------------------------------------


@pytest.mark.parametrize("model", [SD15, SDXL])
def test_a_reference_image_changes_the_result(client, model):
    ref = picture(W, H)
    plain = pixels(client, "txt2img", model=model)
    assert differs(pixels(client, "txt2img", [control("reference", ref)], model=model), plain)
    assert np.array_equal(pixels(client, "txt2img", [control("reference", ref, strength=0.0)], model=model), plain)
    assert np.array_equal(pixels(client, "txt2img", model=model, fresh=True), plain)  # the adapter is gone after the job


# -- bad input ----------------------------------------------------------------------------------


def test_bad_controls_get_clear_errors_and_the_server_keeps_serving(client):
    refused(client, ErrorCode.INVALID_PARAM, "job.controls.0.kind", "txt2img", [control("glow")])
    message = refused(client, ErrorCode.BAD_IMAGE, "job.controls.0.image", "img2img", [control(image=lines_layer(32, 32))])
    assert "32x32" in message and "64x64" in message
    message = refused(client, ErrorCode.UNKNOWN_MODEL, "job.controls.0.kind", "txt2img", [control("pose")])
    assert "controlnet/" in message
    message = refused(client, ErrorCode.UNKNOWN_MODEL, "job.controls.0.model", "txt2img", [control(model=cm.CANNY_FOLDER)], model=SDXL)
    assert "SD 1.5" in message and "SDXL" in message and "controlnet/" in message
    refused(client, ErrorCode.UNKNOWN_MODEL, "job.controls.0.model", "txt2img", [control(model=SD15)])  # a checkpoint, not a ControlNet
    refused(client, ErrorCode.INVALID_PARAM, "job.controls", "upscale", [control()], image=picture(W, H))
    assert client.run(request("txt2img", [control()]), timeout=120).layers  # still serving


# -- preprocess previews --------------------------------------------------------------------------


def test_preprocess_previews_what_the_model_reads(client):
    layer = lines_layer()
    scribble = client.preprocess("diffusers", control("scribble", layer, params={"line_width": 3}))
    assert (scribble.format, scribble.width, scribble.height) == (PixelFormat.L8, W, H)
    lines = np.frombuffer(scribble.data, np.uint8).reshape(H, W)
    assert lines[12, 20] == 255 and lines[40, 10] == 0  # on the stroke, and far from it
    assert 2 <= (lines[:, 20] > 0).sum() <= 4  # a 4 px stroke became a line about 3 px wide
    none = client.preprocess("diffusers", control("pose", layer))  # no pose model installed: the preview still works
    assert none.format is PixelFormat.RGBA8
    with pytest.raises(JobFailed) as info:
        client.preprocess("diffusers", control("canny", layer, preprocessor="scribble"))
    assert (info.value.error.code, info.value.error.field) == (ErrorCode.INVALID_PARAM, "control.preprocessor")


# -- the command line -------------------------------------------------------------------------------


def test_the_cli_runs_control_and_reference_layers(server, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(picture(W, H), "RGBA").save(tmp_path / "in.png")
    Image.fromarray(lines_layer(32, 32), "RGBA").save(tmp_path / "lines.png")  # resized to the input's size by the CLI
    Image.fromarray(picture(40, 24), "RGBA").save(tmp_path / "ref.png")

    def paintwire(*extra: str) -> np.ndarray:
        out = tmp_path / f"out{len(extra)}.png"
        done = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "run", "img2img", "--engine", "diffusers", "--model", SD15,
                               "--image", str(tmp_path / "in.png"), "-p", "steps=2", "-p", "seed=3", "-q", "--url", server.url,
                               "-o", str(out), *extra], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return np.asarray(Image.open(out)).astype(int)

    plain = paintwire()
    guided = paintwire("--control", f"scribble={tmp_path / 'lines.png'}:1.5:0:1", "--reference", f"{tmp_path / 'ref.png'}:0.8")
    assert differs(guided, plain)
    bad = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "run", "img2img", "--engine", "diffusers", "--image",
                          str(tmp_path / "in.png"), "--control", "pose=" + str(tmp_path / "lines.png"), "--url", server.url,
                          "-o", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "controlnet/" in bad.stderr  # no pose model: the sentence says what to add where


# -- crops ----------------------------------------------------------------------------------------


def test_a_cropped_inpaint_with_a_control_matches_the_whole_canvas(client):
    """Control layers follow the job's crop: the same job sent as a crop (image, mask and
    control layer cut alike, to the rectangle the mode's crop rule asks for) gives the
    pixels of the whole-canvas job."""
    from paintwire.protocol import Crop
    from paintwire.protocol.crops import needed_box

    from paintwire.protocol.rect import Rect

    size = 720
    image, layer = picture(size, size), lines_layer(size, size)
    layer[600:640, 560:700] = (0, 0, 0, 255)  # strokes near the selection too
    mask = box_mask(size, size, 600, 610, 40, 30)
    whole = request("inpaint", [control(image=layer)], image=image, mask=mask)
    mode = client.capabilities.engine("diffusers").mode("inpaint")
    need = needed_box(mode.crop, dict(whole.params), Rect(600, 610, 40, 30), size, size)
    assert need.width < size or need.height < size  # a real crop, not the whole canvas
    x, y, w, h = need.x, need.y, need.width, need.height
    cut = lambda a: np.ascontiguousarray(a[y:y + h, x:x + w])  # noqa: E731
    cropped = JobRequest("diffusers", "inpaint", rgba_payload(cut(image)), mask_payload(cut(mask)), model=SD15, params=whole.params,
                         crop=Crop(x, y, size, size), controls=(control(image=cut(layer)),))
    a, b = client.run(whole, timeout=120).layers[0], client.run(cropped, timeout=120).layers[0]
    assert (a.x, a.y) == (b.x, b.y)
    assert np.array_equal(layer_pixels(a), layer_pixels(b))
    plain = client.run(request("inpaint", image=image, mask=mask), timeout=120).layers[0]
    assert not np.array_equal(layer_pixels(plain), layer_pixels(b))  # the control acted in the cropped job
