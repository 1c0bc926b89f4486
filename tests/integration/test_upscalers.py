"""Upscaler model files (ESRGAN, Real-ESRGAN, Compact, SwinIR, DAT, HAT) through the real server,
and the SD upscale workflow (a model or Lanczos, then a tiled low-strength img2img)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from diffusion_fixtures import picture, tiny_models_dir  # noqa: F401
from helpers import layer_pixels, rgba_payload, run_and_cancel
from server_process import ServerProcess, start_server_process

from fixtures.tiny_models import SD15
from fixtures.upscaler_models import COMPACT_2X, DAT_2X, ESRGAN_2X, FAMILIES, HAT_2X, REALESRGAN_4X, SWINIR_2X, build_upscaler_folder
from paintwire.protocol import Client, ErrorCode, JobFailed, JobRequest
from paintwire.server.engines.diffusion.upscalers import OVERLAP, TILE

FAST = {"steps": 2, "seed": 7, "prompt": "a red apple"}


@pytest.fixture(scope="module")
def upscalers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_upscaler_folder(tmp_path_factory.mktemp("models") / "upscalers")


@pytest.fixture(scope="module")
def server(tiny_models_dir: Path, upscalers_dir: Path) -> Iterator[ServerProcess]:  # noqa: F811
    proc = start_server_process(model_dirs=[str(tiny_models_dir), str(upscalers_dir)], engines=["classical", "diffusers"], device="cpu")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, name="upscaler-test", timeout=300) as c:
        yield c


def upscale(client: Client, image: np.ndarray, events: list | None = None, model: str | None = None, **params):
    request = JobRequest("diffusers", "upscale", rgba_payload(image), model=model, params={**FAST, "refine": False, **params})
    return client.run(request, on_event=events.append if events is not None else None, timeout=300)


def direct(name: str, folder: Path, rgb: np.ndarray) -> np.ndarray:
    """The same model run by spandrel directly on the whole image, for comparison."""
    import spandrel
    from safetensors.torch import load_file

    model = spandrel.ModelLoader().load_from_state_dict(load_file(str(folder / f"{name}.safetensors"))).eval()
    with torch.inference_mode():
        out = model(torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255))[0]
    return out.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def test_every_family_is_listed_and_pickles_are_not(client):
    models = {m.name: m.kind for m in client.capabilities.models if m.engine == "diffusers"}
    for name in FAMILIES:
        assert models[name] == "upscaler"
    assert "4x-pickled" not in models


@pytest.mark.parametrize("name", [ESRGAN_2X, REALESRGAN_4X, COMPACT_2X, SWINIR_2X, DAT_2X, HAT_2X])
def test_each_family_runs_at_its_own_scale(client, upscalers_dir, name):
    arch, scale = FAMILIES[name]
    image = picture(40, 28)
    image[:12, :12, 3] = 0  # some transparency, which must survive (Lanczos, which rings a little at the edge)
    events = []
    result = upscale(client, image, events, upscaler=name, scale=float(scale))
    assert (result.width, result.height) == (40 * scale, 28 * scale)
    out = layer_pixels(result.layers[0])
    # One tile: the server's pixels are the model's own (no Lanczos stand-in, no other model).
    want = direct(name, upscalers_dir, np.ascontiguousarray(image[..., :3]))
    assert np.abs(out[..., :3].astype(int) - want).max() <= 1
    assert (out[:4 * scale, :4 * scale, 3] == 0).all() and (out[18 * scale:, 18 * scale:, 3] == 255).all()
    progress = [(e.step, e.total) for e in events if e.TYPE == "progress" and e.stage == "upscaling"]
    assert progress == [(1, 1)]
    assert result.layers[0].settings["upscaler"] == name


def test_tiles_report_progress_and_meet_without_seams(client, upscalers_dir):
    w, h = TILE + 100, TILE // 2
    image = picture(w, h)
    events = []
    result = upscale(client, image, events, upscaler=ESRGAN_2X, scale=2.0)
    progress = [(e.step, e.total) for e in events if e.TYPE == "progress" and e.stage == "upscaling"]
    assert progress == [(1, 2), (2, 2)]  # two tiles side by side
    out = layer_pixels(result.layers[0])[..., :3].astype(int)
    whole = direct(ESRGAN_2X, upscalers_dir, np.ascontiguousarray(image[..., :3])).astype(int)
    # Close to one whole pass everywhere, the tiles' shared columns included.
    seam = slice(2 * (w - TILE), 2 * TILE)
    assert np.abs(out - whole).mean() < 2 and np.abs(out[:, seam] - whole[:, seam]).mean() < 4
    assert OVERLAP > 0


def test_a_smaller_model_runs_twice_and_a_bigger_one_is_resized(client):
    image = picture(24, 20)
    events = []
    four = upscale(client, image, events, upscaler=ESRGAN_2X, scale=4.0)
    assert (four.width, four.height) == (96, 80)
    assert [(e.step, e.total) for e in events if e.TYPE == "progress" and e.stage == "upscaling"] == [(1, 2), (2, 2)]
    two = upscale(client, image, upscaler=REALESRGAN_4X, scale=2.0)
    assert (two.width, two.height) == (48, 40)
    sized = upscale(client, image, upscaler=SWINIR_2X, width=50, height=30)
    assert (sized.width, sized.height) == (50, 30)


def test_cancel_stops_between_tiles(server):
    with Client(server.url, name="upscaler-cancel", timeout=300) as c:
        request = JobRequest("diffusers", "upscale", rgba_payload(picture(TILE * 3, TILE * 3)),
                             params={**FAST, "refine": False, "upscaler": ESRGAN_2X, "scale": 2.0})
        events = run_and_cancel(c, request, "upscaling", timeout=300)
        steps = [e for e in events if e.TYPE == "progress" and e.stage == "upscaling"]
        assert steps[0].total == 16 and max(e.step for e in steps) <= 3  # 4x4 tiles; stopped after one or two
        assert upscale(c, picture(16, 16), upscaler=ESRGAN_2X).width == 32  # and the server is free again


def test_sd_upscale_model_then_tiled_refine(client):
    image = picture(48, 40)
    plain = upscale(client, image, upscaler=ESRGAN_2X, scale=2.0)
    events = []
    refined = upscale(client, image, events, model=SD15, upscaler=ESRGAN_2X, scale=2.0, refine=True, strength=0.3,
                      tile_size=48, tile_overlap=16, steps=4)
    assert (refined.width, refined.height) == (96, 80)
    a, b = layer_pixels(plain.layers[0]).astype(int), layer_pixels(refined.layers[0]).astype(int)
    # The refine redraws the colour (with random weights, anything); the alpha stays the upscaler's.
    assert not np.array_equal(a[..., :3], b[..., :3]) and np.array_equal(a[..., 3], b[..., 3])
    refining = [(e.step, e.total) for e in events if e.TYPE == "progress" and e.stage == "refining"]
    # 3 x 2 tiles of 48 px over 96 x 80; 4 steps x 0.3 = 1 step per tile.
    assert refining == [(i, 6) for i in range(1, 7)]
    assert refined.layers[0].settings["strength"] == 0.3


def test_sd_upscale_progress_counts_the_model_calls_of_a_second_order_sampler(client):
    events = []
    upscale(client, picture(24, 24), events, model=SD15, scale=2.0, refine=True, strength=0.5, tile_size=32, tile_overlap=8,
            steps=4, scheduler="heun")
    refining = [(e.step, e.total) for e in events if e.TYPE == "progress" and e.stage == "refining"]
    # 4 tiles of 2 steps, Heun calling the model 3 times for them.
    assert [s for s, _ in refining] == list(range(1, 13)) and {t for _, t in refining} == {12}


def test_an_unknown_upscaler_names_the_ones_there_are(client):
    with pytest.raises(JobFailed) as info:
        upscale(client, picture(16, 16), upscaler="no-such-upscaler")
    assert info.value.error.code is ErrorCode.INVALID_PARAM and "2x-tiny-esrgan" in info.value.error.message


def test_the_command_line_runs_an_upscaler_model(server, upscalers_dir, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    image = picture(30, 20)
    Image.fromarray(image, "RGBA").save(tmp_path / "in.png")
    run = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "upscale", str(tmp_path / "in.png"), "--engine", "diffusers",
                          "-p", f"upscaler={REALESRGAN_4X}", "-p", "refine=false", "--scale", "4", "-o", str(tmp_path / "big.png"),
                          "--url", server.url], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = np.asarray(Image.open(tmp_path / "big.png").convert("RGBA"))
    want = direct(REALESRGAN_4X, upscalers_dir, np.ascontiguousarray(image[..., :3]))
    assert out.shape == (80, 120, 4) and np.abs(out[..., :3].astype(int) - want).max() <= 1
