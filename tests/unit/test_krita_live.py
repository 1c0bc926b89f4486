"""Live painting on the client's side: the shared rules (hostkit/live.py) and the
Krita docker's live stream (plugins/krita/paintwire_krita/live.py) without Krita
and without Qt, driven as the docker drives it: the timer's ticks, the worker's
live events, the Live and Apply buttons."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))

from paintwire_krita import state as st  # noqa: E402
from paintwire_krita.live import LIVE_STREAM, LiveController  # noqa: E402

from paintwire.hostkit.live import MAX_UNANSWERED, READ_BYTES_PER_TICK, LiveSession, RegionReader, live_region  # noqa: E402
from paintwire.hostkit.request import JobSettings  # noqa: E402
from paintwire.protocol import Capabilities, EngineInfo, ErrorCode, ImagePayload, Limits, ModeSpec, PixelFormat, ProtocolError, Rect  # noqa: E402
from paintwire.protocol.live import LiveApply, LiveError, LiveFrame, LiveStart, LiveStarted, LiveState, LiveStop, LiveStopped  # noqa: E402
from paintwire.server.engines.classical import ClassicalEngine  # noqa: E402

from fixtures.server_only_engine import MODE_NAME, POSTERIZE  # noqa: E402

CLASSICAL = ClassicalEngine()
CAPS = Capabilities(
    (EngineInfo(CLASSICAL.name, CLASSICAL.label, CLASSICAL.modes()), EngineInfo("extras", "Extras", (POSTERIZE,))),
    CLASSICAL.models(), Limits(1 << 26, 1 << 24, 4096, 4),
)


# --- hostkit.live ------------------------------------------------------------------------------


def test_the_region_is_the_selection_inside_the_canvas_or_the_whole_canvas():
    assert live_region(100, 80, None) == Rect(0, 0, 100, 80)
    assert live_region(100, 80, Rect(10, 20, 30, 40)) == Rect(10, 20, 30, 40)
    assert live_region(100, 80, Rect(-5, 70, 30, 40)) == Rect(0, 70, 25, 10)
    assert live_region(100, 80, Rect(200, 0, 5, 5)) == Rect(0, 0, 100, 80)  # outside: the canvas


def test_a_region_is_read_in_bands_of_at_most_the_budget():
    region = Rect(3, 5, 2048, 2048)
    reader = RegionReader(region)
    rows = []
    while (band := reader.next_band()) is not None:
        x, y, w, h = band
        assert (x, w) == (3, 2048) and w * h * 4 <= READ_BYTES_PER_TICK
        rows.append((y, h))
        reader.add(bytes([len(rows) % 256]) * (w * h * 4))
    assert reader.done and rows[0][0] == 5 and sum(h for _, h in rows) == 2048 and len(rows) == 16
    assert len(reader.pixels) == 2048 * 2048 * 4
    with pytest.raises(ValueError):
        RegionReader(Rect(0, 0, 4, 4)).add(b"short")


def session(mode="img", params=None) -> LiveSession:
    settings = JobSettings(MODE_NAME if mode == "img" else "inpaint", "extras" if mode == "img" else "classical", None, params or {"levels": 4})
    return LiveSession.open(LIVE_STREAM, CAPS, settings, PixelFormat.BGRA8)


def test_a_state_goes_only_when_pixels_or_parameters_changed():
    s = session()
    region, pixels = Rect(1, 2, 2, 2), bytes(16)
    first = s.state(pixels, PixelFormat.BGRA8, region, None, {"levels": 4})
    assert isinstance(first, LiveState) and (first.seq, first.x, first.y, dict(first.params), first.mask) == (1, 1, 2, {}, None)
    assert s.state(pixels, PixelFormat.BGRA8, region, None, {"levels": 4}) is None
    changed = s.state(bytes([9]) * 16, PixelFormat.BGRA8, region, None, {"levels": 4})
    assert changed is not None and changed.seq == 2
    param = s.state(bytes([9]) * 16, PixelFormat.BGRA8, region, None, {"levels": 6})
    assert param is not None and dict(param.params) == {"levels": 6}, "a changed parameter is sent, and only it"
    assert s.state(bytes([9]) * 16, PixelFormat.BGRA8, region, None, {"levels": 6}) is None


def test_a_mode_with_a_mask_sends_the_selection_or_everything():
    s = session("inpaint", {"method": "telea"})
    region = Rect(0, 0, 2, 2)
    whole = s.state(bytes(16), PixelFormat.BGRA8, region, None, {})
    assert whole.mask.data == b"\xff" * 4
    picked = s.state(bytes(16), PixelFormat.BGRA8, region, b"\x00\xff\x00\xff", {})
    assert picked is not None and picked.mask.data == b"\x00\xff\x00\xff", "a new selection is a change"


def test_frames_are_shown_newest_only_and_unanswered_states_are_bounded():
    s = session()
    for i in range(MAX_UNANSWERED):
        assert s.wants_state()
        s.state(bytes([i]) * 16, PixelFormat.BGRA8, Rect(0, 0, 2, 2), None, {})
    assert not s.wants_state()
    image = ImagePayload(2, 2, PixelFormat.BGRA8, bytes(16))
    assert s.accept(LiveFrame(LIVE_STREAM, 2, image, 0, 0, 1, 7))
    assert s.wants_state() and s.seed == 7
    assert not s.accept(LiveFrame(LIVE_STREAM, 1, image, 0, 0)), "an older frame is never shown after a newer one"


def test_a_mode_that_reads_no_picture_cannot_stream():
    caps = Capabilities((EngineInfo("gen", "Gen", (ModeSpec("make", "Make", "From the prompt alone.", inputs=()),)),), (), CAPS.limits)
    with pytest.raises(ProtocolError) as caught:
        LiveSession.open(1, caps, JobSettings("make", "gen"), PixelFormat.BGRA8)
    assert caught.value.code is ErrorCode.UNKNOWN_MODE and "reads the canvas" in caught.value.message


# --- the Krita docker's live stream ----------------------------------------------------------------


class DocumentError(Exception):
    pass


class Doc:
    def __init__(self, width=2048, height=2048):
        self.width, self.height = width, height
        self.pixels = bytearray(width * height * 4)
        self.selection = None
        self.layers = []  # (name, x, y, w, h)
        self.live = None  # the live layer's last frame: (x, y, w, h)


class Documents:
    """Stands in for document.py's live functions, on a Doc."""

    DocumentError = DocumentError

    def __init__(self, doc):
        self.doc, self.reads, self.ended = doc, [], 0

    def active_document(self):
        return self.doc

    def is_open(self, doc):
        return doc is self.doc

    def live_source(self, doc, previous=None):
        return "layer"

    def layer_name(self, node):
        return "Paint"

    def selection_bounds(self, doc):
        return doc.selection

    def size(self, doc):
        return doc.width, doc.height

    def read_band(self, node, x, y, w, h):
        self.reads.append((x, y, w, h))
        rows = [bytes(self.doc.pixels[((y + r) * self.doc.width + x) * 4 : ((y + r) * self.doc.width + x + w) * 4]) for r in range(h)]
        return b"".join(rows)

    def read_selection(self, doc, x, y, w, h):
        return None

    def show_live_frame(self, doc, bgra, x, y, w, h):
        doc.live = (x, y, w, h)

    def repaint_live(self):
        pass

    def end_live(self):
        self.ended += 1
        self.doc.live = None

    def add_frame_layer(self, doc, name, bgra, x, y, w, h):
        doc.layers.append((name, x, y, w, h))


class Transport:
    """The worker: runs each build as its thread would, and keeps what it would send."""

    def __init__(self):
        self.sent = []

    def live(self, build):
        message = build()
        if message is not None:
            self.sent.append(message)


class View:
    def __init__(self):
        self.statuses, self.on = [], []

    def show_status(self, text, error=False):
        self.statuses.append((text, error))

    def live_changed(self, on):
        self.on.append(on)


@pytest.fixture
def rig():
    state = st.PanelState(st.PanelSettings(mode=MODE_NAME))
    state.set_capabilities(CAPS, "paintwire/test")
    state.set_choice("extras/")
    doc = Doc()
    docs, transport, view = Documents(doc), Transport(), View()
    return LiveController(state, docs, transport, view), state, doc, docs, transport, view


def ticks_until_sent(live, transport, limit=100) -> LiveState:
    before = len(transport.sent)
    for _ in range(limit):
        live.tick()
        if len(transport.sent) > before:
            return transport.sent[-1]
    raise AssertionError("no state was sent")


def frame_for(state: LiveState, seed=5) -> LiveFrame:
    return LiveFrame(state.stream, state.seq, ImagePayload(state.image.width, state.image.height, PixelFormat.BGRA8, state.image.data),
                     state.x, state.y, 0, seed)


def test_live_reads_a_big_canvas_in_bounded_bands_and_sends_only_changes(rig):
    live, state, doc, docs, transport, view = rig
    assert live.toggle(True) and isinstance(transport.sent[0], LiveStart) and view.on[-1] is True
    first = ticks_until_sent(live, transport)
    assert (first.image.width, first.image.height, first.seq) == (2048, 2048, 1)
    assert max(w * h * 4 for _, _, w, h in docs.reads) <= READ_BYTES_PER_TICK, "each tick copies a bounded band"
    live.on_event(LiveStarted(LIVE_STREAM, 5))
    live.on_event(frame_for(first))
    assert doc.live == (0, 0, 2048, 2048) and live.frames == 1
    docs.reads.clear()
    for _ in range(40):  # an unchanged canvas: read again and again, nothing sent
        live.tick()
    assert docs.reads and len(transport.sent) == 2
    doc.pixels[100:140] = b"\x10" * 40  # a stroke
    assert ticks_until_sent(live, transport).seq == 2


def test_the_selection_is_the_region_and_settings_change_while_it_runs(rig):
    live, state, doc, docs, transport, view = rig
    doc.selection = Rect(100, 200, 64, 32)
    live.toggle(True)
    sent = ticks_until_sent(live, transport)
    assert (sent.x, sent.y, sent.image.width, sent.image.height) == (100, 200, 64, 32)
    live.on_event(frame_for(sent))
    state.set_value("levels", 7)
    changed = ticks_until_sent(live, transport)
    assert dict(changed.params) == {"levels": 7}


def test_apply_copies_the_frame_shown_and_off_leaves_nothing(rig):
    live, state, doc, docs, transport, view = rig
    doc.selection = Rect(10, 10, 8, 8)
    assert not live.apply()  # nothing to apply yet
    live.toggle(True)
    sent = ticks_until_sent(live, transport)
    live.on_event(frame_for(sent, seed=42))
    live.on_event(LiveFrame(LIVE_STREAM, 0, sent.image, 0, 0))  # an older frame: ignored
    assert doc.live == (10, 10, 8, 8)
    assert live.apply() and doc.layers == [("Live [seed 42]", 10, 10, 8, 8)]
    assert not isinstance(transport.sent[-1], LiveApply), "a server that did not say it keeps frames is not asked to record one"
    live.on_event(LiveStarted(LIVE_STREAM, 42, kept_frames=4))
    assert live.apply() and len(doc.layers) == 2
    assert transport.sent[-1] == LiveApply(LIVE_STREAM, sent.seq), "the server records the frame the artist kept"
    live.toggle(False)
    assert isinstance(transport.sent[-1], LiveStop) and doc.live is None and docs.ended == 1 and not live.on
    live.on_event(frame_for(sent))  # late: the stream is over
    assert doc.live is None


def test_errors_and_a_server_stop_end_cleanly(rig):
    live, state, doc, docs, transport, view = rig
    live.toggle(True)
    sent = ticks_until_sent(live, transport)
    live.on_event(LiveError(LIVE_STREAM, ErrorCode.BAD_IMAGE, "Bad pixels.", sent.seq, "image"))
    assert view.statuses[-1] == ("Failed: Bad pixels.", True) and live.on
    assert live.session.wants_state(), "an error answers its state"
    live.on_event(LiveStopped(LIVE_STREAM, "shutting_down"))
    assert not live.on and docs.ended == 1 and view.on[-1] is False


def test_live_cannot_start_without_a_server_or_with_a_job_running(rig):
    live, state, doc, docs, transport, view = rig
    state.set_capabilities(None)
    assert not live.toggle(True) and view.statuses[-1][1] and not transport.sent
