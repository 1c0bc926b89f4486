"""The docker's Live toggle, without Qt: a live stream that follows the layer being
painted on, and its frames over the canvas.

While Live is on, the docker's timer calls ``tick`` every TICK_MS: it reads one
band of the region (the selection's bounds, or the whole canvas) from the
active layer, a bounded number of bytes (hostkit.live.RegionReader), so a big
canvas costs several short ticks instead of one long one. A finished region
goes to the worker thread, which sends it as a ``live_state`` only when the
pixels or the settings changed (hostkit.live.LiveSession). Frames come back
as ``on_event`` calls and show in the "Paintwire live" layer on top; "Apply"
copies the frame shown into a new layer and tells the server (``live_apply``),
which records that frame in its history; turning Live off stops the stream and
removes the live layer.

Like controller.py it talks to small protocols (document.py, worker.py, the
docker), so tests drive it with stand-ins (tests/unit/test_krita_live.py).
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol

from paintwire.hostkit.live import LiveSession, RegionReader, live_region
from paintwire.hostkit.placement import layer_name
from paintwire.hostkit.request import SEED, prompt_of
from paintwire.hostkit.status import describe_error
from paintwire.protocol import PixelFormat, ProtocolError, Rect
from paintwire.protocol.live import LiveError, LiveFrame, LiveStarted, LiveStopped

from .state import PanelState

OUTPUT_FORMAT = PixelFormat.BGRA8  # Krita's own byte order: frames are written as they come
LIVE_STREAM = 1  # the docker's one stream


class LiveDocuments(Protocol):
    DocumentError: type[Exception]

    def active_document(self) -> Any: ...

    def live_source(self, doc: Any, previous: Any = None) -> Any: ...

    def layer_name(self, node: Any) -> str: ...

    def selection_bounds(self, doc: Any) -> Rect | None: ...

    def size(self, doc: Any) -> tuple[int, int]: ...

    def read_band(self, node: Any, x: int, y: int, width: int, height: int) -> Any: ...

    def read_selection(self, doc: Any, x: int, y: int, width: int, height: int) -> bytes | None: ...

    def is_open(self, doc: Any) -> bool: ...

    def show_live_frame(self, doc: Any, bgra: bytes, x: int, y: int, width: int, height: int) -> None: ...

    def repaint_live(self) -> None: ...

    def end_live(self) -> None: ...

    def add_frame_layer(self, doc: Any, name: str, bgra: bytes, x: int, y: int, width: int, height: int) -> None: ...


class LiveTransport(Protocol):
    def live(self, build: Callable[[], Any]) -> None:
        """Call ``build`` in the worker thread and send the message it returns (if any)."""


class LiveView(Protocol):
    def show_status(self, text: str, error: bool = False) -> None: ...

    def live_changed(self, on: bool) -> None: ...  # the toggle, Apply and the controls Live locks


class LiveController:
    """The docker's live stream. Every method runs on Krita's UI thread."""

    def __init__(self, state: PanelState, documents: LiveDocuments, transport: LiveTransport, view: LiveView) -> None:
        self.state = state
        self.documents = documents
        self.transport = transport
        self.view = view
        self.session: LiveSession | None = None
        self.doc: Any = None
        self.frame: LiveFrame | None = None  # the frame shown
        self.frames = 0
        self._reader: RegionReader | None = None
        self._selection: bytes | None = None
        self.source: Any = None  # the layer read: the active paint layer
        # Tick times and frame-showing times (ms) on the UI thread, the latest, for the host test to report.
        self.tick_ms: list[float] = []
        self.frame_ms: list[float] = []

    @property
    def on(self) -> bool:
        return self.session is not None

    @contextmanager
    def _timed(self, times: list[float]) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            times.append((time.perf_counter() - start) * 1000)
            del times[:-2000]  # bounded: the latest are what a test reads

    # -- the toggle ------------------------------------------------------------------------

    def toggle(self, on: bool) -> bool:
        """Turn Live on or off; False (with the reason on the status line) when it cannot start."""
        if not on:
            self.stop()
            return True
        if self.on:
            return True
        try:
            if self.state.busy:
                raise ValueError("A job is running; wait for it or cancel it, then turn Live on.")
            caps = self.state.capabilities
            if caps is None:
                raise ValueError("Connect to a server first.")
            doc = self.documents.active_document()
            self.source = self.documents.live_source(doc)  # or says what is wrong with the document
            self.session = LiveSession.open(LIVE_STREAM, caps, self.state.job_settings(), OUTPUT_FORMAT)
        except (self.documents.DocumentError, ValueError, ProtocolError) as exc:
            self.view.show_status(getattr(exc, "message", None) or str(exc), error=True)
            self.view.live_changed(False)
            return False
        self.doc, self.frame, self.frames, self._reader = doc, None, 0, None
        start = self.session.start
        self.transport.live(lambda: start)
        self.view.show_status(f"Live: starting, following the layer {self.documents.layer_name(self.source)!r} \u2026")
        self.view.live_changed(True)
        return True

    def stop(self, status: str = "Live is off.") -> None:
        """Stop the stream and take the live layer away (whatever the server says later is ignored)."""
        session, self.session = self.session, None
        self._reader = None
        if session is not None:
            self.transport.live(session.stop)
        try:
            self.documents.end_live()
        except Exception:  # the document may be gone: nothing of ours is left in it then
            traceback.print_exc()
        self.frame = None
        if session is not None:
            self.view.show_status(status)
        self.view.live_changed(False)

    # -- reading the document -----------------------------------------------------------

    def tick(self) -> None:
        """One look at the document: read the next band of the region; hand a finished
        region to the worker thread. Bounded work: one band's copy."""
        session = self.session
        if session is None:
            return
        try:
            with self._timed(self.frame_ms):
                self.documents.repaint_live()  # a frame whose repaint waited for its turn
        except Exception:
            traceback.print_exc()
        with self._timed(self.tick_ms):
            try:
                if not self.documents.is_open(self.doc):
                    self.stop("Live stopped: its document was closed.")
                    return
                if self.documents.active_document() != self.doc:
                    return  # another document is in front: Live waits for this one
                node = self.source = self.documents.live_source(self.doc, self.source)
                if self._reader is None:
                    if not session.wants_state():
                        return  # the server has enough to work on; newer pixels are read once it answers
                    width, height = self.documents.size(self.doc)
                    region = live_region(width, height, self.documents.selection_bounds(self.doc))
                    self._reader = RegionReader(region)
                    r = region
                    self._selection = self.documents.read_selection(self.doc, r.x, r.y, r.width, r.height) if session.mask_wanted else None
                band = self._reader.next_band()
                assert band is not None
                self._reader.add(self.documents.read_band(node, *band))
                if self._reader.done:
                    self._send(session, self._reader, self._selection)
                    self._reader = self._selection = None
            except self.documents.DocumentError as exc:
                self._reader = None
                self.view.show_status(str(exc), error=True)
            except Exception as exc:  # never let a surprise reach Krita's error dialog
                self._reader = None
                self.view.show_status(f"Live: {exc}", error=True)
                traceback.print_exc()

    def _send(self, session: LiveSession, reader: RegionReader, selection: bytes | None) -> None:
        params = self.state.job_settings().params  # the artist's values now: prompt, strength, seed...
        # Joined, checksummed and compared in the worker thread, not here.
        self.transport.live(lambda: session.state(reader.pixels, OUTPUT_FORMAT, reader.region, selection, params))

    # -- what the server sends ----------------------------------------------------------

    def on_event(self, message: Any) -> None:
        session = self.session
        if session is None or getattr(message, "stream", None) != session.start.stream:
            return  # a stream stopped meanwhile
        if isinstance(message, LiveFrame):
            if not session.accept(message):
                return
            try:
                with self._timed(self.frame_ms):
                    self.documents.show_live_frame(self.doc, message.image.data, message.x, message.y, message.image.width, message.image.height)
            except Exception as exc:
                self.view.show_status(f"Live: the frame could not be shown: {exc}", error=True)
                return
            self.frame = message
            self.frames += 1
            self.view.show_status(f"Live: frame {self.frames} (seed {message.seed}, {message.dropped} states skipped)")
            self.view.live_changed(True)
        elif isinstance(message, LiveStarted):
            session.started(message)
            self.view.show_status("Live: paint, and the picture follows." + (f" Seed {message.seed}." if message.seed is not None else ""))
        elif isinstance(message, LiveError):
            session.answered_by_error(message.seq)
            self.view.show_status(describe_error(message.message, True), error=True)
        elif isinstance(message, LiveStopped):
            self.stop("Live stopped by the server." if message.reason != "requested" else "Live is off.")

    def apply(self) -> bool:
        """Copy the frame shown into a new layer (below the live layer, which goes on), and
        have the server record it in its history with the stream's settings."""
        frame, doc, session = self.frame, self.doc, self.session
        if frame is None or doc is None or not self.documents.is_open(doc):
            self.view.show_status("No live frame to apply yet.", error=True)
            return False
        params = self.state.job_settings().params
        name = layer_name(prompt_of(params), frame.seed if frame.seed is not None else params.get(SEED), "Live")
        try:
            self.documents.add_frame_layer(doc, name, frame.image.data, frame.x, frame.y, frame.image.width, frame.image.height)
        except Exception as exc:
            self.view.show_status(f"Could not apply the frame: {exc}", error=True)
            return False
        applied = session.apply(frame) if session is not None else None
        if applied is not None:
            self.transport.live(lambda: applied)
        self.view.show_status(f"Applied: {name}.")
        return True
