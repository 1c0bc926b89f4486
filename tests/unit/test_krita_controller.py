"""The Krita docker's orchestration without Krita and without Qt
(plugins/krita/paintwire_krita/controller.py), driven as the docker drives it:
the worker's signals become on_* calls, the docker's widgets are a View."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))

from paintwire_krita import state as st  # noqa: E402
from paintwire_krita.controller import OUTPUT_FORMAT, Controller  # noqa: E402

from paintwire.hostkit.snapshot import Snapshot  # noqa: E402
from paintwire.protocol import (  # noqa: E402
    Capabilities, EngineInfo, ImagePayload, Layer, Limits, ModelInfo, PixelFormat, PlacementKind, Preview, Progress, Queued, Result,
    Rect, Started,
)
from paintwire.server.engines.classical import ClassicalEngine  # noqa: E402

from fixtures.server_only_engine import POSTERIZE  # noqa: E402

W, H = 8, 6
CLASSICAL = ClassicalEngine()
CAPS = Capabilities(
    (EngineInfo(CLASSICAL.name, CLASSICAL.label, CLASSICAL.modes()), EngineInfo("extras", "Extras", (POSTERIZE,))),
    CLASSICAL.models(), Limits(1 << 26, 1 << 24, 4096, 4),
)


class DocumentError(Exception):
    pass


class FakeDoc:
    def __init__(self, name="photo.kra"):
        self.name = name
        self.layers = []


class Documents:
    """Stands in for document.py: the same functions, on FakeDoc."""

    DocumentError = DocumentError

    def __init__(self):
        self.active = FakeDoc()
        self.open = [self.active]
        self.selection = None
        self.reads = []
        self.areas = []
        self.canvas = []  # what the canvas preview did: ("show", doc, preview) and "end"
        self.stored = {}  # doc name -> the history bytes saved in it
        self.stored_controls = {}  # doc name -> the control list saved in it
        self.paths = ["Original", "Lines", "Strokes"]
        self.current = "Lines"
        self.layer_reads = []

    def active_document(self):
        if self.active is None:
            raise DocumentError("Open or create a document first.")
        return self.active

    def is_open(self, doc):
        return doc in self.open

    def size(self, doc):
        return W, H

    def title(self, doc, what):
        return f"{doc.name} ({what})"

    def check_supported(self, doc):
        return "U8"

    def read_snapshot(self, doc, input_source, mask_layer=None, sketch_layer=None, area_for=None):
        self.reads.append((input_source, mask_layer, sketch_layer))
        self.areas.append(area_for(None) if area_for is not None else None)  # what the rule says with nothing selected
        return RawRead(Snapshot(W, H, bytes(W * H * 4), PixelFormat.BGRA8, selection=self.selection))

    def write_placement(self, doc, placement, title="Paintwire result", resize_target="resize"):
        doc.layers.append((placement, title))
        return doc

    def where_placed(self, placement, size, resize_target):
        return "as a new document" if placement.new_document else "as new layer(s)"

    def show_preview(self, doc, preview):
        self.canvas.append(("show", doc, preview))

    def end_preview(self):
        self.canvas.append("end")

    def load_history(self, doc):
        return self.stored.get(doc.name)

    def save_history(self, doc, data):
        self.stored[doc.name] = data

    def layer_paths(self, doc):
        return list(self.paths)

    def current_layer_path(self, doc):
        return self.current

    def read_layers(self, doc, paths, area=None):
        self.layer_reads.append(list(paths))
        return RawLayers({p: bytes([i + 1]) * (W * H * 4) for i, p in enumerate(paths)})

    def load_controls(self, doc):
        return self.stored_controls.get(doc.name)

    def save_controls(self, doc, data):
        self.stored_controls[doc.name] = data


class RawLayers:
    """What document.read_layers returns: payload(path) converts one layer (in the worker thread)."""

    def __init__(self, pixels):
        self.pixels = pixels

    def payload(self, path, region=None):
        assert region in (None, Rect(0, 0, W, H))
        return ImagePayload(W, H, PixelFormat.BGRA8, self.pixels[path])


class RawRead:
    """What document.read_snapshot returns: the sizes now, the Snapshot from finish() (in the worker thread)."""

    def __init__(self, snapshot):
        self.snapshot, self.width, self.height = snapshot, snapshot.width, snapshot.height
        self.area = getattr(snapshot, "area", None)

    def finish(self):
        return self.snapshot


class Transport:
    def __init__(self):
        self.sent, self.cancels = [], 0

    def submit(self, number, request):
        # The worker builds a request handed over as a function in its own thread.
        self.sent.append((number, request() if callable(request) else request))

    def cancel(self):
        self.cancels += 1

    def preprocess(self, engine, control):
        self.preprocessed = getattr(self, "preprocessed", []) + [(engine, control())]


class View:
    def __init__(self):
        self.statuses, self.progress, self.previews, self.ended, self.refreshes = [], [], [], 0, 0

    def show_status(self, text, error=False):
        self.statuses.append((text, error))

    def show_progress(self, fraction):
        self.progress.append(fraction)

    def show_preview(self, event):
        self.previews.append(event)

    def job_ended(self):
        self.ended += 1

    def refresh(self):
        self.refreshes += 1

    def offer_recall(self, recall, summary):
        self.offers = getattr(self, "offers", []) + [(recall, summary)]

    def show_control_preview(self, image, caption):
        self.control_previews = getattr(self, "control_previews", []) + [(image, caption)]


@pytest.fixture
def rig():
    state = st.PanelState(st.PanelSettings(mode="inpaint"))
    docs, transport, view = Documents(), Transport(), View()
    saves = []
    controller = Controller(state, docs, transport, view, lambda: saves.append(1))
    controller.connected(CAPS, "paintwire/test")
    return controller, state, docs, transport, view, saves


def result_for(job="j1", size=(W, H), seed=None):
    image = ImagePayload(2, 2, PixelFormat.BGRA8, bytes(16))
    return Result(job, (Layer(image, 3, 1, "Inpaint (telea)", seed),), *size)


def test_connecting_lists_the_servers_modes_including_one_no_plugin_names(rig):
    controller, state, docs, transport, view, saves = rig
    assert [m.name for m in state.modes()] == ["inpaint", "upscale", "posterize"]
    assert "Modes: Inpaint, Upscale, Posterize." in view.statuses[-1][0]


def test_a_job_runs_from_generate_to_layers_in_its_own_document(rig):
    controller, state, docs, transport, view, saves = rig
    docs.selection = bytes([255] * (W * H))
    assert controller.generate(mask_layer=None, sketch_layer="Strokes")
    ((number, request),) = transport.sent
    assert (request.engine, request.mode, request.output_format) == ("classical", "inpaint", OUTPUT_FORMAT)
    assert request.mask is not None and docs.reads == [("visible", None, "Strokes")] and saves
    assert view.progress == [None] and state.busy
    doc = docs.active
    docs.active = FakeDoc("other.kra")  # the artist switches documents while the job runs
    docs.open.append(docs.active)
    controller.on_event(number, Queued("j1", 1, 2))
    controller.on_event(number, Started("j1"))
    controller.on_event(number, Progress("j1", 1, 4, "inpainting"))
    controller.on_event(number, Preview("j1", ImagePayload(1, 1, PixelFormat.RGBA8, bytes(4))))
    assert state.ticket.job_id == "j1" and view.progress[-1] == 0.25 and len(view.previews) == 1
    assert [t for t, _ in view.statuses[-3:]] == ["Waiting: 2 job(s) ahead.", "Working \u2026", "Inpainting: step 1 of 4"]
    controller.on_done(number, result_for())
    ((placement, title),) = doc.layers  # written where the job came from
    assert docs.active.layers == [] and title == "photo.kra (Inpaint)"
    assert placement.kind is PlacementKind.LAYERS and not placement.new_document
    assert not state.busy and view.ended == 1 and view.statuses[-1][0].startswith("Done: Inpaint (telea)")
    assert state.history[0].job_id == "j1" and state.history[0].summary.startswith("Inpaint")
    # The preview showed on the canvas of the job's document, and left it before the result was written.
    assert [c if c == "end" else (c[0], c[1]) for c in docs.canvas] == [("show", doc), "end"]
    # The history went into that document (it is saved in its .kra) and follows the active document.
    assert st.history_from_bytes(docs.stored["photo.kra"])[0][0].job_id == "j1" and "other.kra" not in docs.stored
    controller.document_changed(docs.active)
    assert len(state.history) == 0
    controller.document_changed(doc)
    assert state.history[0].job_id == "j1"


def test_events_of_an_older_job_are_ignored(rig):
    controller, state, docs, transport, view, saves = rig
    controller.generate()
    ((number, _),) = transport.sent
    controller.on_done(number + 1, result_for())
    assert state.busy and docs.active.layers == []


def test_cancel_failure_and_a_lost_server_end_the_job_without_writing(rig):
    controller, state, docs, transport, view, saves = rig
    controller.generate()
    controller.cancel()
    assert transport.cancels == 1 and view.statuses[-1][0] == "Cancelling \u2026"
    controller.on_cancelled(transport.sent[-1][0])
    assert not state.busy and view.statuses[-1][0] == "Cancelled; the document was not changed."
    assert docs.canvas[-1] == "end"  # a cancelled job's preview leaves the canvas too
    controller.generate()
    controller.on_failed(transport.sent[-1][0], "radius must be at most 64")
    assert view.statuses[-1] == ("Failed: radius must be at most 64", True)
    controller.generate()
    controller.disconnected("The server at ws://x closed the connection.")
    assert not state.busy and not state.connected and view.statuses[-1] == ("Not connected: The server at ws://x closed the connection.", True)
    assert docs.active.layers == []


def test_what_the_artist_can_fix_is_said_as_it_is(rig):
    controller, state, docs, transport, view, saves = rig
    docs.active = None
    assert not controller.generate()
    assert view.statuses[-1] == ("Open or create a document first.", True) and transport.sent == []


def test_a_result_for_a_closed_document_is_kept_in_the_history(rig):
    controller, state, docs, transport, view, saves = rig
    controller.generate()
    docs.open.clear()
    controller.on_done(transport.sent[-1][0], result_for())
    assert view.statuses[-1] == ("The result could not be added: The document of this job was closed; the result is kept in the history.", True)
    assert len(state.history) == 1
    docs.open.append(docs.active)
    controller.apply_history(0)
    assert view.statuses[-1][0] == "Added the result again." and docs.active.layers[0][1] == "photo.kra (history)"


def test_the_server_only_mode_runs_through_the_controller(rig):
    controller, state, docs, transport, view, saves = rig
    state.set_mode("posterize")
    state.set_value("levels", 3)
    assert controller.generate()
    (_, request), = transport.sent
    assert (request.engine, request.mode, dict(request.params), request.model) == ("extras", "posterize", {"levels": 3}, None)


def test_use_settings_puts_the_seed_back(rig):
    controller, state, docs, transport, view, saves = rig
    controller.generate()
    controller.on_done(transport.sent[-1][0], result_for(seed=5))
    state.set_mode("upscale")
    controller.rerun_history(0)
    assert state.settings.mode == "inpaint" and view.statuses[-1][0].startswith("Settings restored")


def test_the_status_line_names_the_servers_device(rig):
    import dataclasses

    from paintwire.protocol import DeviceInfo

    controller, state, docs, transport, view, saves = rig
    gpu = DeviceInfo("NVIDIA GeForce RTX 3060", "cuda", "bf16", 12 << 30, 10 << 30)
    caps = dataclasses.replace(CAPS, engines=(dataclasses.replace(CAPS.engines[0], device=gpu),) + CAPS.engines[1:])
    controller.connected(caps, "paintwire/0.1.0")
    assert view.statuses[-1][0].endswith("Device: NVIDIA GeForce RTX 3060, bf16, 10.0 of 12.0 GiB free.")


def test_an_engine_that_was_starting_brings_its_modes_when_the_server_says_it_is_ready():
    import dataclasses

    from paintwire.protocol import EngineStatus

    state = st.PanelState(st.PanelSettings(mode="inpaint"))
    view = View()
    controller = Controller(state, Documents(), Transport(), view, lambda: None)
    extras = CAPS.engines[1]
    starting = dataclasses.replace(extras, modes=(), notice=f"The {extras.name} engine is starting.", status=EngineStatus.STARTING)
    controller.connected(dataclasses.replace(CAPS, engines=(CAPS.engines[0], starting)), "paintwire/test")
    assert "posterize" not in [m.name for m in state.modes()] and "is starting" in view.statuses[-1][0]
    refreshes = view.refreshes
    controller.capabilities_changed(CAPS)
    assert "posterize" in [m.name for m in state.modes()] and view.refreshes == refreshes + 1
    assert view.statuses[-1][0].startswith(f"{extras.label} ready. Modes: ") and "Posterize" in view.statuses[-1][0]


def test_the_document_module_provides_all_the_controller_asks_of_documents():
    """document.py (which needs Krita) is the controller's Documents: every method the
    protocol names is a function or class of that module."""
    import ast

    plugin = Path(__file__).resolve().parents[2] / "plugins" / "krita" / "paintwire_krita"
    defined = {n.name for n in ast.parse((plugin / "document.py").read_text(encoding="utf-8")).body
               if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    protocol = next(n for n in ast.parse((plugin / "controller.py").read_text(encoding="utf-8")).body
                    if isinstance(n, ast.ClassDef) and n.name == "Documents")
    wanted = {n.name for n in protocol.body if isinstance(n, ast.FunctionDef)} | {"DocumentError"}
    assert wanted <= defined, sorted(wanted - defined)


def _png_with(settings) -> bytes:
    import io

    from PIL import Image

    from paintwire.protocol.metadata import png_text
    from paintwire.protocol.pngtext import add_text

    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG")
    return add_text(buf.getvalue(), png_text(settings))


def test_a_pushed_recall_is_offered_then_applied_on_request(rig):
    from paintwire.protocol import Recall

    controller, state, docs, transport, view, saves = rig
    recall = Recall(5, {"engine": "classical", "mode": "upscale", "params": {"scale": 3.0, "prompt": "x"}}, "/api/history/5/image", 4, 4)
    controller.recall_received(recall)
    assert view.offers == [(recall, "Upscale \u00b7 \u201cx\u201d")] and state.settings.mode == "inpaint"  # offered, not applied
    assert controller.apply_recall(recall)
    assert state.settings.mode == "upscale" and state.value("scale") == 3.0 and saves
    text, error = view.statuses[-1]
    assert not error and "history result 5" in text and "prompt" in text  # the parameter Upscale lacks is named
    assert controller.generate()
    number, request = transport.sent[-1]
    assert request.mode == "upscale" and request.params["scale"] == 3.0 and request.parent == 5  # the history links the two


def test_use_settings_from_an_image(rig):
    controller, state, docs, transport, view, saves = rig
    assert controller.use_image_settings(_png_with({"engine": "classical", "mode": "inpaint", "params": {"method": "ns", "mask_blur": 12}}))
    assert state.value("method") == "ns" and state.value("mask_blur") == 12
    assert "Paintwire's metadata" in view.statuses[-1][0]
    assert not controller.use_image_settings(_png_with({}).replace(b"paintwire", b"other-key"))
    assert not controller.use_image_settings(b"not a png")
    assert view.statuses[-1][1] is True


def test_the_recalled_image_opens_as_a_layer(rig):
    from paintwire.hostkit.recall import recalled_result
    from paintwire.protocol import Recall

    controller, state, docs, transport, view, saves = rig
    recall = Recall(9, {"params": {"prompt": "a fox", "seed": 4}}, "/api/history/9/image", 4, 3)
    controller.open_recalled(recalled_result(recall, 4, 3, bytes(4 * 3 * 4), PixelFormat.BGRA8))
    placement, title = docs.active.layers[-1]
    assert placement.layers[0].name == "a fox [seed 4]" and not placement.new_document  # smaller: a layer of this document
    assert (placement.layers[0].x, placement.layers[0].y, placement.width, placement.height) == (0, 0, W, H)
    controller.open_recalled(recalled_result(recall, W * 2, H, bytes(W * 2 * H * 4), PixelFormat.BGRA8))
    assert docs.active.layers[-1][0].new_document  # larger than the document: one of its own


# --- control layers ---------------------------------------------------------------------------

from paintwire.protocol import EngineInfo as _EngineInfo, InputKind, InputSpec, ModeSpec  # noqa: E402
from paintwire.protocol.controls import ControlKindSpec  # noqa: E402

LINEART = ControlKindSpec("lineart", "Line art", "Clean lines.", ("lineart", "none"))
DEPTH = ControlKindSpec("depth", "Depth", "A depth map.", ("none",))
GUIDED = _EngineInfo("guided", "Guided", (
    ModeSpec("refine", "Refine", "", inputs=(InputSpec(InputKind.IMAGE), InputSpec(InputKind.CONTROL, required=False))),
    ModeSpec("touchup", "Touch up", "", inputs=(InputSpec(InputKind.IMAGE),)),
), controls=(LINEART, DEPTH))
GUIDED_CAPS = Capabilities((GUIDED,), (), Limits(1 << 26, 1 << 24, 4096, 4))


@pytest.fixture
def guided(rig):
    controller, state, docs, transport, view, saves = rig
    controller.connected(GUIDED_CAPS, "paintwire/test")
    controller.document_changed(docs.active)
    state.set_mode("refine")
    return rig


def test_the_current_layer_becomes_a_control_saved_in_its_document(guided):
    controller, state, docs, transport, view, saves = guided
    controller.add_control()
    docs.current = "Strokes"
    controller.add_control()
    assert [(c.layer, c.kind) for c in state.controls] == [("Lines", "lineart"), ("Strokes", "lineart")]
    controller.change_control(1, kind="depth", strength=0.5)
    controller.remove_control(0)
    assert [(c.layer, c.kind, c.strength) for c in state.controls] == [("Strokes", "depth", 0.5)]
    # Saved in the document; another document has its own list; back again, it is restored.
    assert [c.layer for c in st.controls_from_bytes(docs.stored_controls["photo.kra"])] == ["Strokes"]
    other = FakeDoc("other.kra")
    docs.open.append(other)
    controller.document_changed(other)
    assert state.controls == []
    controller.document_changed(docs.active)
    assert [c.layer for c in state.controls] == ["Strokes"]
    docs.current = None
    controller.add_control()
    assert view.statuses[-1] == ("Select a paint layer to use as a control layer.", True)


def test_generate_sends_the_control_layers_read_at_the_jobs_geometry(guided):
    controller, state, docs, transport, view, saves = guided
    controller.add_control()
    controller.change_control(0, strength=0.6, end=0.5)
    assert controller.generate()
    assert docs.layer_reads == [["Lines"]]
    (number, request), = transport.sent
    (control,) = request.controls
    assert (control.kind, control.strength, control.start, control.end, control.preprocessor) == ("lineart", 0.6, 0.0, 0.5, "lineart")
    assert (control.image.width, control.image.height, control.image.format) == (request.image.width, request.image.height, PixelFormat.BGRA8)
    assert control.image.data == bytes([1]) * (W * H * 4)


def test_a_mode_without_a_control_input_keeps_the_list_but_sends_none(guided):
    controller, state, docs, transport, view, saves = guided
    controller.add_control()
    state.set_mode("touchup")
    assert not state.takes_controls()
    assert controller.generate()
    assert transport.sent[-1][1].controls == () and docs.layer_reads == []
    assert len(state.controls) == 1


def test_a_control_that_cannot_go_stops_generate_with_its_reason(guided):
    controller, state, docs, transport, view, saves = guided
    controller.add_control()
    docs.paths.remove("Lines")
    assert not controller.generate()
    assert transport.sent == []
    assert view.statuses[-1] == ("Control layer 1 (Lines): The control layer 'Lines' is gone; choose another layer or remove the control.", True)


def test_the_preview_asks_the_server_and_shows_its_answer_in_the_docker(guided):
    controller, state, docs, transport, view, saves = guided
    controller.add_control()
    controller.preview_control(0)
    ((engine, control),) = transport.preprocessed
    assert engine == "guided" and control.kind == "lineart" and control.preprocessor == "lineart"
    controller.on_preprocessed("image")
    assert view.control_previews[-1] == ("image", "Lines: Line art, lineart")
    controller.on_preprocess_failed("No lineart ControlNet.")
    assert view.control_previews[-1] == (None, "") and view.statuses[-1] == ("Failed: No lineart ControlNet.", True)
    state.ticket = object()  # a job in flight: the preview waits
    controller.preview_control(0)
    assert len(transport.preprocessed) == 1 and "between jobs" in view.statuses[-1][0]
