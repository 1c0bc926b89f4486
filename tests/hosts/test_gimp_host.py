"""The packaged GIMP plug-in inside real GIMP 3, against a real server.

GIMP 3 runs headless (gimp-console, batch mode) in Debian chroots prepared by
tests/hosts/gimp/setup_chroot.sh: GIMP 3.0 (trixie) and GIMP 3.2 (sid); every
test runs on each, skipping with the reason where one is not prepared.
run_gimp.sh installs the bundle
built by plugins/gimp/build.py into a fresh profile and runs driver.py, which
builds images with a known background and a selection, calls the Paintwire
procedures and exports every layer. These tests check the exports from outside:
the result layer sits at the server's offset with the server's exact pixels
(compared with the same job sent straight to the server), the original layers
are untouched, and failures come back as GIMP errors without new layers.

Also here: the dialogs built from real capabilities under Xvfb (ui_smoke.py),
an interactive run inside GIMP whose dialog answers itself (autorespond.py)
followed by a run with GIMP's last values, and, where the diffusers engine
loads, Generate / Refine / Inpaint Sketch / Expand with a tiny model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paintwire.protocol import Client, JobRequest, PixelFormat, raw_image

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "gimp"
ARTIFACTS = HERE.parent / "artifacts" / "gimp"  # what GIMP wrote (XCF, PNGs, report, log), kept for a look
# Not a PAINTWIRE_* name: the server reads every PAINTWIRE_* variable as one of its settings.
CHROOTS = Path(os.environ.get("HOST_CHROOTS", "/var/cache/paintwire"))
WIDTH, HEIGHT = 64, 48


@dataclass(frozen=True)
class GimpHost:
    """One GIMP to test on: a Debian chroot made by setup_chroot.sh VERSION."""

    version: str  # GIMP's major.minor: it also names the profile's folder (~/.config/GIMP/3.2)
    root: Path

    def missing(self) -> str | None:
        """Why this GIMP cannot run here, or None."""
        if not sys.platform.startswith("linux"):
            return "the GIMP host test runs GIMP from a Debian chroot: Linux only"
        if os.geteuid() != 0:
            return "the GIMP host test needs root (chroot and bind mounts)"
        if not (self.root / ".paintwire-ready").is_file():
            return (f"GIMP {self.version} chroot not prepared at {self.root}: run "
                    f"`bash tests/hosts/gimp/setup_chroot.sh {self.version}` (as root; a few minutes, once)")
        for tool in ("chroot", "mount", "flock"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        installed = (self.root / "usr/bin/gimp-console").resolve().name.removeprefix("gimp-console-")
        if installed != self.version:
            return f"the chroot at {self.root} holds GIMP {installed}, not {self.version}"
        return None

    def artifacts(self, name: str) -> Path:
        return ARTIFACTS / self.version / name

    def profile_cache(self) -> Path:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return base / "paintwire" / f"gimp-profile-{self.version}"

    def plugin_script(self, job: Path) -> str:
        """The plug-in's path as the chroot sees it, for a job folder made by run_in_chroot."""
        return f"/{job.relative_to(self.root)}/home/.config/GIMP/{self.version}/plug-ins/paintwire/paintwire.py"


GIMPS = (GimpHost("3.0", CHROOTS / "gimp-trixie"), GimpHost("3.2", CHROOTS / "gimp-sid"))


@pytest.fixture(scope="module", params=GIMPS, ids=lambda host: f"gimp{host.version}")
def gimp(request) -> GimpHost:
    reason = request.param.missing()
    if reason:
        pytest.skip(f"GIMP host test ({request.param.version}): {reason}")
    return request.param


def pattern(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The background the driver paints (the same formula as driver.py's pattern())."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 7) % 256, (y * 11) % 256, ((x + y) * 5) % 256, np.full_like(x, 255)], axis=-1).astype(np.uint8)


PATCH, PATCH_COLOUR = [10, 8, 30, 20], [200, 30, 60, 255]


def patch_input(visible: bool) -> np.ndarray:
    """What the plug-in must send for the patch cases: the patch layer alone on a transparent
    canvas (source=drawable), or the patch over the background (source=visible)."""
    out = pattern() if visible else np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    x, y, w, h = PATCH
    out[y : y + h, x : x + w] = PATCH_COLOUR
    return out


CASES = [
    # The first case also stores the server's address through the Connection procedure.
    {"name": "inpaint_rect", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [20, 12, 16, 12]},
     "args": {"params-json": json.dumps({"method": "telea", "mask_blur": 0})}},
    {"name": "inpaint_feather", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [8, 8, 24, 20], "feather": 8},
     "args": {"params-json": json.dumps({"method": "ns"})}},
    {"name": "inpaint_everything", "procedure": "plug-in-paintwire-inpaint", "selection": None,
     "args": {"params-json": json.dumps({"method": "fill", "mask_blur": 0})}},
    # The input is the active layer, smaller than the canvas and offset; then the visible image.
    {"name": "inpaint_offset_layer", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [14, 10, 10, 8]},
     "patch": {"rect": PATCH, "colour": PATCH_COLOUR}, "args": {"params-json": json.dumps({"method": "telea", "mask_blur": 0})}},
    {"name": "inpaint_visible", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [14, 10, 10, 8]},
     "patch": {"rect": PATCH, "colour": PATCH_COLOUR},
     "args": {"source": "visible", "params-json": json.dumps({"method": "telea", "mask_blur": 0})}},
    {"name": "upscale", "procedure": "plug-in-paintwire-upscale", "selection": None, "args": {"params-json": json.dumps({"scale": 2.0})}},
    {"name": "bad_param", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [4, 4, 8, 8]},
     "args": {"params-json": json.dumps({"no_such_param": 1})}},
    # The plug-in's document adapter on its own: a preview layer, then a canvas grown in place.
    {"name": "document_probe", "kind": "document_probe", "preview_region": [10, 6, 16, 8], "grow": [8, 4]},
    # Last: points the plug-in at a port where nothing listens.
    {"name": "server_down", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [4, 4, 8, 8]}, "args": {}},
]


@pytest.fixture(scope="module")
def plugin_bundle(tmp_path_factory) -> Path:
    """The plug-in folder exactly as a user installs it: built by plugins/gimp/build.py."""
    build_dir = tmp_path_factory.mktemp("gimp-build")
    subprocess.run([sys.executable, str(REPO / "plugins/gimp/build.py"), "-o", str(build_dir / "paintwire-gimp")], check=True)
    return build_dir / "paintwire-gimp" / "paintwire"


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        points = [line.split()[1] for line in fh]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


# What a run leaves in its profile that the next run must not start with: the plug-ins (the
# bundle is installed fresh), the plug-in's settings and GIMP's last values of procedures.
PER_RUN = ("plug-ins", "plug-in-settings", "paintwire.json", "parasiterc")


def seed_profile(gimp: GimpHost, home: Path) -> None:
    """Start from a profile an earlier run made: GIMP then skips querying every plug-in and
    building its caches (a fresh profile's first start took 35 s (3.0) and 48 s (3.2) on a
    busy machine, a reused one 12 to 16 s)."""
    cache = gimp.profile_cache()
    if cache.is_dir():
        try:
            shutil.copytree(cache, home, dirs_exist_ok=True, symlinks=True)
        except (OSError, shutil.Error):  # another run is replacing the cache: start fresh
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)


def keep_profile(gimp: GimpHost, home: Path) -> None:
    """Keep a clean run's profile for the next runs; the first run to finish keeps it."""
    cache = gimp.profile_cache()
    if cache.exists() or not (home / ".config" / "GIMP" / gimp.version).is_dir():
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    shutil.copytree(home, tmp, symlinks=True, ignore=lambda folder, names: [n for n in names if n in PER_RUN or n == ".local"])
    try:
        tmp.rename(cache)
    except OSError:  # another run saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def run_in_chroot(gimp: GimpHost, plugin: Path, script: str, spec: dict, name: str, dialogs: bool = False, display: bool = False,
                  env: dict | None = None, limit: int = 150) -> tuple[dict, str, Path]:
    """Run driver.py in GIMP (or ui_smoke.py under Xvfb) in the chroot; the job folder's
    results (less the GIMP profile) go to tests/hosts/artifacts/gimp/VERSION/NAME, returned with
    the report and GIMP's output.

    ``display`` runs GIMP under Xvfb with the dialog auto-responder, for interactive runs.
    ``limit`` is GIMP's time limit in seconds (run_gimp.sh stops it after that)."""
    out = gimp.artifacts(name)
    shutil.rmtree(out, ignore_errors=True)
    job = gimp.root / "tmp" / f"paintwire-test-{uuid.uuid4().hex[:12]}"
    job.mkdir(parents=True)
    try:
        seed_profile(gimp, job / "home")
        (job / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        shutil.copy(HERE / script, job / script)
        flags = ["--dialogs"] if dialogs else []
        if display:
            flags = ["--display"]
            shutil.copy(HERE / "autorespond.py", job / "usercustomize.py")
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        command = ["bash", str(HERE / "run_gimp.sh")] + flags + [str(plugin), str(job)] + extra
        proc = subprocess.run(command, capture_output=True, text=True, timeout=limit + 60,
                              env=dict(os.environ, GIMP_HOST_CHROOT=str(gimp.root), GIMP_HOST_TIMEOUT=str(limit)))
        log = proc.stdout + proc.stderr
        shutil.copytree(job, out, ignore=shutil.ignore_patterns("home"))
        (out / "gimp.log").write_text(log, encoding="utf-8")
        settings_file = job / "home" / ".config" / "GIMP" / gimp.version / "paintwire.json"
        if settings_file.is_file():
            shutil.copy(settings_file, out / "paintwire.json")
        report_path = job / "report.json"
        assert report_path.is_file(), f"{script} exited {proc.returncode} without a report:\n{log}"
        report = json.loads(report_path.read_text(encoding="utf-8"))
        assert report["error"] is None, report["error"] + log
        if not dialogs:
            keep_profile(gimp, job / "home")
        return report, log, out
    finally:
        # run_gimp.sh unmounts proc/dev/sys on exit; a job folder never holds a mount, but a
        # delete through a bind mount would reach the host, so look before deleting.
        if not _mounts_under(job):
            shutil.rmtree(job, ignore_errors=True)


@pytest.fixture(scope="module")
def gimp_run(gimp, live_server, plugin_bundle):
    cases = [dict(c, width=WIDTH, height=HEIGHT) for c in CASES]
    cases[0]["connection"] = {"url": live_server.url, "token": "", "timeout": 60.0}
    cases[-1]["connection"] = {"url": "ws://127.0.0.1:9/ws", "token": "", "timeout": 60.0}
    report, log, out = run_in_chroot(gimp, plugin_bundle, "driver.py", {"cases": cases}, "classical")
    assert report["gimp"].startswith(f"{gimp.version}."), report["gimp"]
    yield report["cases"], out, live_server, log


def _case(gimp_run, name):
    cases, out, server, log = gimp_run
    case = cases[name]
    assert case.get("status") != "DRIVER_ERROR", case.get("message")
    return case, out / name, server, log


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def _direct(server, mode: str, params: dict, mask: np.ndarray | None, source: np.ndarray | None = None):
    """The same job sent straight to the server, for the expected pixels."""
    source = pattern() if source is None else source
    image = raw_image(WIDTH, HEIGHT, PixelFormat.RGBA8, source.tobytes())
    mask_payload = raw_image(WIDTH, HEIGHT, PixelFormat.L8, mask.tobytes()) if mask is not None else None
    with Client(server.url) as client:
        return client.run(JobRequest("classical", mode, image=image, mask=mask_payload, model="opencv", params=params))


def _same_pixels(got: np.ndarray, want: np.ndarray) -> None:
    # PNG export drops the colour of fully transparent pixels; they show nothing either way.
    assert got.shape == want.shape
    assert np.array_equal(got[..., 3], want[..., 3]), "alpha differs"
    visible = want[..., 3] > 0
    assert np.array_equal(got[visible], want[visible]), "colour differs where the layer is visible"


def _check_inpaint(gimp_run, name, params, mask=None, source=None):
    case, case_dir, server, log = _case(gimp_run, name)
    assert case["status"] == "SUCCESS", case.get("message", "") + log
    assert case["background_unchanged"] and case["drawable_unchanged"]
    layers = case["image"]["layers"]
    new, originals = layers[0], layers[1:]
    assert [l["name"] for l in originals] == (["Patch", "Background"] if source is not None else ["Background"])
    assert np.array_equal(_png(case_dir / originals[-1]["png"]), pattern())

    if mask is None:
        mask = np.frombuffer((case_dir / "mask.raw").read_bytes(), np.uint8).reshape(HEIGHT, WIDTH)
    expected = _direct(server, "inpaint", params, mask, source)
    (want,) = expected.layers
    assert (new["x"], new["y"], new["width"], new["height"]) == (want.x, want.y, want.image.width, want.image.height)
    assert new["name"] == want.name  # no prompt, no seed: the server's name
    assert new["depth"] == 0 and not new["group"]
    want_px = np.frombuffer(want.image.data, np.uint8).reshape(want.image.height, want.image.width, 4)
    _same_pixels(_png(case_dir / new["png"]), want_px)
    return case, new, want_px, mask


def test_inpaint_rectangle_selection(gimp_run):
    case, new, px, mask = _check_inpaint(gimp_run, "inpaint_rect", {"method": "telea", "mask_blur": 0})
    assert set(np.unique(mask)) == {0, 255}
    # The layer covers the selection with opaque pixels that differ from the background there.
    sx, sy = 20 - new["x"], 12 - new["y"]
    inside = px[sy : sy + 12, sx : sx + 16]
    assert (inside[..., 3] == 255).all()
    assert not np.array_equal(inside, pattern()[12:24, 20:36])
    assert case["returned_layer"] == new["name"]


def test_inpaint_feathered_selection_keeps_feathering(gimp_run):
    case, new, px, mask = _check_inpaint(gimp_run, "inpaint_feather", {"method": "ns"})
    soft = (mask > 0) & (mask < 255)
    assert soft.sum() > 50, "GIMP's feathered selection should reach the server with soft edges"
    alpha = px[..., 3]
    assert ((alpha > 0) & (alpha < 255)).any(), "a feathered mask gives a layer with soft alpha"


def test_inpaint_without_selection_uses_whole_canvas(gimp_run):
    case, new, px, mask = _check_inpaint(gimp_run, "inpaint_everything", {"method": "fill", "mask_blur": 0}, np.full((HEIGHT, WIDTH), 255, np.uint8))
    assert (new["x"], new["y"], new["width"], new["height"]) == (0, 0, WIDTH, HEIGHT)


def test_input_is_the_active_layer_at_its_offset(gimp_run):
    _check_inpaint(gimp_run, "inpaint_offset_layer", {"method": "telea", "mask_blur": 0}, source=patch_input(visible=False))


def test_input_can_be_the_visible_image(gimp_run):
    _check_inpaint(gimp_run, "inpaint_visible", {"method": "telea", "mask_blur": 0}, source=patch_input(visible=True))


def test_upscale_opens_new_image_and_leaves_original(gimp_run):
    case, case_dir, server, log = _case(gimp_run, "upscale")
    assert case["status"] == "SUCCESS", case.get("message", "") + log
    assert case["background_unchanged"]
    assert [l["name"] for l in case["image"]["layers"]] == ["Background"]
    new_image = case["new_image"]
    assert (new_image["width"], new_image["height"]) == (2 * WIDTH, 2 * HEIGHT)
    (layer,) = new_image["layers"]
    expected = _direct(server, "upscale", {"scale": 2.0}, None)
    (want,) = expected.layers
    assert (layer["x"], layer["y"], layer["width"], layer["height"]) == (0, 0, 2 * WIDTH, 2 * HEIGHT)
    want_px = np.frombuffer(want.image.data, np.uint8).reshape(2 * HEIGHT, 2 * WIDTH, 4)
    _same_pixels(_png(case_dir / layer["png"]), want_px)


def test_bad_parameter_is_a_gimp_error(gimp_run):
    case, case_dir, server, log = _case(gimp_run, "bad_param")
    assert case["status"] == "EXECUTION_ERROR"
    assert "no_such_param" in case["message"] and "method" in case["message"]
    assert [l["name"] for l in case["image"]["layers"]] == ["Background"]
    assert case["background_unchanged"]


def test_preview_shows_in_its_own_image_and_goes_and_expand_grows_in_place(gimp_run):
    case, case_dir, server, log = _case(gimp_run, "document_probe")
    # The artist's image never holds the preview: GIMP kills the plug-in on cancel, and
    # nothing could take a layer away again then.
    assert [l["name"] for l in case["during"]["layers"]] == ["Background"]
    (shown,) = case["preview_images"]  # the second preview reused the first's image
    (preview,) = shown["layers"]
    assert preview["name"] == "Paintwire preview" and (preview["width"], preview["height"]) == (4, 2)
    assert (_png(case_dir / preview["png"]) == [255, 0, 0, 255]).all(), "the preview's pixels"
    assert [l["name"] for l in case["after"]["layers"]] == ["Background"] and case["images_after"] == 0
    grown = case["grown"]
    assert case["new_image"] is False and (grown["width"], grown["height"]) == (WIDTH + 8, HEIGHT + 4)
    result, background = grown["layers"]
    assert (result["name"], result["x"], result["y"], result["width"], result["height"]) == ("Grown", 0, 0, WIDTH + 8, HEIGHT + 4)
    assert (background["x"], background["y"]) == (8, 4) and case["background_unchanged"]


def test_unreachable_server_is_a_gimp_error(gimp_run):
    case, case_dir, server, log = _case(gimp_run, "server_down")
    assert case["connection_status"] == "SUCCESS"
    assert case["status"] == "EXECUTION_ERROR"
    assert "Cannot connect" in case["message"] and "127.0.0.1:9" in case["message"]
    assert [l["name"] for l in case["image"]["layers"]] == ["Background"]


# --- dialogs: the real GTK code under Xvfb, with the server's own ParamSpecs ----------------


def _diffusers_like_capabilities() -> dict:
    """A diffusers-shaped engine (prompt, strength, steps, seed, choices, advanced group), so the
    dialogs are exercised with every parameter type even where no model is installed."""
    from paintwire.protocol import Capabilities, EngineInfo, InputKind, InputSpec, Limits, ModeSpec, ModelInfo, ParamSpec, ParamType
    from paintwire.protocol.controls import ControlKindSpec

    params = (
        ParamSpec("prompt", ParamType.STRING, "", "Prompt", "What to paint."),
        ParamSpec("negative_prompt", ParamType.STRING, "", "Negative prompt", "What to avoid."),
        ParamSpec("strength", ParamType.FLOAT, 0.75, "Strength", "", minimum=0.0, maximum=1.0),
        ParamSpec("steps", ParamType.INT, 20, "Steps", "", minimum=1, maximum=150),
        ParamSpec("seed", ParamType.SEED, -1, "Seed", ""),
        ParamSpec("scheduler", ParamType.CHOICE, "euler", "Sampler", "", choices=("euler", "ddim"), group="advanced"),
        ParamSpec("exact_steps", ParamType.BOOL, False, "Exact steps", "", group="advanced"),
        ParamSpec("vae", ParamType.STRING, "", "VAE", "", group="advanced"),
    )
    sides = tuple(ParamSpec(s, ParamType.INT, 0, s, "", minimum=0, maximum=4096) for s in ("left", "right", "top", "bottom"))
    def inputs(name: str) -> tuple:
        # Every mode but upscale takes control layers, as the diffusers engine's do.
        return (((InputSpec(InputKind.IMAGE),) if name != "txt2img" else ()) + ((InputSpec(InputKind.MASK),) if name == "inpaint" else ())
                + ((InputSpec(InputKind.CONTROL, required=False),) if name != "upscale" else ()))

    modes = tuple(
        ModeSpec(name, name, f"{name} help", inputs=inputs(name), params=params + extra, model_kinds=("sd15",), order=order)
        for order, (name, extra) in enumerate((("txt2img", ()), ("img2img", ()), ("inpaint", ()), ("outpaint", sides), ("upscale", ())))
    )
    threshold = ParamSpec("threshold", ParamType.INT, 128, "Ink threshold", "", minimum=1, maximum=255)
    kinds = (ControlKindSpec("scribble", "Scribble", "Rough strokes.", ("scribble", "none"), (threshold,)),
             ControlKindSpec("depth", "Depth", "A depth map.", ("none",), problem="No depth ControlNet: add one to a model folder."))
    caps = Capabilities((EngineInfo("diffusers", "Diffusers", modes, controls=kinds),), (ModelInfo("tiny", "diffusers", "sd15", "Tiny"),),
                        Limits(1 << 30, 1 << 24, 8192, 4))
    return caps.to_wire()


def _webui_png(text: str) -> str:
    """A small PNG carrying the WebUI's ``parameters`` text, base64 for the job's spec."""
    import base64
    import io

    from PIL import Image

    from paintwire.protocol.pngtext import add_text

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return base64.b64encode(add_text(buf.getvalue(), {"parameters": text})).decode()


@pytest.fixture(scope="module")
def dialog_run(gimp, live_server, plugin_bundle):
    with Client(live_server.url) as client:
        server_caps = client.capabilities.to_wire()
    spec = {
        "capabilities": [server_caps, _diffusers_like_capabilities()],
        "stored": {"inpaint": {"method": "ns"}, "txt2img": {"scheduler": "ddim"}},
        # Settings sent from the server's history while "Paintwire..." is open on the first mode.
        "recall": {"capabilities": 1, "settings": {"engine": "diffusers", "mode": "img2img", "model": "tiny", "params": {
            "prompt": "a fox", "strength": 0.4, "seed": 42, "scheduler": "ddim", "clip_skip": 2}},
            # ... and a PNG saved by the WebUI, for "Settings from image...".
            "png": _webui_png("a castle\nNegative prompt: fog\nSteps: 3, Sampler: DDIM, CFG scale: 6.5, Seed: 77, Size: 64x64, "
                              "Denoising strength: 0.5, Model: tiny")},
        # The image's layers for the control-layer pickers, and a control remembered from a last run.
        "layers": ["Lines", "Background"],
        "stored_controls": {"txt2img": [{"layer": "Lines", "kind": "scribble", "strength": 0.7, "end": 0.6, "params": {"threshold": 90}}],
                            "upscale": [{"layer": "Lines", "kind": "scribble"}]},
    }
    report, log, out = run_in_chroot(gimp, plugin_bundle, "ui_smoke.py", spec, "dialogs", dialogs=True)
    return report


def test_param_forms_show_and_read_back_every_parameter(dialog_run):
    forms = dialog_run["forms"]
    assert {"classical/inpaint", "classical/upscale", "diffusers/txt2img", "diffusers/outpaint"} <= set(forms)
    for key, entry in forms.items():
        assert entry["got"] == entry["want"], key


def test_job_dialogs_return_arguments_to_remember(dialog_run):
    dialogs = dialog_run["dialogs"]
    # 0: the live classical server; 1: the diffusers-like engine.
    assert set(dialogs) == {"0/inpaint", "0/upscale"} | {f"1/{m}" for m in ("txt2img", "img2img", "inpaint", "outpaint", "upscale")}
    inpaint = dialogs["0/inpaint"]
    assert (inpaint["engine"], inpaint["model"], inpaint["source"], inpaint["mode"]) == ("classical", "opencv", "layer", "inpaint")
    stored = json.loads(inpaint["params-json"])
    assert stored["method"] == "ns" and stored["mask_blur"] == 4  # the remembered value, and the defaults shown
    generate = dialogs["1/txt2img"]
    assert (generate["engine"], generate["model"]) == ("diffusers", "tiny")
    assert json.loads(generate["params-json"])["scheduler"] == "ddim"
    assert generate["steps"] == 20 and generate["seed"] == -1 and generate["prompt"] == ""
    assert json.loads(dialogs["1/outpaint"]["params-json"])["left"] == 0


def test_settings_from_an_image_fill_the_dialog(dialog_run):
    got = dialog_run["from_image"]
    assert got is not None, dialog_run.get("error")
    assert (got["mode"], got["prompt"], got["negative-prompt"], got["seed"], got["steps"]) == ("img2img", "a castle", "fog", 77, 3)
    assert json.loads(got["params-json"])["scheduler"] == "ddim"


def test_an_open_dialog_takes_a_recall_from_the_servers_history(dialog_run):
    recalled = dialog_run["recall"]
    assert recalled is not None, dialog_run.get("error")
    assert (recalled["mode"], recalled["engine"], recalled["model"]) == ("img2img", "diffusers", "tiny")
    assert recalled["prompt"] == "a fox" and recalled["seed"] == 42 and recalled["strength"] == 0.4
    params = json.loads(recalled["params-json"])
    assert params["scheduler"] == "ddim" and "clip_skip" not in params  # what the mode lacks is left out


def test_job_dialogs_pick_control_layers_from_the_servers_kinds(dialog_run):
    dialogs = dialog_run["dialogs"]
    # The remembered control layer came back through its row: layer, kind, weights, the kind's parameter.
    (control,) = json.loads(dialogs["1/txt2img"]["controls-json"])
    assert (control["layer"], control["kind"], control["strength"], control["start"], control["end"]) == ("Lines", "scribble", 0.7, 0.0, 0.6)
    assert control["preprocessor"] == "scribble" and control["params"] == {"threshold": 90} and control["enabled"] is True
    # A mode without a control input sends none; a server without control kinds shows none.
    assert json.loads(dialogs["1/upscale"]["controls-json"]) == []
    assert json.loads(dialogs["0/inpaint"]["controls-json"]) == []


# --- generation modes: the diffusers engine with a tiny model built by the tests -------------


@pytest.fixture(scope="module")
def diffusers_server(plugin_bundle, tmp_path_factory):
    """A server with a tiny SD1.5 model. Skips where the diffusers engine is not
    installed or does not load."""
    try:
        sys.path.insert(0, str(REPO / "tests"))
        from fixtures.tiny_models import build_tiny_sd15
    except ImportError as exc:
        pytest.skip(f"the diffusers extra is not installed ({exc})")
    models = tmp_path_factory.mktemp("gimp-models")
    build_tiny_sd15(models / "tiny-sd15")
    from fixtures.upscaler_models import ESRGAN_2X, build_one

    build_one(models / "upscalers", ESRGAN_2X)
    from fixtures.control_models import write_tiny_controlnet

    write_tiny_controlnet(models / "controlnet" / "tiny_scribble.safetensors", models / "tiny-sd15")
    from server_process import start_server_process  # tests/ is on sys.path (conftest.py)

    server = start_server_process(engines=["classical", "diffusers"], model_dirs=[str(models)], device="cpu")
    try:
        with Client(server.url) as client:
            caps = client.capabilities
        engine = caps.engine("diffusers")
        if engine is None or not any(m.engine == "diffusers" for m in caps.models):
            pytest.skip("the server's diffusers engine did not load (see the server log)")
        yield server, caps
    finally:
        server.stop()


@pytest.fixture(scope="module")
def diffusers_run(gimp, diffusers_server, plugin_bundle):
    """Generate, Refine, Inpaint Sketch and Expand through GIMP with the tiny model."""
    server, caps = diffusers_server
    engine = caps.engine("diffusers")
    model = next(m.name for m in caps.models if m.engine == "diffusers" and m.kind == "sd15")  # the checkpoint, not the ControlNet
    common = {"model": model, "steps": 2}
    cases = [
        {"name": "generate", "procedure": "plug-in-paintwire-generate", "selection": None,
         "args": dict(common, prompt="a red fox", seed=5), "connection": {"url": server.url, "token": "", "timeout": 120.0}},
        {"name": "generate_batch", "procedure": "plug-in-paintwire-generate", "selection": None,
         "args": dict(common, prompt="two foxes", seed=20, **{"params-json": json.dumps({"batch_size": 2})})},
        {"name": "refine", "procedure": "plug-in-paintwire-refine", "selection": None,
         "args": dict(common, prompt="a red fox", seed=7, strength=0.5)},
        # Strokes on their own layer, a selection around them; the sketch input is the visible image.
        {"name": "sketch", "procedure": "plug-in-paintwire-sketch", "selection": {"rect": [8, 6, 36, 26]},
         "patch": {"rect": PATCH, "colour": PATCH_COLOUR}, "args": dict(common, prompt="a red fox", seed=3, strength=0.8)},
        {"name": "expand", "procedure": "plug-in-paintwire-expand", "selection": None,
         "args": dict(common, prompt="more fox", seed=9, **{"params-json": json.dumps({"right": 16})})},
        # A hidden layer of dark strokes guides a Generate (controls-json names it).
        {"name": "control", "procedure": "plug-in-paintwire-generate", "selection": None, "control_layer": CONTROL_LAYER,
         "args": dict(common, prompt="a house", seed=11, **{"controls-json": json.dumps([{"layer": "Lines", "kind": _control_kind(caps)}])})},
        # An upscaler model file (a tiny ESRGAN), no refine: no checkpoint needed.
        {"name": "upscale_model", "procedure": "plug-in-paintwire-upscale", "selection": None,
         "args": {"engine": "diffusers", "params-json": json.dumps({"upscaler": UPSCALER_MODEL, "refine": False, "scale": 2.0})}},
    ]
    available = {m.name for m in engine.modes}
    cases = [c for c in cases if {"generate": "txt2img", "generate_batch": "txt2img", "control": "txt2img", "refine": "img2img", "sketch": "inpaint_sketch", "expand": "outpaint", "upscale_model": "upscale"}[c["name"]] in available]
    cases = [dict(c, width=WIDTH, height=HEIGHT) for c in cases]
    # Seven jobs with the tiny model on the CPU, after the server loads it: minutes on a busy machine.
    report, log, out = run_in_chroot(gimp, plugin_bundle, "driver.py", {"cases": cases}, "diffusers", limit=360)
    return report["cases"], log


def _diffusers_case(diffusers_run, name):
    cases, log = diffusers_run
    if name not in cases:
        pytest.skip(f"the diffusers engine offers no mode for {name}")
    case = cases[name]
    assert case["status"] == "SUCCESS", case.get("message", "") + log
    assert case["background_unchanged"]
    return case


@pytest.mark.slow
@pytest.mark.parametrize("name,seed", [("generate", 5), ("refine", 7)])
def test_generated_layer_is_named_after_prompt_and_seed(diffusers_run, name, seed):
    case = _diffusers_case(diffusers_run, name)
    new, background = case["image"]["layers"]
    assert new["name"] == f"a red fox [seed {seed}]" and background["name"] == "Background"
    assert (new["x"], new["y"], new["width"], new["height"]) == (0, 0, WIDTH, HEIGHT)


@pytest.mark.slow
def test_several_results_are_grouped(diffusers_run):
    case = _diffusers_case(diffusers_run, "generate_batch")
    group, first, second, background = case["image"]["layers"]
    assert group["group"] and group["depth"] == 0 and case["returned_layer"] == group["name"]
    assert group["name"].startswith("two foxes [2 results")
    # GIMP lists top first; the server's first result (seed 20) is the bottom one.
    assert (first["name"], second["name"]) == ("two foxes [seed 21]", "two foxes [seed 20]")
    assert first["depth"] == second["depth"] == 1 and background["name"] == "Background"


@pytest.mark.slow
def test_inpaint_sketch_uses_the_visible_strokes(diffusers_run):
    case = _diffusers_case(diffusers_run, "sketch")
    new, patch, background = case["image"]["layers"]
    assert new["name"] == "a red fox [seed 3]" and case["drawable_unchanged"]
    # The layer covers (at least) the selection, and no more than the canvas.
    assert new["x"] <= 8 and new["y"] <= 6 and new["x"] + new["width"] >= 44 and new["y"] + new["height"] >= 32
    assert 0 <= new["x"] and new["x"] + new["width"] <= WIDTH and new["y"] + new["height"] <= HEIGHT


@pytest.mark.slow
def test_expand_grows_the_canvas_in_place(gimp, diffusers_run):
    case = _diffusers_case(diffusers_run, "expand")
    assert case["new_image"] is None and (case["image"]["width"], case["image"]["height"]) == (WIDTH + 16, HEIGHT)
    new, background = case["image"]["layers"]  # no preview layer left behind either
    assert new["name"] == "more fox [seed 9]" and (new["x"], new["y"], new["width"], new["height"]) == (0, 0, WIDTH + 16, HEIGHT)
    assert background["name"] == "Background" and (background["x"], background["y"]) == (0, 0)
    # The grown picture holds the original where it was, bit for bit beyond the seam's
    # feather (mask_blur 4 reaches into the original to hide the seam); the new strip is painted.
    from paintwire.server import masks

    grown = _png(gimp.artifacts("diffusers") / "expand" / new["png"])
    new_area = np.zeros((HEIGHT, WIDTH + 16), np.uint8)
    new_area[:, WIDTH:] = 255
    far = masks.blur(new_area, 4)[:, :WIDTH] == 0
    assert far[:, :WIDTH // 2].all() and np.array_equal(grown[:, :WIDTH][far], pattern()[far])
    assert (grown[:, WIDTH:, 3] == 255).all()


CONTROL_LAYER = {"name": "Lines", "rects": [[8, 8, 48, 2], [8, 8, 2, 32], [54, 8, 2, 32], [8, 38, 48, 2]], "colour": [30, 30, 30, 255]}


def _control_kind(caps) -> str:
    """The control kind the tiny ControlNet runs: scribble where the server offers it."""
    usable = [k.name for k in caps.engine("diffusers").controls if k.usable and k.name != "reference"]
    return "scribble" if "scribble" in usable else (usable[0] if usable else "scribble")


@pytest.mark.slow
def test_a_control_layer_guides_the_job_and_stays_as_it_was(gimp, diffusers_run, diffusers_server):
    case = _diffusers_case(diffusers_run, "control")
    server, caps = diffusers_server
    layers = {l["name"]: l for l in case["image"]["layers"]}
    assert sorted(layers) == ["Background", "Lines", "a house [seed 11]"], list(layers)
    new = layers["a house [seed 11]"]
    assert (new["x"], new["y"], new["width"], new["height"]) == (0, 0, WIDTH, HEIGHT)
    assert case["control_layer_unchanged"], "the control layer was modified"
    kind = caps.engine("diffusers").control(_control_kind(caps))
    control_rgba = (gimp.artifacts("diffusers") / "control" / "control.rgba").read_bytes()
    # What the server makes of the same job, with the same layer as control, and without it.
    from paintwire.protocol import ControlInput

    model = next(m.name for m in caps.models if m.engine == "diffusers" and m.kind == "sd15")
    params = {"prompt": "a house", "seed": 11, "steps": 2, "width": WIDTH, "height": HEIGHT}
    control = ControlInput(kind.name, raw_image(WIDTH, HEIGHT, PixelFormat.RGBA8, control_rgba), preprocessor=kind.default_preprocessor)
    with Client(server.url) as client:
        (want,) = client.run(JobRequest("diffusers", "txt2img", model=model, params=params, controls=(control,))).layers
        (free,) = client.run(JobRequest("diffusers", "txt2img", model=model, params=params)).layers
    got = _png(gimp.artifacts("diffusers") / "control" / new["png"]).astype(int)
    want_px = np.frombuffer(want.image.data, np.uint8).reshape(HEIGHT, WIDTH, 4).astype(int)
    free_px = np.frombuffer(free.image.data, np.uint8).reshape(HEIGHT, WIDTH, 4).astype(int)
    assert np.abs(got - want_px).max() <= 2, "the result is not the server's for this control layer"
    assert np.abs(got - free_px)[..., :3].mean() > 2, "the control layer did not change the result"


UPSCALER_MODEL = "2x-tiny-esrgan"  # fixtures.upscaler_models.ESRGAN_2X, written into the model folder


@pytest.mark.slow
def test_upscale_with_an_upscaler_model_opens_its_result(gimp, diffusers_run, tmp_path):
    case = _diffusers_case(diffusers_run, "upscale_model")
    assert [l["name"] for l in case["image"]["layers"]] == ["Background"]
    new_image = case["new_image"]
    assert (new_image["width"], new_image["height"]) == (2 * WIDTH, 2 * HEIGHT)
    (layer,) = new_image["layers"]
    # The model's own pixels: the same file run by spandrel directly on the same picture.
    import spandrel
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.upscaler_models import build_one

    path = build_one(tmp_path, UPSCALER_MODEL)  # the same weights: built from a fixed seed
    model = spandrel.ModelLoader().load_from_state_dict(load_file(str(path))).eval()
    with torch.inference_mode():
        want = model(torch.from_numpy(pattern()[..., :3].copy()).permute(2, 0, 1)[None].float().div(255))[0]
    want = want.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    got = _png(gimp.artifacts("diffusers") / "upscale_model" / layer["png"])
    assert np.abs(got[..., :3].astype(int) - want).max() <= 1 and (got[..., 3] == 255).all()


# --- interactive runs: the real dialogs inside real GIMP, answered by autorespond.py ----------


@pytest.fixture(scope="module")
def interactive_run(gimp, live_server, plugin_bundle):
    """An interactive Inpaint Selection (the dialog opens, the artist switches the method to
    ns and presses OK), then the same procedure with GIMP's last values on a new image.
    The server address comes from PAINTWIRE_URL; the Connection dialog runs too."""
    # With no last values yet, the dialog starts from these; the artist then switches to ns.
    params = json.dumps({"method": "telea", "mask_blur": 0})
    cases = [
        {"name": "dialog", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [20, 12, 16, 12]},
         "run_mode": "interactive", "args": {"params-json": params},
         "connection": {}, "connection_mode": "interactive"},
        {"name": "repeat", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [20, 12, 16, 12]},
         "run_mode": "last", "args": {}},
    ]
    cases = [dict(c, width=WIDTH, height=HEIGHT) for c in cases]
    report, log, out = run_in_chroot(gimp, plugin_bundle, "driver.py", {"cases": cases}, "interactive", display=True,
                                     env={"PW_AUTORESPOND": "1", "PAINTWIRE_URL": live_server.url})
    return report["cases"], out, live_server, log


def test_interactive_dialog_runs_and_its_choices_are_remembered(interactive_run):
    cases, out, server, log = interactive_run
    dialog_log = (out / "dialogs.log").read_text(encoding="utf-8")
    assert "procedure dialog 'Paintwire: Connection'" in dialog_log
    assert "dialog 'Paintwire: Inpaint'" in dialog_log and "Method" in dialog_log and "Advanced" in dialog_log
    # The Connection dialog saved its (default) values to the one settings file.
    stored = json.loads((out / "paintwire.json").read_text(encoding="utf-8"))
    assert list(out.glob("dialog-*.png")), "the auto-responder screenshots every dialog it answers"
    assert stored["url"] == "ws://127.0.0.1:7878/ws"
    mask = np.frombuffer((out / "dialog" / "mask.raw").read_bytes(), np.uint8).reshape(HEIGHT, WIDTH)
    (want,) = _direct(server, "inpaint", {"method": "ns", "mask_blur": 0}, mask).layers
    (telea,) = _direct(server, "inpaint", {"method": "telea", "mask_blur": 0}, mask).layers
    assert want.image.data != telea.image.data  # so the pixels tell which method ran
    want_px = np.frombuffer(want.image.data, np.uint8).reshape(want.image.height, want.image.width, 4)
    for name in ("dialog", "repeat"):  # the repeat (last values) must use the method chosen in the dialog
        case = cases[name]
        assert case["status"] == "SUCCESS", case.get("message", "") + log
        new, background = case["image"]["layers"]
        assert case["background_unchanged"] and background["name"] == "Background"
        assert (new["x"], new["y"], new["width"], new["height"]) == (want.x, want.y, want.image.width, want.image.height)
        _same_pixels(_png(out / name / new["png"]), want_px)


# --- GIMP ends the plug-in (its progress bar's cancel does): the server cancels the job ------


def _plugin_processes(gimp: GimpHost, job: Path) -> list[int]:
    """The pids of this job's Paintwire plug-in processes (GIMP runs paintwire.py from the job's profile)."""
    script = gimp.plugin_script(job).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if script in (entry / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _queue(server) -> dict:
    with urllib.request.urlopen(f"{server.http}/info", timeout=10) as response:
        return json.loads(response.read())["queue"]


def _idle(queue: dict) -> bool:
    return queue["running"] is False and queue["queued"] == 0


def _wait_for(what: str, check, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_server_cancels_the_job_when_gimp_ends_the_plugin(gimp, diffusers_server, plugin_bundle):
    """A long inpaint (150 steps of the tiny model on a 1024x768 picture, minutes on a CPU)
    starts from GIMP; once the server runs it, the plug-in's process is killed, as GIMP
    does when the artist presses the progress bar's cancel. The websocket drops and the
    server stops the job: nothing runs or waits in its queue soon after, and GIMP's
    image has no new layer."""
    server, caps = diffusers_server
    model = next(m.name for m in caps.models if m.engine == "diffusers" and m.kind == "sd15")  # the checkpoint, not the ControlNet
    case = {"name": "killed", "procedure": "plug-in-paintwire-inpaint", "selection": {"rect": [100, 100, 600, 400]},
            "width": 1024, "height": 768, "connection": {"url": server.url, "token": "", "timeout": 600.0},
            "args": {"model": model, "prompt": "a long job", "steps": 150, "seed": 1, "strength": 1.0}}
    out = gimp.artifacts("killed")
    shutil.rmtree(out, ignore_errors=True)
    job = gimp.root / "tmp" / f"paintwire-test-{uuid.uuid4().hex[:12]}"
    job.mkdir(parents=True)
    try:
        seed_profile(gimp, job / "home")
        (job / "spec.json").write_text(json.dumps({"cases": [case]}), encoding="utf-8")
        shutil.copy(HERE / "driver.py", job / "driver.py")
        app = subprocess.Popen(["bash", str(HERE / "run_gimp.sh"), str(plugin_bundle), str(job)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, GIMP_HOST_CHROOT=str(gimp.root)))
        try:
            assert _idle(_queue(server))
            _wait_for("the job to run on the server", lambda: _queue(server)["running"] or app.poll() is not None, 240)
            assert app.poll() is None, f"GIMP ended before the job ran:\n{app.communicate()[0]}"
            pids = _plugin_processes(gimp, job)
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            # 150 steps take minutes: a queue that is empty and idle within a minute had the job cancelled.
            _wait_for("the server to drop the job", lambda: _idle(_queue(server)), 60)
            log = app.communicate(timeout=120)[0]
        finally:
            if app.poll() is None:
                app.kill()
                app.wait()
        shutil.copytree(job, out, ignore=shutil.ignore_patterns("home"))
        (out / "gimp.log").write_text(log, encoding="utf-8")
        report = json.loads((job / "report.json").read_text(encoding="utf-8"))
        assert report["error"] is None, report["error"] + log
        result = report["cases"]["killed"]
        assert result["status"] != "SUCCESS", result
        assert [l["name"] for l in result["image"]["layers"]] == ["Background"] and result["background_unchanged"]
    finally:
        if not _mounts_under(job):
            shutil.rmtree(job, ignore_errors=True)


# --- a mode only the server knows: reachable from Filters > Paintwire > Paintwire... -----------


@pytest.fixture(scope="module")
def server_only_run(gimp, plugin_bundle):
    """A server with an engine named in its configuration (tests/fixtures/server_only_engine.py):
    its "posterize" mode is in no plug-in file. GIMP runs it through the generic procedure, once
    by script (mode argument) and once interactively (its dialog, answered by autorespond.py)."""
    from server_process import start_server_process  # tests/ is on sys.path (conftest.py)

    server = start_server_process(engines=["classical", "fixtures.server_only_engine:PosterizeEngine"])
    try:
        args = {"mode": "posterize", "params-json": json.dumps({"levels": 3})}
        cases = [
            {"name": "posterize_script", "procedure": "plug-in-paintwire", "selection": {"rect": [10, 8, 30, 20]}, "args": args,
             "connection": {"url": server.url, "token": "", "timeout": 60.0}},
            {"name": "posterize_dialog", "procedure": "plug-in-paintwire", "selection": {"rect": [10, 8, 30, 20]},
             "run_mode": "interactive", "args": args},
        ]
        cases = [dict(c, width=WIDTH, height=HEIGHT) for c in cases]
        report, log, out = run_in_chroot(gimp, plugin_bundle, "driver.py", {"cases": cases}, "server_only", display=True,
                                         env={"PW_AUTORESPOND": "1"})
        yield report["cases"], out, log
    finally:
        server.stop()


def test_a_server_only_mode_runs_from_gimp_without_plugin_changes(server_only_run):
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.server_only_engine import posterize

    cases, out, log = server_only_run
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[8:28, 10:40] = True
    want = posterize(pattern(), 3, grey=False)
    for name in ("posterize_script", "posterize_dialog"):
        case = cases[name]
        assert case["status"] == "SUCCESS", case.get("message", "") + log
        new, background = case["image"]["layers"]
        assert case["background_unchanged"] and background["name"] == "Background"
        assert new["name"] == "Posterize (3 levels)" and (new["x"], new["y"], new["width"], new["height"]) == (0, 0, WIDTH, HEIGHT)
        got = _png(out / name / new["png"])
        assert np.array_equal(got[mask], want[mask]) and (got[~mask][..., 3] == 0).all()
    dialog_log = (out / "dialogs.log").read_text(encoding="utf-8")
    # The generic dialog, built from the server's description: its mode list, the mode's label and its parameters.
    (line,) = [l for l in dialog_log.splitlines() if l.startswith("dialog 'Paintwire':")]
    assert all(word in line for word in ("Mode", "Model", "Input", "Levels", "Palette", "Fewer colour levels"))


# --- one real-vocabulary checkpoint file alone in a model folder ---------------------------


@pytest.mark.slow
def test_a_real_vocabulary_single_file_generates(gimp, plugin_bundle, tmp_path_factory):
    """A painter's setup: one checkpoint file with the real 49408-token CLIP
    vocabulary, alone in an empty model folder; Generate with a WebUI-syntax prompt."""
    try:
        sys.path.insert(0, str(REPO / "tests"))
        from fixtures.tiny_models import CLIP_VOCAB_SIZE, write_tiny_single_file
    except ImportError as exc:
        pytest.skip(f"the diffusers extra is not installed ({exc})")
    from paintwire.hostkit.placement import layer_name
    from server_process import start_server_process

    models = tmp_path_factory.mktemp("gimp-single-file")
    write_tiny_single_file(models / "my-checkpoint.safetensors", vocab_size=CLIP_VOCAB_SIZE)
    server = start_server_process(engines=["diffusers"], model_dirs=[str(models)], device="cpu")
    prompt = "(a lighthouse:1.2) on a cliff BREAK oil painting"
    try:
        cases = [{"name": "single_file", "procedure": "plug-in-paintwire-generate", "selection": None, "width": WIDTH, "height": HEIGHT,
                  "args": {"model": "my-checkpoint", "steps": 2, "prompt": prompt, "seed": 11},
                  "connection": {"url": server.url, "token": "", "timeout": 180.0}}]
        report, log, _ = run_in_chroot(gimp, plugin_bundle, "driver.py", {"cases": cases}, "single-file")
    finally:
        server.stop()
    case = report["cases"]["single_file"]
    assert case["status"] == "SUCCESS", case.get("message", "") + log
    new, background = case["image"]["layers"]
    assert new["name"] == layer_name(prompt, 11, "") and background["name"] == "Background"
    assert (new["x"], new["y"], new["width"], new["height"]) == (0, 0, WIDTH, HEIGHT)


# --- the edit mode: an instruction and a reference layer, with the tiny Flux.2 Klein ---------


EDIT_PROMPT = "put the red hat on it"
EDIT_SELECTION = [20, 12, 30, 24]  # x, y, w, h: where the tiny random Klein shows the reference (by a level or so)
HAT_LAYER = {"name": "Hat", "rects": [[40, 2, 22, 12], [44, 14, 14, 6]], "colour": [220, 30, 40, 255]}


@pytest.fixture(scope="module")
def edit_run(gimp, plugin_bundle, tmp_path_factory):
    """A server with the tiny Flux.2 Klein; GIMP runs the Edit mode, which no plug-in file
    names, through the generic procedure, with a hidden layer as its edit reference."""
    try:
        sys.path.insert(0, str(REPO / "tests"))
        from fixtures.edit_models import KLEIN, build_edit_models
    except ImportError as exc:
        pytest.skip(f"the diffusers extra is not installed ({exc})")
    models = build_edit_models(tmp_path_factory.mktemp("gimp-edit-models"), (KLEIN,))
    from server_process import start_server_process  # tests/ is on sys.path (conftest.py)

    server = start_server_process(engines=["classical", "diffusers"], model_dirs=[str(models)], device="cpu")
    try:
        args = {"mode": "edit", "engine": "diffusers", "model": KLEIN, "prompt": EDIT_PROMPT, "seed": 7, "steps": 2,
                "params-json": json.dumps({"mask_blur": 4}), "controls-json": json.dumps([{"layer": "Hat", "kind": "edit_reference"}])}
        cases = [{"name": "edit", "procedure": "plug-in-paintwire", "selection": {"rect": EDIT_SELECTION}, "control_layer": HAT_LAYER,
                  "args": args, "connection": {"url": server.url, "token": "", "timeout": 120.0}, "width": WIDTH, "height": HEIGHT}]
        report, log, out = run_in_chroot(gimp, plugin_bundle, "driver.py", {"cases": cases}, "edit", limit=300)
        yield report["cases"], out, log, server, KLEIN
    finally:
        server.stop()


@pytest.mark.slow
def test_an_edit_with_a_reference_layer_runs_from_gimp_without_plugin_changes(edit_run):
    from paintwire.protocol import ControlInput

    cases, out, log, server, model = edit_run
    case = cases["edit"]
    assert case["status"] == "SUCCESS", case.get("message", "") + log
    assert case["background_unchanged"] and case["control_layer_unchanged"]
    layers = {l["name"]: l for l in case["image"]["layers"]}
    assert sorted(layers) == sorted(["Background", "Hat", f"{EDIT_PROMPT} [seed 7]"]), list(layers)
    new = layers[f"{EDIT_PROMPT} [seed 7]"]
    # What the server makes of the same job: the layer, the selection, the Hat layer whole.
    mask = np.frombuffer((out / "edit" / "mask.raw").read_bytes(), np.uint8).reshape(HEIGHT, WIDTH)
    hat = (out / "edit" / "control.rgba").read_bytes()
    params = {"prompt": EDIT_PROMPT, "seed": 7, "steps": 2, "mask_blur": 4}
    image = raw_image(WIDTH, HEIGHT, PixelFormat.RGBA8, pattern().tobytes())
    mask_payload = raw_image(WIDTH, HEIGHT, PixelFormat.L8, mask.tobytes())
    control = ControlInput("edit_reference", raw_image(WIDTH, HEIGHT, PixelFormat.RGBA8, hat))
    with Client(server.url) as client:
        (want,) = client.run(JobRequest("diffusers", "edit", image=image, mask=mask_payload, model=model, params=params, controls=(control,))).layers
        (plain,) = client.run(JobRequest("diffusers", "edit", image=image, mask=mask_payload, model=model, params=params)).layers
    x, y, w, h = EDIT_SELECTION
    assert (new["x"], new["y"], new["width"], new["height"]) == (want.x, want.y, want.image.width, want.image.height) == (x, y, w, h)
    got = _png(out / "edit" / new["png"]).astype(int)
    want_px = np.frombuffer(want.image.data, np.uint8).reshape(h, w, 4).astype(int)
    plain_px = np.frombuffer(plain.image.data, np.uint8).reshape(h, w, 4).astype(int)
    assert np.array_equal(got[..., 3], want_px[..., 3]), "the layer's coverage differs from the server's"
    visible = want_px[..., 3] > 0
    assert np.abs(got[visible] - want_px[visible]).max() <= 2, "the result is not the server's for this reference"
    # The layer is the server's result with the Hat, not without it.
    assert not np.array_equal(want_px, plain_px)
    assert np.abs(got - want_px)[visible].sum() < np.abs(got - plain_px)[visible].sum(), "the reference layer was not sent"
