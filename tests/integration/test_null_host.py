"""A third host with no widgets: hostkit's in-memory document driven by hostkit's job
flow through the real server and the real client. It needs nothing but an adapter
(hostkit.memory_document), which is the claim of docs/new-host.md: Generate, an
inpaint of a selection, Expand and a control layer run here as they run in Krita
and GIMP, from the same code."""

from __future__ import annotations

import numpy as np
import pytest
from diffusion_fixtures import hf_cache_dir, picture, start_with_cache, tiny_models_dir  # noqa: F401

from fixtures import control_models as cm
from fixtures.tiny_models import SD15, SDXL
from paintwire.hostkit import job_flow
from paintwire.hostkit.controls import ControlLayer
from paintwire.hostkit.memory_document import MemoryDocument
from paintwire.hostkit.request import JobSettings
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import Client, PlacementKind
from paintwire.protocol.rect import Rect

W = H = 64
FAST = {"steps": 2, "seed": 7, "prompt": "a red apple"}


@pytest.fixture(scope="module")
def control_dir(tmp_path_factory, tiny_models_dir):  # noqa: F811
    checkpoints = tiny_models_dir / "checkpoints"
    return cm.build_control_folder(tmp_path_factory.mktemp("controls"), checkpoints / SD15, checkpoints / SDXL)


@pytest.fixture(scope="module")
def server(tiny_models_dir, control_dir, hf_cache_dir):  # noqa: F811
    server = start_with_cache(hf_cache_dir, model_dirs=[str(tiny_models_dir / "checkpoints" / SD15), str(control_dir)],
                              engines=["classical", "diffusers"], previews_per_second=50.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, name="null-host", timeout=120) as c:
        yield c


class Sink:
    """What a host's status line and progress bar would show."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.fractions: list[float] = []
        self.previews = 0

    def status(self, text: str) -> None:
        self.texts.append(text)

    def fraction(self, value: float) -> None:
        self.fractions.append(value)

    def preview(self, event) -> None:
        self.previews += 1


def document() -> MemoryDocument:
    doc = MemoryDocument(W, H)
    doc.add_paint_layer("Background", picture(W, H))
    return doc


def run(client, doc, mode, engine="diffusers", model=SD15, controls=(), source=InputSource.VISIBLE, **params) -> job_flow.Finished:
    """What every host does for one job: plan it against the server's capabilities, then run it on the document."""
    settings = JobSettings(mode, engine, model if engine == "diffusers" else None, params)
    plan = job_flow.plan_job(client.capabilities, settings, controls, doc.layer_names())
    return job_flow.run_job(doc, client, plan, source, Sink(), timeout=120)


def test_generate_adds_a_layer_the_size_of_the_canvas_named_after_prompt_and_seed(client):
    doc = document()
    sink = Sink()
    settings = JobSettings("txt2img", "diffusers", SD15, FAST)
    plan = job_flow.plan_job(client.capabilities, settings)
    done = job_flow.run_job(doc, client, plan, sink=sink, timeout=120)
    assert done.request.image is None and (done.request.params["width"], done.request.params["height"]) == (W, H)
    assert doc.layer_names() == ["a red apple [seed 7]", "Background"]
    added = doc.find("a red apple [seed 7]")
    assert (added.x, added.y, added.pixels.shape) == (0, 0, (H, W, 4))
    assert sink.texts[0] == "Sending the job \u2026" and sink.fractions and sink.fractions[-1] <= 1.0
    assert done.entry.seeds == (7,) and done.entry.layer_names == ("a red apple [seed 7]",)
    assert doc.log[-2:] == ["end_preview", "write"]  # the preview went before anything was written
    doc.undo()
    assert doc.layer_names() == ["Background"]


def test_an_inpaint_changes_the_selection_and_leaves_every_other_pixel(client):
    doc = document()
    selection = Rect(20, 16, 18, 14)
    doc.select_rect(selection)
    before = doc.visible()
    done = run(client, doc, "inpaint", engine="classical", method="telea", mask_blur=0, padding=4)
    after = doc.visible()
    outside = np.ones((H, W), bool)
    outside[selection.slices] = False
    assert np.array_equal(after[outside], before[outside])
    assert not np.array_equal(after[selection.slices], before[selection.slices])
    # Only the part of the canvas the mode reads went to the server.
    assert done.request.crop is not None and done.request.image.width < W
    assert doc.undo_steps == 1 and doc.size() == (W, H)


def test_a_diffusers_inpaint_keeps_the_pixels_outside_the_selection(client):
    doc = document()
    selection = Rect(16, 20, 28, 24)
    doc.select_rect(selection)
    before = doc.visible()
    run(client, doc, "inpaint", mask_blur=0, strength=1.0, **FAST)
    after = doc.visible()
    outside = np.ones((H, W), bool)
    outside[selection.slices] = False
    assert np.array_equal(after[outside], before[outside])
    assert not np.array_equal(after[selection.slices], before[selection.slices])


def test_expand_grows_the_canvas_in_place_in_one_undo_step(client):
    doc = document()
    original = doc.find("Background").pixels.copy()
    done = run(client, doc, "outpaint", left=16, **FAST)
    assert done.placement.kind is PlacementKind.GROW and doc.size() == (W + 16, H)
    background = doc.find("Background")
    assert (background.x, background.y) == (16, 0) and np.array_equal(background.pixels, original)
    assert len(doc.layer_names()) == 2 and doc.visible()[:, :16, 3].min() == 255  # the new strip is painted
    doc.undo()
    assert doc.size() == (W, H) and doc.layer_names() == ["Background"] and doc.find("Background").x == 0


def lines() -> np.ndarray:
    layer = np.zeros((H, W, 4), np.uint8)
    layer[10:14, 8:56] = (0, 0, 0, 255)
    layer[10:54, 30:34] = (0, 0, 0, 255)
    return layer


def test_a_control_layer_goes_with_the_job_and_guides_it(client):
    plain = document()
    run(client, plain, "txt2img", **FAST)
    doc = document()
    doc.add_paint_layer("Lines", lines(), visible=False)  # control layers are usually hidden
    done = run(client, doc, "txt2img", controls=[ControlLayer("Lines", "canny")], **FAST)
    (control,) = done.request.controls
    assert (control.kind, control.image.width, control.image.height) == ("canny", W, H)
    assert np.array_equal(np.frombuffer(control.image.data, np.uint8).reshape(H, W, 4), lines())
    guided, unguided = doc.find("a red apple [seed 7]").pixels, plain.find("a red apple [seed 7]").pixels
    assert not np.array_equal(guided, unguided)
    assert np.array_equal(doc.find("Lines").pixels, lines())  # the control layer stays as it was


def test_a_job_that_cannot_go_says_why_before_anything_is_sent(client):
    doc = document()
    settings = JobSettings("txt2img", "diffusers", SD15, FAST)
    with pytest.raises(job_flow.JobNotReady, match="'Gone' is gone"):
        job_flow.plan_job(client.capabilities, settings, [ControlLayer("Gone", "canny")], doc.layer_names())
    with pytest.raises(job_flow.JobNotReady, match="Inpaint takes no control layers"):
        job_flow.plan_job(client.capabilities, JobSettings("inpaint", "classical", None), [ControlLayer("Background", "canny")],
                          doc.layer_names(), strict=True)
    # A server refusal is an outcome; the document is left as it was.
    plan = job_flow.plan_job(client.capabilities, JobSettings("img2img", "diffusers", "no-such-model", FAST))
    with pytest.raises(job_flow.JobError) as info:
        job_flow.run_job(doc, client, plan, timeout=120)
    assert isinstance(info.value.outcome, job_flow.Failed) and info.value.outcome.field == "job.model"
    assert doc.layer_names() == ["Background"] and doc.undo_steps == 0 and "write" not in doc.log
