"""The GIMP plug-in's logic, without GIMP: procedure arguments, engine choice,
parameter mapping, the settings form, connection settings, a whole job run
with a stand-in document, and the packaged bundle."""

from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import paintwire.hostkit.modes  # noqa: F401  (before the plug-in folder joins sys.path: its paintwire.py must not shadow the package)
from paintwire.hostkit import form as kit_form
from paintwire.hostkit import modes as kit_modes
from paintwire.hostkit.modes import Choice
from paintwire.hostkit.snapshot import Snapshot
from paintwire.protocol import (
    Capabilities, ClientError, EngineInfo, Error, ErrorCode, JobFailed, Layer, Limits, ModeSpec, ModelInfo, ParamSpec,
    ParamType, PixelFormat, PlacementKind, Preview, Progress, Queued, Rect, Result, Started, raw_image,
)

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugins" / "gimp" / "paintwire"
PLUGIN_MODULES = ("actions", "form", "jobs", "settings")


def _load_plugin_modules():
    """Import the plug-in's modules (plain top-level modules in GIMP) without
    leaving them, or the plug-in folder, in sys.modules / sys.path for other tests."""
    saved = {name: sys.modules.pop(name) for name in PLUGIN_MODULES if name in sys.modules}
    sys.path.insert(0, str(PLUGIN))
    try:
        return [importlib.import_module(name) for name in PLUGIN_MODULES]
    finally:
        sys.path.remove(str(PLUGIN))
        for name in PLUGIN_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


actions, form, jobs, settings = _load_plugin_modules()
Args, PluginError = actions.Args, actions.PluginError

# --- a server's capabilities: the real classical engine and a diffusers-like one ----------

from paintwire.server.engines.classical import INPAINT, UPSCALE  # noqa: E402

PROMPT = ParamSpec("prompt", ParamType.STRING, "", "Prompt", "What to paint.")
NEGATIVE = ParamSpec("negative_prompt", ParamType.STRING, "", "Negative prompt", "What to avoid.")
STRENGTH = ParamSpec("strength", ParamType.FLOAT, 0.75, "Strength", "How much changes.", minimum=0.0, maximum=1.0)
STEPS = ParamSpec("steps", ParamType.INT, 20, "Steps", "Sampling steps.", minimum=1, maximum=150)
SEED = ParamSpec("seed", ParamType.SEED, -1, "Seed", "Random seed.")
CFG = ParamSpec("cfg_scale", ParamType.FLOAT, 7.0, "CFG scale", "Prompt weight.", minimum=1.0, maximum=30.0, group="advanced")
SAMPLER = ParamSpec("sampler", ParamType.CHOICE, "euler", "Sampler", "Sampler.", choices=("euler", "ddim"), group="advanced")
SIZE = (ParamSpec("width", ParamType.INT, 0, "Width", "", minimum=0, maximum=4096), ParamSpec("height", ParamType.INT, 0, "Height", "", minimum=0, maximum=4096))
DIFF_PARAMS = (PROMPT, NEGATIVE, STEPS, SEED, CFG, SAMPLER)
SD = ("sd15",)
DIFFUSERS = EngineInfo("diffusers", "Diffusers", (
    ModeSpec("txt2img", "Generate", "", needs_image=False, needs_mask=False, params=DIFF_PARAMS + SIZE, model_kinds=SD, order=10),
    ModeSpec("img2img", "Refine", "", needs_image=True, needs_mask=False, params=DIFF_PARAMS + (STRENGTH,), accepts_mask=True,
             model_kinds=SD, order=20),
    ModeSpec("inpaint", "Inpaint", "", needs_image=True, needs_mask=True, params=DIFF_PARAMS + (STRENGTH,), model_kinds=SD, order=30),
))
CLASSICAL = EngineInfo("classical", "Classical (no model)", (INPAINT, UPSCALE))
LIMITS = Limits(1 << 30, 1 << 24, 8192, 4)
CAPS_CLASSICAL = Capabilities((CLASSICAL,), (ModelInfo("opencv", "classical", "builtin", "OpenCV (built in)"),), LIMITS)
CAPS_BOTH = Capabilities(
    (DIFFUSERS, CLASSICAL),
    (ModelInfo("sd15", "diffusers", "sd15", "SD 1.5"), ModelInfo("detail", "diffusers", "lora"),
     ModelInfo("opencv", "classical", "builtin", "OpenCV (built in)")),
    LIMITS,
)


# --- actions -----------------------------------------------------------------------------


def test_procedures_are_the_generic_one_the_shortcuts_and_connection():
    names = [actions.GENERIC_PROC] + [sc.proc_name for sc in actions.SHORTCUTS] + [actions.CONNECTION_PROC]
    assert len(set(names)) == len(names) and all(n.startswith("plug-in-paintwire") for n in names)
    assert {a.name for a in actions.ARGS} >= {"prompt", "negative-prompt", "model", "strength", "steps", "seed", "params-json"}
    # A shortcut is a name and a label; what the mode is comes from the server.
    assert {sc.mode for sc in actions.SHORTCUTS} <= {m.name for m in DIFFUSERS.modes} | {"inpaint_sketch", "outpaint", "upscale"}


def test_args_round_trip_through_pdb_names():
    args = Args(prompt="a fox", negative_prompt="blur", engine="diffusers", model="sd15", strength=0.4, steps=12, seed=7,
                params_json='{"cfg_scale": 5}', source="visible", mode="txt2img")
    values = args.to_values()
    assert values["negative-prompt"] == "blur" and values["params-json"] == '{"cfg_scale": 5}'
    assert Args.from_values(values) == args
    assert Args.from_values({"prompt": "x", "unknown": 1}) == Args(prompt="x")


def test_choose_engine_defaults_to_first_model_that_can_do_the_mode():
    assert actions.choose_engine(CAPS_BOTH, "inpaint") == Choice("diffusers", "sd15", "SD 1.5")
    assert actions.choose_engine(CAPS_BOTH, "inpaint", engine="classical").model == "opencv"
    assert actions.choose_engine(CAPS_BOTH, "inpaint", model="opencv").engine == "classical"
    assert actions.choose_engine(CAPS_CLASSICAL, "upscale").engine == "classical"


def test_choose_engine_errors_say_what_the_server_offers():
    with pytest.raises(PluginError, match="cannot do 'txt2img'.*offers these modes: inpaint, upscale"):
        actions.choose_engine(CAPS_CLASSICAL, "txt2img")
    with pytest.raises(PluginError, match="Model 'nope'.*sd15, opencv"):
        actions.choose_engine(CAPS_BOTH, "inpaint", model="nope")
    with pytest.raises(PluginError, match="Engine 'classical' cannot do Generate.*diffusers"):
        actions.choose_engine(CAPS_BOTH, "txt2img", engine="classical")
    with pytest.raises(PluginError, match="'detail'"):  # a LoRA is not a model to run
        actions.choose_engine(CAPS_BOTH, "txt2img", model="detail")


def test_generic_arguments_go_only_to_modes_that_take_them():
    args = Args(prompt="a red fox", negative_prompt="", strength=0.35, steps=0, seed=42)
    # The classical engine takes no prompt, strength or seed: they are left out, not rejected.
    assert actions.job_params(INPAINT, args) == {}
    inpaint = DIFFUSERS.mode("inpaint")
    # Empty negative prompt and steps=0 mean "the server's default".
    assert actions.job_params(inpaint, args) == {"prompt": "a red fox", "strength": 0.35, "seed": 42}
    assert "strength" not in actions.job_params(inpaint, Args(strength=-1.0))


def test_params_json_is_checked_with_the_protocols_specs():
    assert actions.job_params(INPAINT, Args(params_json='{"method": "ns", "mask_blur": 8}')) == {"method": "ns", "mask_blur": 8}
    with pytest.raises(PluginError, match="'metod'.*method, radius"):
        actions.job_params(INPAINT, Args(params_json='{"metod": "ns"}'))
    with pytest.raises(PluginError, match="mask_blur must be at most 64"):
        actions.job_params(INPAINT, Args(params_json='{"mask_blur": 1000}'))
    with pytest.raises(PluginError, match="method must be one of telea, ns, fill"):
        actions.job_params(INPAINT, Args(params_json='{"method": "magic"}'))
    with pytest.raises(PluginError, match="not valid JSON"):
        actions.job_params(INPAINT, Args(params_json="{method: ns}"))
    with pytest.raises(PluginError, match="JSON object"):
        actions.job_params(INPAINT, Args(params_json="[1, 2]"))
    assert actions.job_params(INPAINT, Args(params_json="  ")) == {}


def test_dialog_values_become_arguments_that_reproduce_them():
    mode = DIFFUSERS.mode("inpaint")
    params = {"prompt": "moss", "negative_prompt": "text", "strength": 0.5, "steps": 30, "seed": 3, "cfg_scale": 4.5, "sampler": "ddim"}
    choice = Choice("diffusers", "sd15", "SD 1.5")
    args = actions.args_from_params(Args(), mode, params, choice, "visible")
    assert (args.engine, args.model, args.source, args.prompt, args.steps, args.mode) == ("diffusers", "sd15", "visible", "moss", 30, "inpaint")
    assert json.loads(args.params_json) == {"cfg_scale": 4.5, "sampler": "ddim"}
    assert actions.job_params(mode, args) == params


def test_a_seed_too_big_for_a_gimp_int_travels_in_params_json():
    mode = DIFFUSERS.mode("inpaint")
    args = actions.args_from_params(Args(), mode, {"seed": 2**32 - 1}, Choice("diffusers", "sd15", ""), "layer")
    assert args.seed == -1 and json.loads(args.params_json) == {"seed": 2**32 - 1}
    assert actions.job_params(mode, args)["seed"] == 2**32 - 1


# --- connection settings -----------------------------------------------------------------


def test_connection_settings_file_and_environment(tmp_path):
    assert settings.load(tmp_path, environ={}) == settings.Connection()
    saved = settings.save(tmp_path, settings.Connection("ws://10.0.0.2:7878/ws", "s3cret", 30.0))
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # it holds the token
    assert settings.load(tmp_path, environ={}) == settings.Connection("ws://10.0.0.2:7878/ws", "s3cret", 30.0)
    env = {"PAINTWIRE_URL": "ws://127.0.0.1:9999/ws", "PAINTWIRE_TOKEN": "t"}
    assert settings.load(tmp_path, environ=env) == settings.Connection("ws://127.0.0.1:9999/ws", "t", 30.0)
    saved.write_text("{not json", encoding="utf-8")
    assert settings.load(tmp_path, environ={}) == settings.Connection()
    assert settings.check_url("http://localhost:7878") and settings.check_url("ws://h:1/ws") is None


# --- the settings form -------------------------------------------------------------------


def test_form_fields_follow_the_param_specs():
    fields = kit_form.fields(DIFFUSERS.mode("img2img"), {"prompt": "x", "steps": 500, "sampler": "ddim"})
    by_name = {f.name: f for f in fields}
    assert [f.name for f in fields[:2]] == ["prompt", "negative_prompt"] and fields[0].kind == "prompt"
    assert fields[-1].advanced and not by_name["steps"].advanced
    assert by_name["steps"].value == 20  # out of range: back to the default
    assert by_name["sampler"].kind == "choice" and by_name["sampler"].value == "ddim" and by_name["sampler"].choices == (("euler", "euler"), ("ddim", "ddim"))
    assert (by_name["strength"].kind, by_name["strength"].step, by_name["strength"].digits) == ("float", 0.01, 2)
    assert (by_name["seed"].kind, by_name["seed"].minimum, by_name["seed"].maximum) == ("seed", -1, 2**32 - 1)
    kinds = {f.name: f.kind for f in kit_form.fields(INPAINT, {})}
    assert kinds == {"method": "choice", "radius": "int", "mask_blur": "int", "mask_blur_outward": "bool", "invert_mask": "bool", "padding": "int"}


def test_form_starts_from_the_last_arguments_leniently():
    args = Args(prompt="p", strength=0.3, steps=0, params_json='{"cfg_scale": 99, "sampler": "ddim", "gone": 1}')
    assert form.stored_values(DIFFUSERS.mode("img2img"), args) == {
        "prompt": "p", "negative_prompt": "", "seed": -1, "strength": 0.3, "sampler": "ddim"}
    assert form.stored_values(INPAINT, Args(params_json="{broken")) == {}
    seed = kit_form.field_for(SEED, -1)
    assert kit_form.coerce(seed, 41.9999) == 42 and kit_form.coerce(kit_form.field_for(CFG, 7.0), 7.25) == 7.25


# --- a whole run with a stand-in document and client --------------------------------------


class FakeDocument:
    def __init__(self, width=8, height=6, selection=None):
        self.width, self.height = width, height
        self.pixels = bytes(range(256)) * (width * height * 4 // 256) + bytes(width * height * 4 % 256)
        self.selection = selection
        self.written = []
        self.sources = []
        self.calls = []  # preview, end_preview and write, in order

    def size(self):
        return self.width, self.height

    def selection_bounds(self):
        return None if self.selection is None else Rect(0, 0, self.width, self.height)

    def snapshot(self, source, area=None):
        self.sources.append(source)
        assert area is None  # the whole canvas: these selections cover it
        return Snapshot(self.width, self.height, self.pixels, PixelFormat.RGBA8, selection=self.selection)

    def write(self, placement):
        self.calls.append("write")
        self.written.append(placement)
        return ("image", "layer")

    def preview(self, event):
        self.calls.append(("preview", event.x, event.y, event.width, event.height))

    def end_preview(self):
        self.calls.append("end_preview")

    def layer_names(self):
        return ["Background", "Lines"]

    def layer_image(self, control, region):
        self.calls.append(("layer_image", control.layer, region))
        return raw_image(region.width, region.height, PixelFormat.RGBA8, bytes([7]) * (region.area * 4))


class FakeProgress:
    def __init__(self):
        self.log = []

    def start(self, text):
        self.log.append(("start", text))

    def text(self, text):
        self.log.append(("text", text))

    def fraction(self, value):
        self.log.append(("fraction", value))

    def end(self):
        self.log.append(("end",))


class FakeClient:
    """Stands in for paintwire.protocol.Client: records the request, replays events."""

    instances: list = []

    def __init__(self, url, name, token, timeout, caps=CAPS_CLASSICAL, events=(), fail=None, connect_fail=None):
        self.url, self.name, self.token = url, name, token
        self.caps, self.events, self.fail, self.connect_fail = caps, events, fail, connect_fail
        self.request = None
        self.closed = False
        FakeClient.instances.append(self)

    def connect(self):
        if self.connect_fail:
            raise self.connect_fail
        return self.caps

    def run(self, request, on_event=None, timeout=None):
        self.request, self.timeout = request, timeout
        for event in self.events:
            on_event(event)
        if self.fail:
            raise self.fail
        return _result(request)

    def close(self):
        self.closed = True


def _result(request):
    image = raw_image(2, 1, PixelFormat.RGBA8, bytes(8))
    return Result("job-1", (Layer(image, 3, 2, "Inpaint (telea)", seed=None),), request.image.width, request.image.height)


def _factory(**kw):
    return lambda url, name, token, timeout: FakeClient(url, name, token, timeout, **kw)


CONNECTION = settings.Connection("ws://127.0.0.1:7878/ws", "tok", 5.0)


def test_run_sends_selection_as_mask_and_writes_the_placed_result():
    selection = bytes([0, 128, 255] * 16)
    doc, progress = FakeDocument(selection=selection), FakeProgress()
    events = [Queued("job-1", 1, 2), Started("job-1"), Progress("job-1", 1, 2, "inpainting")]
    outcome = jobs.run("inpaint", Args(params_json='{"method": "ns"}'), CONNECTION, doc, progress, client_factory=_factory(events=events))
    client = FakeClient.instances[-1]
    assert client.closed and client.token == "tok" and client.timeout == 5.0 and client.name.startswith("paintwire-gimp/")
    req = client.request
    assert (req.engine, req.mode, req.model, dict(req.params)) == ("classical", "inpaint", "opencv", {"method": "ns"})
    assert req.image.data == doc.pixels and req.mask.data == selection and req.mask.format is PixelFormat.L8
    (placement,) = doc.written
    assert not placement.new_document and placement.group is None
    assert [(l.name, l.x, l.y) for l in placement.layers] == [("Inpaint (telea)", 3, 2)]
    assert outcome.written == ("image", "layer") and outcome.job_id == "job-1"
    texts = [entry[1] for entry in progress.log if entry[0] == "text"]
    assert "Paintwire: Waiting: 2 job(s) ahead." in texts and "Paintwire: Inpainting: step 1 of 2" in texts
    assert ("fraction", 0.5) in progress.log and progress.log[-1] == ("end",)


def test_previews_show_while_the_job_runs_and_go_before_the_result_is_written():
    doc = FakeDocument(selection=bytes([255] * 48))
    preview = Preview("job-1", raw_image(2, 1, PixelFormat.RGBA8, bytes(8)), 1, 2, 4, 2)
    jobs.run("inpaint", Args(), CONNECTION, doc, FakeProgress(), client_factory=_factory(events=[Started("job-1"), preview, preview]))
    assert doc.calls[:3] == [("preview", 1, 2, 4, 2)] * 2 + ["end_preview"] and doc.calls[3] == "write"
    assert doc.calls[-1] == "end_preview"  # again on the way out: harmless, and it covers failures
    failing = FakeDocument(selection=bytes([255] * 48))
    with pytest.raises(PluginError):
        jobs.run("inpaint", Args(), CONNECTION, failing, FakeProgress(), client_factory=_factory(events=[preview], fail=ClientError("gone")))
    assert failing.calls[:2] == [("preview", 1, 2, 4, 2), "end_preview"] and set(failing.calls[2:]) <= {"end_preview"}
    assert "write" not in failing.calls


def test_run_without_selection_masks_the_whole_canvas():
    doc = FakeDocument(selection=None)
    jobs.run("inpaint", Args(source="visible"), CONNECTION, doc, FakeProgress(), client_factory=_factory())
    assert FakeClient.instances[-1].request.mask.data == b"\xff" * 48 and doc.sources == ["visible"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"fail": JobFailed(Error(ErrorCode.INVALID_PARAM, "radius must be at most 64, got 99.", "job.params.radius"))},
         "could not do this: radius must be at most 64, got 99. (job.params.radius)"),
        ({"fail": ClientError("The connection to ws://x was closed: no close frame.")}, "Lost the connection"),
        ({"connect_fail": ClientError("Cannot connect to ws://127.0.0.1:7878/ws: refused.")}, "Filters > Paintwire > Connection"),
        ({"connect_fail": JobFailed(Error(ErrorCode.UNAUTHORIZED, "Wrong token."))}, "refused the connection: Wrong token."),
        ({"caps": CAPS_CLASSICAL}, None),
    ],
)
def test_failures_become_one_sentence_and_write_nothing(kw, message):
    doc, progress = FakeDocument(selection=bytes(48)), FakeProgress()
    if message is None:  # Generate on a server without a diffusers model
        with pytest.raises(PluginError, match="cannot do 'txt2img'"):
            jobs.run("txt2img", Args(prompt="x"), CONNECTION, doc, progress, client_factory=_factory(**kw))
    else:
        with pytest.raises(PluginError) as info:
            jobs.run("inpaint", Args(), CONNECTION, doc, progress, client_factory=_factory(**kw))
        assert message in str(info.value)
    assert doc.written == [] and FakeClient.instances[-1].closed and progress.log[-1] == ("end",)


def test_bad_address_and_source_fail_before_connecting():
    count = len(FakeClient.instances)
    with pytest.raises(PluginError, match="ws://"):
        jobs.run("inpaint", Args(), settings.Connection("localhost:7878"), FakeDocument(), FakeProgress(), client_factory=_factory())
    with pytest.raises(PluginError, match="source must be one of visible, layer"):
        jobs.run("inpaint", Args(source="canvas"), CONNECTION, FakeDocument(), FakeProgress(), client_factory=_factory())
    assert len(FakeClient.instances) == count


def test_dialog_sees_the_servers_choices_and_can_cancel():
    seen = []

    def cancel(request):
        seen.append(request)
        return None

    doc = FakeDocument()
    with pytest.raises(jobs.DialogClosed):
        jobs.run("inpaint", Args(model="removed-model"), CONNECTION, doc, FakeProgress(), dialog=cancel, client_factory=_factory(caps=CAPS_BOTH))
    (request,) = seen
    assert [c.key for c in request.choices("inpaint")] == ["diffusers/sd15", "classical/opencv"]
    assert [m.name for m in request.modes] == ["txt2img", "img2img", "inpaint", "upscale"] and request.mode_fixed
    assert request.initial.key == "diffusers/sd15"  # the remembered model is gone: the first one
    assert doc.written == [] and FakeClient.instances[-1].closed


def test_dialog_arguments_are_what_runs_and_what_is_remembered():
    def choose_classical(request):
        return Args(engine="classical", model="opencv", params_json='{"method": "fill"}', source="visible")

    outcome = jobs.run("inpaint", Args(), CONNECTION, FakeDocument(), FakeProgress(), dialog=choose_classical,
                       client_factory=_factory(caps=CAPS_BOTH))
    assert FakeClient.instances[-1].request.engine == "classical"
    assert outcome.args.params_json == '{"method": "fill"}'


def test_generate_sends_the_canvas_size_and_no_pixels():
    caps = Capabilities((DIFFUSERS,), (ModelInfo("sd15", "diffusers", "sd15"),), LIMITS)

    class GenerateClient(FakeClient):
        def run(self, request, on_event=None, timeout=None):
            self.request = request
            image = raw_image(8, 6, PixelFormat.RGBA8, bytes(8 * 6 * 4))
            return Result("j", (Layer(image, 0, 0, "txt2img", seed=11), Layer(image, 0, 0, "txt2img", seed=12)), 8, 6)

    doc = FakeDocument()
    jobs.run("txt2img", Args(prompt="a fox", seed=11), CONNECTION, doc, FakeProgress(),
             client_factory=lambda url, name, token, timeout: GenerateClient(url, name, token, timeout, caps=caps))
    request = FakeClient.instances[-1].request
    assert request.image is None and request.mask is None and doc.sources == []
    assert request.params == {"prompt": "a fox", "seed": 11, "width": 8, "height": 6}
    (placement,) = doc.written
    assert placement.group is not None and [l.name for l in placement.layers] == ["a fox [seed 11]", "a fox [seed 12]"]


def test_run_against_a_real_server(live_server):
    """jobs.run with the real client and the classical engine: the placed layer
    is the server's own answer to the same request."""
    from paintwire.protocol import Client, JobRequest

    width, height = 24, 16
    selection = bytearray(width * height)
    for y in range(4, 10):
        selection[y * width + 6 : y * width + 14] = b"\xff" * 8
    doc = FakeDocument(width, height, selection=bytes(selection))
    connection = settings.Connection(live_server.url, "", 30.0)
    jobs.run("inpaint", Args(params_json='{"method": "telea", "mask_blur": 0}'), connection, doc, FakeProgress())
    (placement,) = doc.written
    (layer,) = placement.layers
    with Client(live_server.url) as client:
        want = client.run(JobRequest("classical", "inpaint", raw_image(width, height, "rgba8", doc.pixels),
                                     raw_image(width, height, "l8", bytes(selection)), "opencv", {"method": "telea", "mask_blur": 0}))
    (expected,) = want.layers
    assert (layer.x, layer.y, layer.width, layer.height, layer.pixels) == (
        expected.x, expected.y, expected.image.width, expected.image.height, expected.image.data)


# --- the packaged bundle -----------------------------------------------------------------


def test_build_makes_an_installable_folder_and_zip(tmp_path):
    out = tmp_path / "paintwire-gimp"
    subprocess.run([sys.executable, str(REPO / "plugins/gimp/build.py"), "-o", str(out)], check=True, capture_output=True)
    folder = out / "paintwire"
    entry = folder / "paintwire.py"
    assert entry.stat().st_mode & stat.S_IXUSR
    for name in ("actions.py", "dialogs.py", "form.py", "gimp_document.py", "jobs.py", "procedures.py", "settings.py"):
        assert (folder / name).is_file(), name
    vendor = folder / "vendor"
    assert (vendor / "paintwire" / "protocol" / "client.py").is_file() and (vendor / "paintwire" / "hostkit" / "request.py").is_file()
    assert not (vendor / "paintwire" / "__init__.py").exists()  # a namespace package, like the source tree
    assert not list(vendor.rglob("*.so")) and not list(vendor.rglob("*.pyd"))
    with zipfile.ZipFile(out.with_suffix(".zip")) as zf:
        names = zf.namelist()
        assert "paintwire/paintwire.py" in names and "paintwire/vendor/websockets/sync/client.py" in names
        assert (zf.getinfo("paintwire/paintwire.py").external_attr >> 16) & stat.S_IXUSR

    # The bundle imports on its own, from its own folder, in a Python without paintwire installed.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import paintwire.hostkit.request as w, websockets, msgpack; "
        "from paintwire.protocol import Client; "
        "print(w.__file__); print(websockets.__file__); print(msgpack.__file__); print(websockets.__version__)"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(vendor)], check=True, capture_output=True, text=True,
                            env={"PATH": os.environ.get("PATH", "")})
    lines = result.stdout.split()
    assert all(line.startswith(str(vendor)) for line in lines[:3]), lines
    assert lines[3] == importlib.import_module("websockets").__version__


def test_the_generic_procedure_runs_any_mode_and_its_dialog_may_switch_modes():
    def pick_upscale(request):
        assert not request.mode_fixed and request.mode == "txt2img"  # no mode given: the server's first
        return Args(engine="classical", model="opencv", mode="upscale", params_json='{"scale": 2.0}')

    doc = FakeDocument()

    class UpscaleClient(FakeClient):
        def run(self, request, on_event=None, timeout=None):
            self.request = request
            image = raw_image(16, 12, PixelFormat.RGBA8, bytes(16 * 12 * 4))
            return Result("j", (Layer(image, 0, 0, "Upscale 16x12"),), 16, 12)

    outcome = jobs.run("", Args(), CONNECTION, doc, FakeProgress(), dialog=pick_upscale, mode_fixed=False,
                       client_factory=lambda url, name, token, timeout: UpscaleClient(url, name, token, timeout, caps=CAPS_BOTH))
    assert FakeClient.instances[-1].request.mode == "upscale" and outcome.args.mode == "upscale"
    (placement,) = doc.written
    assert placement.kind is PlacementKind.RESIZE and placement.new_document  # the server's word for where it goes


def test_a_named_entry_keeps_its_mode_whatever_the_arguments_say():
    jobs.run("inpaint", Args(mode="upscale"), CONNECTION, FakeDocument(), FakeProgress(), client_factory=_factory())
    assert FakeClient.instances[-1].request.mode == "inpaint"


def test_the_dialog_refreshes_the_models_and_unusable_ones_are_not_offered():
    broken = ModelInfo("half", "diffusers", "sd15", "Half", problem="its tokenizer is missing (a tokenizer/ folder with vocab.json and merges.txt).")
    before = Capabilities((DIFFUSERS,), (ModelInfo("sd15", "diffusers", "sd15"), broken), LIMITS)
    after = Capabilities((DIFFUSERS,), before.models + (ModelInfo("new", "diffusers", "sd15"),), LIMITS)

    class RescanClient(FakeClient):
        def rescan(self):
            self.rescanned = True
            return after

    seen = {}

    def dialog(request):
        seen["before"] = [c.model for c in request.choices("inpaint")]
        seen["unusable"] = [m.name for m in kit_modes.unusable_models(request.capabilities)]
        caps = request.refresh()  # the dialog's Refresh button
        seen["after"] = [c.model for c in request.choices("inpaint", caps)]
        return Args(engine="diffusers", model="new", params_json="{}", source="visible")

    jobs.run("inpaint", Args(engine="diffusers", model="sd15"), CONNECTION, FakeDocument(), FakeProgress(), dialog=dialog,
             client_factory=lambda url, name, token, timeout: RescanClient(url, name, token, timeout, caps=before))
    assert seen == {"before": ["sd15"], "unusable": ["half"], "after": ["sd15", "new"]}
    client = FakeClient.instances[-1]
    assert client.rescanned and client.request.model == "new"  # a model found by the refresh runs


def test_an_open_dialog_takes_recalls_sent_from_the_servers_history():
    from paintwire.protocol import Recall

    recall = Recall(3, {"engine": "classical", "mode": "inpaint", "params": {"method": "ns"}}, "/api/history/3/image")

    class RecallClient(FakeClient):
        def poll(self):
            return [Progress("other", 1, 2), recall] if self.recall else []

    seen = []

    def dialog(request):
        seen.append(request.recalls())
        seen.append(request.recalls())
        return None

    with pytest.raises(jobs.DialogClosed):
        jobs.run("inpaint", Args(), CONNECTION, FakeDocument(), FakeProgress(), dialog=dialog,
                 client_factory=lambda url, name, token, timeout: RecallClient(url, name, token, timeout))
    assert seen[0] == [recall]  # only recalls: nothing else that arrived
    assert FakeClient.instances[-1].recall is True  # the hello asked for recalls: a dialog was open

    jobs.run("inpaint", Args(), CONNECTION, FakeDocument(), FakeProgress(), client_factory=_factory())
    assert not getattr(FakeClient.instances[-1], "recall", False)  # a non-interactive run does not


# --- control layers ----------------------------------------------------------------------------

from paintwire.hostkit.controls import ControlLayer  # noqa: E402
from paintwire.protocol import InputKind, InputSpec  # noqa: E402
from paintwire.protocol.controls import ControlKindSpec  # noqa: E402

LINEART = ControlKindSpec("lineart", "Line art", "Clean lines.", ("lineart", "none"))
GUIDED = EngineInfo("diffusers", "Diffusers", (
    ModeSpec("img2img", "Refine", "", inputs=(InputSpec(InputKind.IMAGE), InputSpec(InputKind.CONTROL, required=False)),
             params=DIFF_PARAMS + (STRENGTH,), model_kinds=SD, order=20),
), controls=(LINEART,))
CAPS_GUIDED = Capabilities((GUIDED, CLASSICAL), CAPS_BOTH.models, LIMITS)
LINES = '[{"layer": "Lines", "kind": "lineart", "strength": 0.7, "end": 0.5}]'


def test_controls_json_sends_the_named_layers_at_the_canvas_size():
    doc = FakeDocument(selection=None)
    jobs.run("img2img", Args(controls_json=LINES), CONNECTION, doc, FakeProgress(), client_factory=_factory(caps=CAPS_GUIDED))
    (control,) = FakeClient.instances[-1].request.controls
    assert (control.kind, control.strength, control.start, control.end, control.preprocessor) == ("lineart", 0.7, 0.0, 0.5, "lineart")
    assert (control.image.width, control.image.height, control.image.format) == (doc.width, doc.height, PixelFormat.RGBA8)
    assert ("layer_image", "Lines", Rect(0, 0, doc.width, doc.height)) in doc.calls


@pytest.mark.parametrize("mode, controls, words", [
    ("inpaint", LINES, "Inpaint takes no control layers"),
    ("img2img", '[{"layer": "Nope", "kind": "lineart"}]', "The control layer 'Nope' is gone"),
    ("img2img", '[{"layer": "Lines", "kind": "pose"}]', "no control kind 'pose'"),
    ("img2img", '{"layer": "Lines"}', "controls-json must be a JSON list"),
])
def test_controls_a_script_asks_for_that_cannot_go_are_gimp_errors(mode, controls, words):
    doc = FakeDocument(selection=None)
    with pytest.raises(PluginError, match=words):
        jobs.run(mode, Args(controls_json=controls), CONNECTION, doc, FakeProgress(), client_factory=_factory(caps=CAPS_GUIDED))
    assert doc.written == []


def test_the_dialogs_controls_are_remembered_in_the_arguments():
    mode = GUIDED.modes[0]
    chosen = [ControlLayer("Lines", "lineart", 0.5, 0.2, 0.9, "none")]
    args = actions.args_from_params(Args(), mode, {"prompt": "fox"}, Choice("diffusers", "sd15", "SD"), "visible", chosen)
    assert args.controls() == chosen and args.prompt == "fox"
    assert actions.args_from_params(Args(controls_json=LINES), mode, {}, Choice("diffusers", "sd15", "SD"), "visible").controls_json == LINES
