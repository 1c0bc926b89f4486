"""hostkit's one writing rule (document.write_placement) and the job flow's own steps,
on the in-memory document: no server, no host."""

from __future__ import annotations

import numpy as np
import pytest

from paintwire.hostkit import job_flow
from paintwire.hostkit.document import WriteError, lands_in, where_placed, write_placement
from paintwire.hostkit.memory_document import MemoryDocument
from paintwire.hostkit.placement import PlacedLayer, Placement
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import PixelFormat, PlacementKind, Preview, Progress, Queued, raw_image
from paintwire.protocol.rect import Rect

W, H = 8, 6


def solid(width: int, height: int, rgba) -> np.ndarray:
    return np.tile(np.array(rgba, np.uint8), (height, width, 1))


def layer(name: str, x: int, y: int, w: int, h: int, rgba=(200, 10, 10, 255), fmt=PixelFormat.RGBA8) -> PlacedLayer:
    return PlacedLayer(name, x, y, w, h, solid(w, h, rgba).tobytes(), fmt, None)


def placement(*layers: PlacedLayer, width=W, height=H, group=None, kind=PlacementKind.LAYERS, offset=(0, 0)) -> Placement:
    return Placement(width, height, (width, height) != (W, H), group, layers, kind, *offset)


def document() -> MemoryDocument:
    doc = MemoryDocument(W, H)
    doc.add_paint_layer("Background", solid(W, H, (0, 0, 255, 255)))
    return doc


def test_layers_go_on_top_in_one_undo_step_and_a_group_holds_several():
    doc = document()
    written = write_placement(doc, placement(layer("a", 1, 1, 2, 2), layer("b", 3, 2, 2, 2), group="two"))
    assert doc.layer_names() == ["two", "b", "a", "Background"]  # top first: the last layer is on top of its group
    assert written.top is written.group and not written.new_document and doc.undo_steps == 1
    assert doc.visible()[1, 1].tolist() == [200, 10, 10, 255] and doc.visible()[0, 0].tolist() == [0, 0, 255, 255]
    doc.undo()
    assert doc.layer_names() == ["Background"]


def test_a_grown_canvas_keeps_the_layers_pixels_at_the_offset():
    doc = document()
    write_placement(doc, placement(layer("left", 0, 0, 3, H), width=W + 3, kind=PlacementKind.GROW, offset=(3, 0)))
    assert doc.size() == (W + 3, H) and doc.find("Background").x == 3
    assert doc.visible()[0, 3].tolist() == [0, 0, 255, 255] and doc.visible()[0, 0].tolist() == [200, 10, 10, 255]


def test_another_size_opens_a_new_document_unless_the_artist_resizes_in_place():
    doc = document()
    up = placement(layer("up", 0, 0, 2 * W, 2 * H), width=2 * W, height=2 * H, kind=PlacementKind.RESIZE)
    assert lands_in(up, doc.size(), False) is PlacementKind.NEW_DOCUMENT and where_placed(up, doc.size(), True) == "to the resized document"
    written = write_placement(doc, up)
    assert written.new_document and doc.opened == [written.canvas] and doc.layer_names() == ["Background"]
    write_placement(doc, up, resize_in_place=True)
    assert doc.size() == (2 * W, 2 * H) and doc.find("Background").pixels.shape == (2 * H, 2 * W, 4)
    assert doc.layer_names() == ["up", "Background"]


def test_a_wrong_format_writes_nothing_and_a_failure_half_way_takes_back_what_was_added():
    doc = document()
    with pytest.raises(WriteError, match="bgra8"):
        write_placement(doc, placement(layer("a", 0, 0, 2, 2), layer("b", 0, 0, 2, 2, fmt=PixelFormat.BGRA8), group="g"))
    assert doc.layer_names() == ["Background"] and doc.undo_steps == 0
    broken = PlacedLayer("short", 0, 0, 2, 2, b"\x00" * 3, PixelFormat.RGBA8, None)  # too few bytes: fails when added
    with pytest.raises(ValueError):
        write_placement(doc, placement(layer("a", 0, 0, 2, 2), broken, group="g"))
    assert doc.layer_names() == ["Background"]


def test_the_snapshot_is_read_where_asked_with_the_selection_and_the_layers_own_pixels():
    doc = document()
    doc.add_paint_layer("Top", solid(2, 2, (9, 9, 9, 255)), x=4, y=3)
    doc.select_rect(Rect(4, 3, 2, 2))
    assert doc.selection_bounds() == Rect(2, 1, 6, 5)  # a margin of 2 for a soft edge, inside the canvas
    snap = doc.snapshot(InputSource.LAYER, Rect(3, 2, 4, 3))
    assert snap.box == Rect(3, 2, 4, 3) and snap.selection.count(255) == 4
    pixels = np.frombuffer(snap.pixels, np.uint8).reshape(3, 4, 4)
    assert pixels[0, 0].tolist() == [0, 0, 0, 0] and pixels[1, 1].tolist() == [9, 9, 9, 255]  # the active layer alone
    visible = np.frombuffer(doc.snapshot(InputSource.VISIBLE).pixels, np.uint8).reshape(H, W, 4)
    assert visible[0, 0].tolist() == [0, 0, 255, 255] and visible[3, 4].tolist() == [9, 9, 9, 255]


class Sink:
    def __init__(self):
        self.seen = []

    def status(self, text):
        self.seen.append(("status", text))

    def fraction(self, value):
        self.seen.append(("fraction", value))

    def preview(self, event):
        self.seen.append(("preview", type(event).__name__))


def test_report_sends_status_progress_and_previews_where_they_show():
    sink = Sink()
    job_flow.report(Queued("j", 0, 1), sink)
    job_flow.report(Progress("j", 1, 4, "denoising"), sink)
    job_flow.report(Preview("j", raw_image(1, 1, PixelFormat.RGBA8, bytes(4)), 0, 0, 1, 1), sink)
    assert sink.seen[0] == ("status", "Waiting: 1 job(s) ahead.")
    assert ("fraction", Progress("j", 1, 4, "denoising").overall) in sink.seen and sink.seen[-1] == ("preview", "Preview")


# --- planning a job against a server's capabilities -----------------------------------------

from paintwire.hostkit.controls import ControlLayer  # noqa: E402
from paintwire.hostkit.request import JobSettings  # noqa: E402
from paintwire.protocol import Capabilities, EngineInfo, Limits  # noqa: E402
from paintwire.server.engines.classical import ClassicalEngine  # noqa: E402

CLASSICAL = ClassicalEngine()
CAPS = Capabilities((EngineInfo(CLASSICAL.name, CLASSICAL.label, CLASSICAL.modes()),), CLASSICAL.models(), Limits(1 << 26, 1 << 24, 4096, 4))


def test_a_plan_reads_only_around_the_selection_and_says_why_it_cannot_go():
    plan = job_flow.plan_job(CAPS, JobSettings("inpaint", "classical", None, {"padding": 4}))
    assert plan.reads_document and plan.controls == ()
    assert plan.area((400, 300), None) is None  # nothing selected: the whole canvas
    area = plan.area((400, 300), Rect(100, 100, 20, 20))
    assert area is not None and area.contains(Rect(100, 100, 20, 20)) and area.width < 400
    # A mode without a control input takes none from the panel, but a script's are an error.
    lines = [ControlLayer("Lines", "canny")]
    assert job_flow.plan_job(CAPS, JobSettings("inpaint", "classical"), lines, ["Lines"]).controls == ()
    with pytest.raises(job_flow.JobNotReady, match="takes no control layers"):
        job_flow.plan_job(CAPS, JobSettings("inpaint", "classical"), lines, ["Lines"], strict=True)
    with pytest.raises(job_flow.JobNotReady, match="Connect to a server that offers this mode"):
        job_flow.plan_job(CAPS, JobSettings("txt2img", "classical"))
