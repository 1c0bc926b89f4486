"""The Krita plug-in, installed from its packaged zip into a fresh profile (with
Krita's own importer), in real Krita under Xvfb, against a real Paintwire server.
Every test runs on Krita 5.2, 5.3 and 6.0 (Qt 6), each from a Debian chroot of
its own (tests/hosts/krita/setup_chroot.sh), and the classical scenario also on
the system's Krita (Debian 12: 5.1, the oldest supported), each skipping with
its reason where that Krita is not there.

The scenario driver (tests/hosts/krita/driver) works the docker's widgets the
way an artist does. Classical engine: a server that is not there, a job the
server rejects (an empty layer as the mask), an inpaint of a feathered
selection, the history's "Apply again" and "Use settings", an upscale (a new
document), the same inpaint on a 16-bit document and a refusal on a float one;
a result sent from the server's history (applied, then opened as a layer) and
"Use settings from image...".
Diffusers engine with a tiny model, when installed: a job cancelled while it
runs, an inpaint with a prompt, a seed and a batch of two (a group of two
layers, live preview), generate and refine. In place (driver/inplace.py): human labels, the Generate action, the preview layer
on the canvas and its removal, Expand growing the canvas and Upscale resizing
the document, the history saved in a .kra and restored when it is reopened,
and the UI-thread time of a job on a 4096x4096 document. Krita exports the
documents as OpenRaster, and the tests check from outside that the new layers
sit at the server's positions with the server's pixels, and that the original
layer is untouched. Screenshots go to tests/hosts/artifacts/krita/VERSION/.
"""
from __future__ import annotations

import importlib.util
import io
import shutil
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE / "krita"))

from krita_harness import HOSTS, SYSTEM, KritaHost, make_profile, run_scenario, save_profile_cache  # noqa: E402

from server_process import ServerProcess, start_server_process  # noqa: E402

from paintwire.protocol import Client, ImagePayload, JobRequest, PixelFormat, raw_image  # noqa: E402
from paintwire.protocol.metadata import png_text  # noqa: E402
from paintwire.protocol.pngtext import add_text  # noqa: E402

ARTIFACTS = HERE / "artifacts" / "krita"
WIDTH, HEIGHT = 160, 120
SELECTION = (50, 40, 40, 30)  # x, y, w, h: a hard-edged rectangle, so the mask is known exactly
PARAMS = {"method": "telea", "mask_blur": 6, "padding": 16}
FEATHER = 4  # Select > Feather Selection radius for the classical scenario
TIME_LIMIT = 150.0  # seconds for a whole Krita run
IN_PLACE_TIME_LIMIT = 420.0  # the in-place scenario runs seven jobs, four with the tiny model on the CPU

pytestmark = [pytest.mark.host, pytest.mark.slow]


def _usable(host: KritaHost) -> KritaHost:
    reason = host.missing()
    if reason:
        pytest.skip(f"Krita host test ({host.version}): {reason}")
    return host


@pytest.fixture(params=HOSTS, ids=lambda host: f"krita{host.version}")
def krita_host(request) -> KritaHost:
    return _usable(request.param)


@pytest.fixture(params=(SYSTEM, *HOSTS), ids=lambda host: f"krita{host.version}")
def any_krita(request) -> KritaHost:
    """Every Krita, the oldest supported one included."""
    return _usable(request.param)


def artifacts(host: KritaHost, name: str) -> Path:
    return ARTIFACTS / host.version / name


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        points = [line.split()[1] for line in fh]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def input_image() -> np.ndarray:
    """An opaque test picture with detail for the inpaint to work on: gradients and a checker."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgba = np.empty((HEIGHT, WIDTH, 4), np.uint8)
    rgba[..., 0] = x * 255 // (WIDTH - 1)
    rgba[..., 1] = y * 255 // (HEIGHT - 1)
    rgba[..., 2] = ((x // 10 + y // 10) % 2) * 200 + 20
    rgba[..., 3] = 255
    return rgba


def selection_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    x, y, w, h = SELECTION
    mask[y : y + h, x : x + w] = 255
    return mask


def read_ora(path: Path) -> dict[str, tuple[int, int, np.ndarray]]:
    """Layers of an OpenRaster file by name: (x, y, RGBA pixels)."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        stack = ET.fromstring(zf.read("stack.xml"))
        for layer in stack.iter("layer"):
            pixels = np.asarray(Image.open(io.BytesIO(zf.read(layer.get("src")))).convert("RGBA"))
            out[layer.get("name")] = (int(layer.get("x", 0)), int(layer.get("y", 0)), pixels)
    return out


def on_canvas(x: int, y: int, pixels: np.ndarray) -> np.ndarray:
    canvas = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    h, w = pixels.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, WIDTH), min(y + h, HEIGHT)
    canvas[y0:y1, x0:x1] = pixels[y0 - y : y1 - y, x0 - x : x1 - x]
    return canvas


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    # plugins/krita/build.py, the project's packaging command, loaded by path
    # ("build" is also the name of a PyPI package).
    spec = importlib.util.spec_from_file_location("paintwire_krita_build", REPO / "plugins" / "krita" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(tmp_path_factory.mktemp("dist") / "paintwire-krita.zip")


@pytest.fixture(scope="module")
def shared_server() -> Iterator[Callable[..., ServerProcess]]:
    """``shared_server(**config)``: a server with those settings, shared by a test's runs on
    every Krita (pytest runs them one after another). The running one is kept while the same
    settings are asked for; when others are, it is stopped and must have exited cleanly."""
    running: list[tuple[dict, ServerProcess]] = []

    def stop() -> None:
        while running:
            config, server = running.pop()
            code = server.stop()
            assert code == 0, f"server {config} exited with {code}:\n{server.log()}"

    def get(**config: Any) -> ServerProcess:
        if running and running[0][0] == config:
            return running[0][1]
        stop()
        running.append((config, start_server_process(**config)))
        return running[0][1]

    yield get
    stop()


def run_krita(
    tmp_path: Path, plugin_zip: Path, server_url: str, jobs: list[dict], out_dir: Path, host: KritaHost = SYSTEM,
    depth_checks: list[str] = (), feather: int = 0, strokes: tuple[int, int, int, int] | None = None,
    time_limit: float = TIME_LIMIT, files: dict[str, bytes] | None = None, **extra,
):
    """Run the driver's scenario in a fresh Krita; returns the run and its steps by name.
    ``files`` are written beside the input; the scenario names them by key."""
    image = input_image()
    bgra = image[..., [2, 1, 0, 3]].tobytes()  # what Krita's setPixelData takes for RGBA/U8
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work = host.work_dir(tmp_path / "work")
    try:
        (work / "input.bgra").write_bytes(bgra)
        for name, data in (files or {}).items():
            (work / name).write_bytes(data)
        profile = make_profile(work / "profile", plugin_zip, host)
        scenario = {
            "server_url": server_url,
            "dead_url": "ws://127.0.0.1:9/ws",
            "width": WIDTH,
            "height": HEIGHT,
            "input": host.inside(work / "input.bgra"),
            "selection": list(SELECTION),
            "jobs": jobs,
            "depth_checks": list(depth_checks),
            "depth_job": {"mode": "inpaint", "model": "classical/", "params": PARAMS},
            "feather": feather,
            "strokes": list(strokes) if strokes else None,
            "files": {name: host.inside(work / name) for name in files or {}},
            **extra,
        }
        run_out = out_dir if host.root is None else work / "out"
        run = run_scenario(profile, scenario, run_out, time_limit, host)
        if run_out != out_dir:
            shutil.copytree(run_out, out_dir)
        report = run.report
        assert run.returncode == 0 and report.get("ok"), f"Krita run failed (rc {run.returncode}): {report.get('error')}\n{run.log[-4000:]}"
        save_profile_cache(profile, host)
    finally:
        # run_chroot.sh unmounts proc/dev/sys on exit; a work folder never holds a mount, but a
        # delete through a bind mount would reach the host, so look before deleting.
        if host.root is not None and not _mounts_under(work):
            shutil.rmtree(work, ignore_errors=True)
    for shot in ("krita-window.png", "krita-docker.png"):
        assert (out_dir / shot).stat().st_size > 1000, f"screenshot {shot} missing or empty"
    return run, {s["name"]: s for s in report["steps"]}


def test_krita_docker_inpaints_the_selection(live_server, tmp_path, plugin_zip, any_krita):
    krita_host = any_krita
    started = time.monotonic()
    image = input_image()
    out_dir = artifacts(krita_host, "classical")
    jobs = [
        # First a job that the server rejects: an empty layer as the mask.
        {"name": "failed-job", "mode": "inpaint", "model": "classical/", "params": PARAMS, "mask_layer": "Empty mask"},
        {"name": "inpaint", "mode": "inpaint", "model": "classical/", "params": PARAMS},
        {"name": "apply-again", "action": "apply"},
        {"name": "use-settings", "action": "rerun"},
        # Last, as it opens a new document: a result of another size than the canvas.
        {"name": "upscale", "mode": "upscale", "model": "classical/", "params": {"scale": 2.0}, "resize_target": "new_document"},
    ]
    run, steps = run_krita(tmp_path, plugin_zip, live_server.url, jobs, out_dir, krita_host, depth_checks=["U16", "F32"], feather=FEATHER)
    # Krita's feathered selection: soft values between 0 and 255 around the rectangle.
    selection = np.frombuffer((out_dir / "selection.l8").read_bytes(), np.uint8).reshape(HEIGHT, WIDTH)
    soft = (selection > 0) & (selection < 255)
    assert soft.any() and (selection == 255).any(), "the scenario's selection is not feathered"
    assert (out_dir / "selection-U16.l8").read_bytes() == selection.tobytes()

    assert steps["docker"]["krita"].startswith(krita_host.version), steps["docker"]
    # A server that is not there: said in the docker, and Generate stays off.
    assert steps["dead-server"]["status"].startswith("Not connected: Cannot connect")
    assert steps["dead-server"]["generate_enabled"] is False
    # The docker built its modes from the server's capabilities.
    assert "inpaint" in steps["connected"]["modes"] and "upscale" in steps["connected"]["modes"]
    # A job the server rejects shows its reason and leaves the document alone.
    assert steps["failed-job"]["status"].startswith("Failed: The mask is empty"), steps["failed-job"]
    assert steps["failed-job"]["layers_unchanged"] is True
    assert steps["inpaint"]["status"].startswith("Done"), steps["inpaint"]
    assert steps["inpaint"]["history"] == 1
    # The history: the result added again as another layer; its settings back in the panel.
    again = [l["name"] for l in steps["apply-again"]["layers"]]
    assert again.count("Inpaint (telea)") == 2, again
    assert steps["apply-again"]["status"].startswith("Added the result again")
    assert steps["use-settings"]["layers_unchanged"] is True
    assert steps["use-settings"]["mode"] == "inpaint"
    assert {k: steps["use-settings"]["form"][k] for k in PARAMS} == PARAMS
    # An upscale opens as a new document; this one is left alone.
    assert steps["upscale"]["status"].startswith("Done") and "a new document" in steps["upscale"]["status"], steps["upscale"]
    assert steps["upscale"]["layers_unchanged"] is True

    # What the server makes of the same request, asked directly.
    request = JobRequest(
        engine="classical", mode="inpaint", model="opencv",
        image=raw_image(WIDTH, HEIGHT, PixelFormat.RGBA8, image.tobytes()),
        mask=ImagePayload(WIDTH, HEIGHT, PixelFormat.L8, selection.tobytes()),  # feathering and all
        params=PARAMS,
    )
    with Client(live_server.url) as client:
        expected = client.run(request).layers[0]
    exp_pixels = np.frombuffer(expected.image.data, np.uint8).reshape(expected.image.height, expected.image.width, 4)

    # From outside Krita: the exported document.
    layers = read_ora(out_dir / "result.ora")
    assert "Original" in layers, list(layers)
    ox, oy, original = layers["Original"]
    assert np.array_equal(on_canvas(ox, oy, original), image), "the original layer was modified"
    new = [name for name in layers if name.startswith("Inpaint")]
    assert new == ["Inpaint (telea)"], list(layers)
    with zipfile.ZipFile(out_dir / "result.ora") as zf:
        names = [l.get("name") for l in ET.fromstring(zf.read("stack.xml")).iter("layer")]
    assert names.count("Inpaint (telea)") == 2, names  # the result and the one applied again from the history
    x, y, got = layers[new[0]]
    got_canvas, exp_canvas = on_canvas(x, y, got), on_canvas(expected.x, expected.y, exp_pixels)
    assert np.array_equal(got_canvas[..., 3], exp_canvas[..., 3]), "the new layer's coverage or position differs from the server's"
    visible = exp_canvas[..., 3] > 0
    assert np.array_equal(got_canvas[visible], exp_canvas[visible]), "the new layer's pixels differ from the server's"
    # It really changed something inside the selection, and nothing outside it.
    sx, sy, sw, sh = SELECTION
    assert (got_canvas[sy : sy + sh, sx : sx + sw, :3] != image[sy : sy + sh, sx : sx + sw, :3]).any()
    assert (got_canvas[sy : sy + sh, sx : sx + sw, 3] > 0).all(), "the new layer does not cover the whole selection"
    reach = 3 * PARAMS["mask_blur"] + 2 * FEATHER  # how far the feathering may spread
    outside = np.ones_like(visible)
    outside[max(0, sy - reach) : sy + sh + reach, max(0, sx - reach) : sx + sw + reach] = False
    assert not visible[outside].any(), "the new layer covers pixels far outside the selection"

    # A 16-bit document: the same job, the same layer, written back in 16 bits.
    u16 = steps["depth-U16"]
    assert u16["status"].startswith("Done"), u16
    assert u16["new_layer"]["name"] == "Inpaint (telea)"
    bx, by, bw, bh = u16["new_layer"]["bounds"]
    wide = (out_dir / "U16-layer.raw").read_bytes()
    got16 = np.frombuffer(wide, "<u2").reshape(bh, bw, 4)[..., [2, 1, 0, 3]]  # B, G, R, A to R, G, B, A
    assert (got16 % 257 == 0).all(), "8-bit results are widened as v * 257"
    got16_canvas = on_canvas(bx, by, (got16 // 257).astype(np.uint8))
    assert np.array_equal(got16_canvas[..., 3], exp_canvas[..., 3])
    assert np.array_equal(got16_canvas[visible], exp_canvas[visible])
    # A floating-point document: refused with what to do, and left alone.
    f32 = steps["depth-F32"]
    assert f32["status"].startswith("This document is RGBA F32") and "16-bit integer" in f32["status"], f32
    assert f32["layers_unchanged"] is True and "new_layer" not in f32

    elapsed = time.monotonic() - started
    (out_dir / "timing.txt").write_text(f"krita run {run.seconds:.1f} s, whole test {elapsed:.1f} s\n", encoding="utf-8")


def test_krita_takes_a_recall_from_the_servers_history(start_server, tmp_path, plugin_zip, krita_host):
    """The server's history sends a result to this Krita (as its page's "send to Krita" does):
    the docker offers, without blocking, to apply the settings or open the image as a layer."""
    server = start_server(history=True, history_dir=str(tmp_path / "history"))
    out_dir = artifacts(krita_host, "recall")
    jobs = [
        {"name": "inpaint", "mode": "inpaint", "model": "classical/", "params": PARAMS},
        # The panel shows another mode and value when the recall comes.
        {"name": "recall-apply", "action": "recall", "first": {"mode": "upscale", "model": "classical/", "params": {"scale": 3.0}}},
        {"name": "recall-layer", "action": "recall"},
        # "Use settings from image...": a PNG with Paintwire's settings in it.
        {"name": "image-settings", "action": "image-settings", "file": "saved.png",
         "first": {"mode": "upscale", "model": "classical/", "params": {"scale": 3.0}}},
    ]
    saved = {"engine": "classical", "mode": "inpaint", "params": {"method": "ns", "mask_blur": 9, "padding": 20, "prompt": "x"}}
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    files = {"saved.png": add_text(png.getvalue(), png_text(saved))}
    run, steps = run_krita(tmp_path, plugin_zip, server.url, jobs, out_dir, krita_host, files=files)
    assert steps["inpaint"]["status"].startswith("Done"), steps["inpaint"]
    apply = steps["recall-apply"]
    record = apply["record"]
    assert apply["offer"]["modal"] is False and f"Result {record['id']}" in apply["offer"]["text"]
    assert apply["status"].startswith(f"Settings from history result {record['id']}"), apply
    assert apply["mode"] == "inpaint" and {k: apply["form"][k] for k in PARAMS} == PARAMS
    assert apply["layers_unchanged"] is True  # settings only: the document is left alone

    opened = steps["recall-layer"]
    assert opened["status"].startswith("Opened the recalled image"), opened
    name = f"History {record['id']}"
    new = [layer for layer in opened["layers"] if layer["name"] == name]
    assert [layer["bounds"] for layer in new] == [[0, 0, record["width"], record["height"]]], opened["layers"]
    # From outside: the layer holds the history's image, pixel for pixel.
    with urllib.request.urlopen(server.http + record["image"]) as response:
        stored = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGBA"))
    x, y, pixels = read_ora(out_dir / "result.ora")[name]
    assert (x, y) == (0, 0) and np.array_equal(pixels[: stored.shape[0], : stored.shape[1]], stored)

    from_image = steps["image-settings"]
    assert from_image["status"].startswith("Settings from the image (Paintwire's metadata)"), from_image
    assert "prompt" in from_image["status"]  # the one setting the classical Inpaint lacks, named
    assert from_image["mode"] == "inpaint" and from_image["layers_unchanged"] is True
    assert {k: from_image["form"][k] for k in ("method", "mask_blur", "padding")} == {"method": "ns", "mask_blur": 9, "padding": 20}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="the diffusers engine needs torch (pip install -e .[diffusers])")
    try:
        from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the diffusers engine is not available: {exc}")
    from fixtures.tiny_models import build_tiny_sd15

    folder = tmp_path_factory.mktemp("models")
    build_tiny_sd15(folder / "tiny-sd15")
    return folder


DIFFUSERS_PARAMS = {"steps": 2, "seed": 1234, "batch_size": 2}
STROKES = (110, 16, 20, 14)  # x, y, w, h of the sketch strokes, away from SELECTION
PROMPT = "a red fox"


def test_krita_docker_inpaints_with_a_tiny_diffusers_model(shared_server, tiny_model_dir, tmp_path, plugin_zip, krita_host):
    """A prompt, a seed and a batch of two: the results arrive as two layers in
    a group named after the job, each named after the prompt and its seed."""
    started = time.monotonic()
    server = shared_server(engines=["classical", "diffusers"], model_dirs=[str(tiny_model_dir)], device="cpu")
    out_dir = artifacts(krita_host, "diffusers")
    jobs = [
        # A long job, cancelled while it runs: nothing is added.
        {"name": "cancelled", "mode": "inpaint", "model": "diffusers/", "prompt": PROMPT,
         "params": {"steps": 150, "seed": 1, "strength": 1.0}, "cancel": True, "timeout": 120},
        {"name": "diffusers-inpaint", "mode": "inpaint", "model": "diffusers/", "prompt": PROMPT,
         "params": {**DIFFUSERS_PARAMS, "strength": 0.75}, "timeout": 120},
        # After the inpaint, whose input is the visible image: these change what is visible.
        # Inpaint sketch: strokes outside the selection join the mask.
        {"name": "sketch", "mode": "inpaint_sketch", "model": "diffusers/", "prompt": PROMPT, "show_layer": "Strokes",
         "sketch_layer": "Strokes", "params": {"steps": 2, "seed": 5, "batch_size": 1, "mask_blur": 0}, "timeout": 120},
        {"name": "generate", "mode": "txt2img", "model": "diffusers/", "prompt": "a blue bird",
         "params": {"steps": 2, "seed": 7, "batch_size": 1}, "timeout": 120},
        {"name": "refine", "mode": "img2img", "model": "diffusers/", "prompt": "a blue bird",
         "params": {"steps": 2, "seed": 8, "strength": 0.5}, "timeout": 120},
    ]
    run, steps = run_krita(tmp_path, plugin_zip, server.url, jobs, out_dir, krita_host, strokes=STROKES)
    cancelled = steps["cancelled"]
    assert cancelled["status"].startswith("Cancelled"), cancelled
    assert cancelled["layers_unchanged"] is True and cancelled["history"] == 0 and cancelled["cancel_enabled"] is False
    step = steps["diffusers-inpaint"]
    assert step["status"].startswith("Done"), step
    assert step["preview"] is True, "no live preview was shown"
    assert step["history"] == 1
    # Inpaint sketch: one layer covering the selection and the strokes (which lie outside it).
    sketched = [l for l in steps["sketch"]["layers"] if l["name"] == f"{PROMPT} [seed 5]"]
    assert steps["sketch"]["status"].startswith("Done") and len(sketched) == 1, steps["sketch"]
    lx, ly, lw, lh = sketched[0]["bounds"]
    for rx, ry, rw, rh in (SELECTION, STROKES):
        assert lx <= rx and ly <= ry and rx + rw <= lx + lw and ry + rh <= ly + lh, (sketched[0], SELECTION, STROKES)
    # Generate: a canvas-sized layer named after its prompt and seed.
    generated = [l for l in steps["generate"]["layers"] if l["name"] == "a blue bird [seed 7]"]
    assert steps["generate"]["status"].startswith("Done"), steps["generate"]
    assert [l["bounds"] for l in generated] == [[0, 0, WIDTH, HEIGHT]], steps["generate"]["layers"]
    # Refine with a selection: a layer over the selected part, named after prompt and seed.
    refined = [l for l in steps["refine"]["layers"] if l["name"] == "a blue bird [seed 8]"]
    assert steps["refine"]["status"].startswith("Done") and len(refined) == 1, steps["refine"]
    assert {"txt2img", "img2img", "inpaint", "inpaint_sketch", "outpaint", "upscale"} <= set(steps["connected"]["modes"])

    image = input_image()
    request = JobRequest(
        engine="diffusers", mode="inpaint", model="tiny-sd15",
        image=raw_image(WIDTH, HEIGHT, PixelFormat.RGBA8, image.tobytes()),
        mask=ImagePayload(WIDTH, HEIGHT, PixelFormat.L8, selection_mask().tobytes()),
        params={"prompt": PROMPT, **DIFFUSERS_PARAMS},
    )
    with Client(server.url) as client:
        expected = client.run(request).layers

    with zipfile.ZipFile(out_dir / "result.ora") as zf:
        stack = ET.fromstring(zf.read("stack.xml"))
    groups = list(stack.iter("stack"))[1:]  # the first is the image's root
    assert [g.get("name") for g in groups] == [f"{PROMPT} [2 results, seeds 1234-1235]"]
    assert sorted(l.get("name") for l in groups[0].iter("layer")) == [f"{PROMPT} [seed 1234]", f"{PROMPT} [seed 1235]"]

    layers = read_ora(out_dir / "result.ora")
    ox, oy, original = layers["Original"]
    assert np.array_equal(on_canvas(ox, oy, original), image), "the original layer was modified"
    for want in expected:
        x, y, got = layers[f"{PROMPT} [seed {want.seed}]"]
        pixels = np.frombuffer(want.image.data, np.uint8).reshape(want.image.height, want.image.width, 4)
        got_canvas, exp_canvas = on_canvas(x, y, got), on_canvas(want.x, want.y, pixels)
        assert np.array_equal(got_canvas[..., 3], exp_canvas[..., 3]), f"seed {want.seed}: coverage or position differs"
        visible = exp_canvas[..., 3] > 0
        # Same seed, same server, same CPU: the same picture, give or take float rounding.
        diff = np.abs(got_canvas[visible].astype(int) - exp_canvas[visible].astype(int))
        assert diff.max() <= 2, f"seed {want.seed}: pixels differ from the server's by up to {diff.max()}"

    elapsed = time.monotonic() - started
    (out_dir / "timing.txt").write_text(f"krita run {run.seconds:.1f} s, whole test {elapsed:.1f} s\n", encoding="utf-8")


def test_krita_docker_runs_a_mode_only_the_server_knows(shared_server, tmp_path, plugin_zip, krita_host):
    """A server with an engine named in its configuration (tests/fixtures/server_only_engine.py):
    its "posterize" mode is in no plug-in file, yet the docker lists it, builds its form
    (a choice shown by its label) and runs it into a new layer."""
    from fixtures.server_only_engine import posterize

    server = shared_server(engines=["classical", "fixtures.server_only_engine:PosterizeEngine"])
    out_dir = artifacts(krita_host, "server-only")
    jobs = [{"name": "posterize", "mode": "posterize", "model": "extras/", "params": {"levels": 3, "palette": "grey"}}]
    run, steps = run_krita(tmp_path, plugin_zip, server.url, jobs, out_dir, krita_host)
    assert steps["connected"]["modes"] == ["inpaint", "upscale", "posterize"]  # the server's order
    assert steps["job-start"]["form"] == {"levels": 3, "palette": "grey"}
    assert steps["posterize"]["status"].startswith("Done: Posterize (3 levels)"), steps["posterize"]
    layers = read_ora(out_dir / "result.ora")
    x, y, got = layers["Posterize (3 levels)"]
    got = on_canvas(x, y, got)
    want = posterize(input_image(), 3, grey=True)
    inside = selection_mask() == 255
    assert np.array_equal(got[inside], want[inside]) and (got[~inside][..., 3] == 0).all()
    ox, oy, original = layers["Original"]
    assert np.array_equal(on_canvas(ox, oy, original), input_image()), "the original layer was modified"


@pytest.fixture(scope="module")
def single_file_dir(tmp_path_factory) -> Path:
    """One checkpoint file with the real 49408-token CLIP vocabulary, alone in a folder."""
    pytest.importorskip("torch", reason="the diffusers engine needs torch (pip install -e .[diffusers])")
    from fixtures.tiny_models import CLIP_VOCAB_SIZE, write_tiny_single_file

    folder = tmp_path_factory.mktemp("painter-models")
    write_tiny_single_file(folder / "my-checkpoint.safetensors", vocab_size=CLIP_VOCAB_SIZE)
    return folder


def test_krita_generates_with_a_real_vocabulary_single_file(shared_server, single_file_dir, tmp_path, plugin_zip, krita_host):
    """A painter's setup: one checkpoint file with the real 49408-token CLIP
    vocabulary, alone in an empty model folder, generating from the docker with a
    prompt in the WebUI's syntax."""
    from paintwire.hostkit.placement import layer_name

    server = shared_server(engines=["diffusers"], model_dirs=[str(single_file_dir)], device="cpu")
    prompt = "(a lighthouse:1.2) on a cliff BREAK oil painting"
    jobs = [{"name": "single-file", "mode": "txt2img", "model": "diffusers/my-checkpoint", "prompt": prompt,
             "params": {"steps": 2, "seed": 11, "batch_size": 1}, "timeout": 180}]
    _, steps = run_krita(tmp_path, plugin_zip, server.url, jobs, artifacts(krita_host, "single-file"), krita_host)
    step = steps["single-file"]
    assert step["status"].startswith("Done"), step
    name = layer_name(prompt, 11, "")
    assert [l["bounds"] for l in step["layers"] if l["name"] == name] == [[0, 0, WIDTH, HEIGHT]], step["layers"]


# Only the masked region is generated: a tiny model on the CPU, on a 4096x4096 canvas.
BIG_PARAMS = {"steps": 2, "seed": 11, "batch_size": 1, "strength": 1.0, "inpaint_area": "only_masked", "padding": 16}
GROW = {"left": 16, "top": 8}


def test_krita_docker_works_in_place(shared_server, tiny_model_dir, tmp_path, plugin_zip, krita_host, capsys, request):
    """Expand and upscale change this document (not a new one), the preview shows
    on the canvas and leaves no layer behind, the history lives in the .kra, and
    the UI thread's share of a 4096x4096 job is recorded and printed."""
    if krita_host.version == "6.0":
        # Known and open: on Krita 6.0 this scenario fails in some runs (a layer change of the
        # canvas preview or of Expand's undo is not seen in time); the other Krita versions
        # pass it every time. It still runs and reports; docs/krita.md says so.
        request.applymarker(pytest.mark.xfail(reason="Krita 6.0 in-place scenario is flaky under load", strict=False))
    server = shared_server(engines=["classical", "diffusers"], model_dirs=[str(tiny_model_dir)], device="cpu")
    out_dir = artifacts(krita_host, "inplace")
    scenario = {
        "flow": "inplace",
        "preview_job": {"mode": "inpaint", "model": "diffusers/", "prompt": PROMPT,
                        "params": {"steps": 3, "seed": 3, "batch_size": 1, "strength": 1.0}, "timeout": 120},
        "cancel_job": {"mode": "inpaint", "model": "diffusers/", "prompt": PROMPT,
                       "params": {"steps": 150, "seed": 1, "strength": 1.0}, "timeout": 120},
        "expand_job": {"mode": "outpaint", "model": "diffusers/", "prompt": "a blue bird",
                       "params": {"steps": 2, "seed": 9, "right": 0, "bottom": 0, "mask_blur": 0, **GROW}, "timeout": 120},
        "upscale_job": {"mode": "upscale", "model": "classical/", "params": {"scale": 2.0}, "timeout": 120},
        "big_job": {"mode": "inpaint", "model": "diffusers/", "prompt": "a green leaf", "params": BIG_PARAMS, "timeout": 150},
    }
    run, steps = run_krita(tmp_path, plugin_zip, server.url, [], out_dir, krita_host, time_limit=IN_PLACE_TIME_LIMIT, **scenario)

    # Human labels, and the Generate action with its shortcut (it started the first job).
    labels = steps["labels"]
    assert labels["action"] is True and labels["shortcut"] == "Ctrl+Shift+Return" and labels["docker_object"] is True, labels
    assert "Whole picture" in labels["choices"]["inpaint_area"], labels["choices"]
    assert not [t for texts in labels["choices"].values() for t in texts if "_" in t], labels["choices"]

    # The preview shows on the canvas while the job runs and is gone after it, done or cancelled.
    for name, final in (("preview-done", "Done"), ("preview-cancel", "Cancelled")):
        step = steps[name]
        assert step["status"].startswith(final), step
        assert step["seen"], f"{name}: no preview layer appeared on the canvas"
        assert "Paintwire preview" not in step["layers"], step["layers"]

    # Expand grows this document's canvas: no new document, the original moved by the offset.
    expand = steps["expand"]
    assert expand["status"].startswith("Done") and "grown canvas" in expand["status"], expand
    assert expand["size"] == [WIDTH + GROW["left"], HEIGHT + GROW["top"]] and expand["documents"] == 1, expand
    assert expand["original"] == [GROW["left"], GROW["top"], WIDTH, HEIGHT], expand
    layers = read_ora(out_dir / "expand.ora")
    ox, oy, original = layers["Original"]
    assert (ox, oy) == (GROW["left"], GROW["top"]) and np.array_equal(original, input_image()), "the original layer changed"
    new = [name for name in layers if name.startswith("a blue bird")]
    assert len(new) == 1, list(layers)
    x, y, grown = layers[new[0]]
    assert (x, y, grown.shape[1], grown.shape[0]) == (0, 0, WIDTH + GROW["left"], HEIGHT + GROW["top"])
    with zipfile.ZipFile(out_dir / "before-expand.ora") as zf:
        visible = np.asarray(Image.open(io.BytesIO(zf.read("mergedimage.png"))).convert("RGBA"))
    inner = grown[GROW["top"] :, GROW["left"] :]
    assert np.array_equal(inner, visible), "the expand result does not hold the picture it grew from where it was"
    assert (grown[: GROW["top"], :, 3] == 255).all() and (grown[:, : GROW["left"], 3] == 255).all(), "the new area is not painted"
    # Edit > Undo: the result layer first, then the canvas size (two steps: Krita's
    # scripting API has no way to group commands), and Redo brings both back.
    undo = steps["expand-undo"]["steps"]
    assert undo[0]["size"] == expand["size"] and new[0] not in undo[0]["layers"], undo
    assert undo[1]["size"] == [WIDTH, HEIGHT], undo
    assert steps["expand-redo"]["size"] == expand["size"] and new[0] in steps["expand-redo"]["layers"], steps["expand-redo"]

    # Upscale, "Resize this document": the same document, scaled, with the result on top.
    up = steps["upscale-resize"]
    grown_size = expand["size"]
    assert up["status"].startswith("Done") and "resized document" in up["status"], up
    assert up["size"] == [2 * grown_size[0], 2 * grown_size[1]] and up["documents"] == 1, up
    assert up["layers"][-1].startswith("Upscale"), up["layers"]

    # The history is saved in the .kra and comes back with its thumbnails when it is reopened.
    history = steps["history-reopened"]
    assert history["saved_ok"] is True and "paintwire/history" in history["annotations"], history
    assert history["before"]["count"] == 3 and history["count"] == 3, history
    assert history["texts"] == history["before"]["texts"] and all(history["icons"]), history

    # Krita's UI thread during a job on a 4096x4096 document (selection plus sketch
    # layer): recorded and printed, not asserted (timings depend on the machine).
    ui = steps["ui-thread"]
    assert ui["status"].startswith("Done") and ui["size"] == [4096, 4096], ui
    assert ui["result_shown"] is True, ui
    assert {"generate", "generate.read", "preview.canvas", "preview.clear", "done.write", "done.history"} <= set(ui["times"]), ui["times"]
    line = f"Krita {krita_host.version}: UI thread on 4096x4096, longest per handler (ms): {ui['times']}; Generate click {ui['click_ms']} ms"
    (out_dir / "ui-thread.txt").write_text(line + "\n", encoding="utf-8")
    with capsys.disabled():
        print("\n" + line)


LIVE_SELECTION = (256, 320, 128, 128)  # x, y, w, h on a 2048x2048 document
LIVE_TIME_LIMIT = 300.0


def test_krita_live_painting_follows_strokes_applies_and_turns_off_cleanly(shared_server, tiny_model_dir, tmp_path, plugin_zip,
                                                                              krita_host, capsys):
    """The docker's Live toggle on a 2048x2048 document with a tiny model: frames
    show over the selection and follow strokes painted through Krita's API and a
    strength changed while it runs; Apply copies the frame shown into a layer;
    Live off leaves the artist's layers as they were plus the applied one. The
    UI thread's time per tick is recorded and printed."""
    server = shared_server(engines=["diffusers"], model_dirs=[str(tiny_model_dir)], device="cpu")
    out_dir = artifacts(krita_host, "live")
    scenario = {
        "flow": "live", "live_selection": list(LIVE_SELECTION), "live_strength": 0.9,
        "live_job": {"mode": "img2img", "model": "diffusers/", "prompt": "a red apple", "params": {"steps": 2, "seed": 5, "strength": 0.6}},
    }
    run, steps = run_krita(tmp_path, plugin_zip, server.url, [], out_dir, krita_host, time_limit=LIVE_TIME_LIMIT, **scenario)
    live_layer = "Paintwire live"

    on = steps["live-on"]
    assert on["checked"] is True and on["generate_enabled"] is False, on
    first = steps["live-first-frame"]
    assert first["status"].startswith("Live: frame") and "seed 5" in first["status"], first
    assert first["bounds"] == list(LIVE_SELECTION) and first["layers"][-1] == live_layer, first

    # Frames follow the strokes: made from a state sent after them, and a different picture.
    followed = steps["live-followed"]
    assert followed["seq"] > first["seq"] and followed["checksum"] != followed["first"]["checksum"], followed
    assert steps["live-strength"]["seq"] > followed["seq"], steps["live-strength"]

    # Apply: the frame shown, as a new layer at the selection, just below the live layer.
    applied = steps["live-apply"]
    assert len(applied["applied"]) == 1 and applied["applied"][0] == "a red apple [seed 5]", applied
    assert applied["bounds"] == list(LIVE_SELECTION) and applied["checksum"] == applied["frame_checksum"], applied
    layers = applied["layers"]
    assert layers.index(live_layer) == layers.index(applied["applied"][0]) + 1, layers

    # Off: no live layer left; the artist's layers plus the applied one; Generate back.
    off = steps["live-off"]
    assert live_layer not in off["layers"] and off["layers"] == off["before"] + applied["applied"] or \
        sorted(off["layers"]) == sorted(off["before"] + applied["applied"]), off
    assert off["checked"] is False and off["generate_enabled"] is True, off
    ora = read_ora(out_dir / "live.ora")
    assert live_layer not in ora, list(ora)
    x, y, pixels = ora[applied["applied"][0]]
    assert (x, y, pixels.shape[1], pixels.shape[0]) == LIVE_SELECTION and (pixels[..., 3] == 255).all()
    px, py, paint = ora["Paint"]
    sx, sy = LIVE_SELECTION[:2]
    assert (px, py) == (0, 0) and tuple(paint[sy + 8, sx + 8][:3]) == (220, 40, 30), "the strokes are in the artist's layer"

    ui = steps["live-ui-thread"]
    line = (f"Krita {krita_host.version}: Live on 2048x2048, UI thread per tick (ms): max {ui['tick_max']}, p95 {ui['tick_p95']}, "
            f"median {ui['tick_median']} over {ui['ticks']} ticks; a whole-canvas stream's band reads: {ui['whole_canvas_bands']} "
            f"bands, max {ui['whole_canvas_band_max']} ms, median {ui['whole_canvas_band_median']} ms")
    (out_dir / "ui-thread.txt").write_text(line + "\n", encoding="utf-8")
    with capsys.disabled():
        print("\n" + line)


def test_krita_docker_upscales_with_an_upscaler_model(shared_server, tiny_model_dir, tmp_path, plugin_zip, krita_host):
    """An upscaler model file (a tiny ESRGAN built by the tests) chosen in the Upscale form."""
    from fixtures.upscaler_models import ESRGAN_2X, build_one

    build_one(tiny_model_dir / "upscalers", ESRGAN_2X)
    server = shared_server(engines=["classical", "diffusers"], model_dirs=[str(tiny_model_dir)], device="cpu")
    out_dir = artifacts(krita_host, "upscaler")
    jobs = [{"name": "upscale-model", "mode": "upscale", "model": "diffusers/",
             "params": {"upscaler": ESRGAN_2X, "refine": False, "scale": 2.0}, "timeout": 120}]
    run, steps = run_krita(tmp_path, plugin_zip, server.url, jobs, out_dir, krita_host)
    start = next(s for s in run.report["steps"] if s["name"] == "job-start")
    assert start["form"]["upscaler"] == ESRGAN_2X and start["form"]["refine"] is False
    assert steps["upscale-model"]["status"].startswith("Done"), steps["upscale-model"]


# Control layers: a hidden layer of dark strokes guides a Generate through a tiny ControlNet.
LINE_RECTS = [[20, 20, 120, 3], [20, 20, 3, 80], [137, 20, 3, 80], [20, 97, 120, 3], [60, 50, 40, 3]]
LINE_BGRA = [30, 30, 30, 255]
GUIDED_PARAMS = {"steps": 2, "seed": 7, "batch_size": 1}


def lines_layer() -> np.ndarray:
    """The control layer the driver paints, as RGBA: dark strokes on transparent."""
    out = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    for x, y, w, h in LINE_RECTS:
        out[y : y + h, x : x + w] = [LINE_BGRA[2], LINE_BGRA[1], LINE_BGRA[0], LINE_BGRA[3]]
    return out


@pytest.fixture(scope="module")
def control_model_dir(tmp_path_factory) -> Path:
    """A tiny SD1.5 checkpoint and a tiny scribble ControlNet made for it (random weights)."""
    pytest.importorskip("torch", reason="the diffusers engine needs torch (pip install -e .[diffusers])")
    from fixtures.control_models import write_tiny_controlnet
    from fixtures.tiny_models import build_tiny_sd15

    folder = tmp_path_factory.mktemp("control-models")
    build_tiny_sd15(folder / "tiny-sd15")
    write_tiny_controlnet(folder / "controlnet" / "tiny_scribble.safetensors", folder / "tiny-sd15")
    return folder


def test_krita_docker_guides_a_job_with_a_control_layer(shared_server, control_model_dir, tmp_path, plugin_zip, krita_host, capsys):
    """The current layer becomes a control layer in one click; its kind comes from the
    server; Preview shows the preprocessed layer in the docker; Generate sends it, and
    the result is the server's for that control (not the unguided one)."""
    from paintwire.protocol import ControlInput

    server = shared_server(engines=["classical", "diffusers"], model_dirs=[str(control_model_dir)], device="cpu")
    with Client(server.url) as client:
        kinds = client.capabilities.engine("diffusers").controls
    usable = [k for k in kinds if k.usable and k.name != "reference"]
    if not usable:
        pytest.fail(f"the server offers no control kind it can run with the tiny ControlNet: {kinds}")
    kind = next((k for k in usable if k.name == "scribble"), usable[0])
    out_dir = artifacts(krita_host, "control")
    jobs = [
        {"name": "add-controls", "action": "controls", "mode": "txt2img", "model": "diffusers/",
         "controls": [{"layer": "Lines", "kind": kind.name, "strength": 1.0}]},
        {"name": "control-preview", "action": "control_preview", "index": 0, "timeout": 120},
        {"name": "guided", "mode": "txt2img", "model": "diffusers/", "prompt": "a house", "params": GUIDED_PARAMS, "timeout": 180},
        # Last, in a document of its own: Krita's UI thread on 4096x4096, the same inpaint without and with a control layer.
        {"name": "big-control", "action": "big_control", "side": 4096, "selection": [1000, 1200, 300, 200], "kind": kind.name,
         "mode": "inpaint", "model": "diffusers/", "prompt": "a green leaf", "params": BIG_PARAMS, "timeout": 150},
    ]
    extra = [{"name": "Lines", "rects": LINE_RECTS, "bgra": LINE_BGRA}]
    run, steps = run_krita(tmp_path, plugin_zip, server.url, jobs, out_dir, krita_host, extra_layers=extra, time_limit=IN_PLACE_TIME_LIMIT,
                           selection=list(EDIT_SELECTION))

    added = steps["add-controls"]
    assert [(c["layer"], c["kind"], c["strength"], c["enabled"]) for c in added["controls"]] == [("Lines", kind.name, 1.0, True)], added
    assert "paintwire/controls" in added["annotations"] and added["layers_unchanged"], added  # saved in the document
    preview = steps["control-preview"]
    assert preview["shown"] and preview["caption"].startswith(f"Lines: {kind.label}"), preview
    assert preview["layers_unchanged"] and preview["documents"] == 1, preview  # in the docker, not in a document
    guided = steps["guided"]
    assert guided["status"].startswith("Done"), guided

    # What the server makes of the same job, with and without the control layer.
    bgra = lines_layer()[..., [2, 1, 0, 3]].tobytes()
    control = ControlInput(kind.name, raw_image(WIDTH, HEIGHT, PixelFormat.BGRA8, bgra), strength=1.0, preprocessor=kind.default_preprocessor)
    params = {"prompt": "a house", **GUIDED_PARAMS, "width": WIDTH, "height": HEIGHT}
    with Client(server.url) as client:
        want = client.run(JobRequest(engine="diffusers", mode="txt2img", params=params, controls=(control,))).layers[0]
        unguided = client.run(JobRequest(engine="diffusers", mode="txt2img", params=params)).layers[0]

    layers = read_ora(out_dir / "result.ora")
    x, y, got = layers["a house [seed 7]"]
    got = on_canvas(x, y, got).astype(int)
    want_px = on_canvas(want.x, want.y, np.frombuffer(want.image.data, np.uint8).reshape(HEIGHT, WIDTH, 4)).astype(int)
    free_px = on_canvas(unguided.x, unguided.y, np.frombuffer(unguided.image.data, np.uint8).reshape(HEIGHT, WIDTH, 4)).astype(int)
    assert np.abs(got - want_px).max() <= 2, "the result is not the server's for this control layer"
    assert np.abs(got - free_px)[..., :3].mean() > 2, "the control layer did not change the result"
    # The document: the original and the control layer keep their pixels.
    ox, oy, original = layers["Original"]
    assert np.array_equal(on_canvas(ox, oy, original), input_image()), "the original layer was modified"
    lx, ly, lines = layers["Lines"]
    assert np.array_equal(on_canvas(lx, ly, lines), lines_layer()), "the control layer was modified"

    # Krita's UI thread on 4096x4096 without and with a control layer: recorded and printed, not asserted.
    big = steps["big-control"]
    assert big["size"] == [4096, 4096] and big["controls"] == 1, big
    assert all(t["status"].startswith("Done") for t in big["times"].values()), big
    assert (big["times"]["plain"]["controls"], big["times"]["control"]["controls"]) == (0, 1), big  # each document has its own list
    line = (f"Krita {krita_host.version}: UI thread on 4096x4096, longest per handler (ms), "
            f"without a control layer: {big['times']['plain']}; with one: {big['times']['control']}")
    (out_dir / "ui-thread.txt").write_text(line + "\n", encoding="utf-8")
    with capsys.disabled():
        print("\n" + line)


# --- the edit mode: an instruction and a reference layer, with the tiny Flux.2 Klein ---------


HAT_RECTS = [[112, 8, 40, 20], [120, 28, 24, 8]]  # a small picture outside EDIT_SELECTION, on a hidden layer
# A selection where the tiny random Klein shows the reference at all (by a level or two: see below).
EDIT_SELECTION = (20, 20, 60, 50)
HAT_BGRA = [40, 30, 220, 255]
EDIT_PARAMS = {"steps": 2, "seed": 7, "batch_size": 1, "mask_blur": 4}
EDIT_PROMPT = "put the red hat on it"


@pytest.fixture(scope="module")
def edit_model_dir(tmp_path_factory) -> Path:
    """The tiny Flux.2 Klein (distilled), a model that edits by instruction."""
    pytest.importorskip("torch", reason="the diffusers engine needs torch (pip install -e .[diffusers])")
    from fixtures.edit_models import KLEIN, build_edit_models

    return build_edit_models(tmp_path_factory.mktemp("edit-models"), (KLEIN,))


def hat_layer() -> np.ndarray:
    out = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    for x, y, w, h in HAT_RECTS:
        out[y : y + h, x : x + w] = [HAT_BGRA[2], HAT_BGRA[1], HAT_BGRA[0], HAT_BGRA[3]]
    return out


def test_krita_docker_edits_a_selection_with_a_reference_layer(shared_server, edit_model_dir, tmp_path, plugin_zip, krita_host):
    """The Edit mode and its reference kind come from the server alone: the docker offers the
    mode, the Hat layer becomes an edit reference in one click, and Generate sends it whole
    (it lies far outside the selection). The result is the server's for that job, a layer
    over the selection, and nothing outside the selection changes."""
    from paintwire.protocol import ControlInput
    from fixtures.edit_models import KLEIN

    server = shared_server(engines=["classical", "diffusers"], model_dirs=[str(edit_model_dir)], device="cpu")
    out_dir = artifacts(krita_host, "edit")
    jobs = [
        {"name": "add-reference", "action": "controls", "mode": "edit", "model": "diffusers/",
         "controls": [{"layer": "Hat", "kind": "edit_reference"}]},
        {"name": "edit", "mode": "edit", "model": "diffusers/", "prompt": EDIT_PROMPT, "params": EDIT_PARAMS, "timeout": 180},
    ]
    extra = [{"name": "Hat", "rects": HAT_RECTS, "bgra": HAT_BGRA}]
    run, steps = run_krita(tmp_path, plugin_zip, server.url, jobs, out_dir, krita_host, extra_layers=extra, time_limit=IN_PLACE_TIME_LIMIT,
                           selection=list(EDIT_SELECTION))

    assert "edit" in steps["connected"]["modes"]
    added = steps["add-reference"]
    assert [(c["layer"], c["kind"]) for c in added["controls"]] == [("Hat", "edit_reference")], added
    assert "edit_reference" in added["kinds"] and added["layers_unchanged"], added
    edit = steps["edit"]
    assert edit["status"].startswith("Done"), edit
    assert edit["preview"] is True, "no live preview was shown"

    # What the server makes of the same job: the visible picture, the selection, the Hat layer whole.
    selection = np.frombuffer((out_dir / "selection.l8").read_bytes(), np.uint8).reshape(HEIGHT, WIDTH)
    bgra = hat_layer()[..., [2, 1, 0, 3]].tobytes()
    control = ControlInput("edit_reference", raw_image(WIDTH, HEIGHT, PixelFormat.BGRA8, bgra))
    request = JobRequest(engine="diffusers", mode="edit", model=KLEIN, image=raw_image(WIDTH, HEIGHT, PixelFormat.RGBA8, input_image().tobytes()),
                         mask=ImagePayload(WIDTH, HEIGHT, PixelFormat.L8, selection.tobytes()),
                         params={"prompt": EDIT_PROMPT, **EDIT_PARAMS}, controls=(control,))
    with Client(server.url) as client:
        (want,) = client.run(request).layers
        (plain,) = client.run(JobRequest(engine="diffusers", mode="edit", model=KLEIN, image=request.image, mask=request.mask,
                                         params=request.params)).layers

    layers = read_ora(out_dir / "result.ora")
    x, y, got = layers[f"{EDIT_PROMPT} [seed 7]"]
    sx, sy, sw, sh = EDIT_SELECTION
    assert (want.x, want.y, want.image.width, want.image.height) == (sx, sy, sw, sh)  # a layer over the selection
    got_canvas = on_canvas(x, y, got).astype(int)
    want_canvas = on_canvas(want.x, want.y, np.frombuffer(want.image.data, np.uint8).reshape(sh, sw, 4)).astype(int)
    plain_canvas = on_canvas(plain.x, plain.y, np.frombuffer(plain.image.data, np.uint8).reshape(sh, sw, 4)).astype(int)
    assert np.array_equal(got_canvas[..., 3], want_canvas[..., 3]), "the layer's coverage differs from the server's"
    visible = want_canvas[..., 3] > 0
    assert np.abs(got_canvas[visible] - want_canvas[visible]).max() <= 2, "the result is not the server's for this reference"
    # The random tiny model moves pixels by a level or two for the reference: Krita's layer is
    # the server's result with the Hat, not without it.
    assert not np.array_equal(want_canvas, plain_canvas)
    assert np.abs(got_canvas - want_canvas).sum() < np.abs(got_canvas - plain_canvas).sum(), "the reference layer was not sent"
    # Nothing outside the selection: the layer is transparent there, the original and the Hat untouched.
    assert not (got_canvas[..., 3][selection == 0] > 0).any()
    ox, oy, original = layers["Original"]
    assert np.array_equal(on_canvas(ox, oy, original), input_image()), "the original layer was modified"
    hx, hy, hat = layers["Hat"]
    assert np.array_equal(on_canvas(hx, hy, hat), hat_layer()), "the reference layer was modified"
