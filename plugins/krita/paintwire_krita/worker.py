"""The network side: a blocking paintwire Client in a thread of its own,
reporting to the docker through Qt signals.

Krita's UI thread never waits on the network. Signals emitted from the worker
thread reach slots of objects living in the UI thread as queued calls, so the
docker handles every event in the UI thread. ``cancel`` is called from the UI
thread; the client serialises its sends.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Union

from paintwire.hostkit import job_flow
from paintwire.hostkit.recall import fetch_image, recalled_result
from paintwire.hostkit.status import CONNECT_TIMEOUT, EVENT_TIMEOUT
from paintwire.protocol import (
    Capabilities, Client, ClientError, JobFailed, JobRequest, PixelFormat, Preview, ProtocolError, Queued, Recall, __version__,
)
from paintwire.protocol.live import LIVE_SERVER_TYPES, LiveError, LiveFrame, LiveStart, LiveStop
from paintwire.protocol.controls import ControlInput

from .imaging import decode_png_bgra, prepare_preview, thumbnail_png, to_qimage
from .qt import QObject, pyqtSignal
from .state import CLIENT_NAME

# A job is sent as a request, or as a function that builds it: called in the
# worker thread, so that converting the document's pixels never blocks Krita.
# It may raise ValueError or ProtocolError with a sentence for the artist.
JobSource = Union[JobRequest, Callable[[], JobRequest]]


# -- what the UI thread asks of the worker thread: one queue of typed items ---------------------


@dataclass(frozen=True)
class Submit:
    """Run a job; its events, then its result or failure, come back under ``number``."""

    number: int
    source: JobSource


@dataclass(frozen=True)
class SendLive:
    """Send a live message: ``build()`` (run in the worker thread) gives it, or None to send nothing."""

    build: Callable[[], object]


@dataclass(frozen=True)
class Rescan:
    """Ask the server to rescan its model folders."""


@dataclass(frozen=True)
class FetchRecalled:
    """Fetch and decode a recalled image."""

    recall: Recall


@dataclass(frozen=True)
class PreprocessItem:
    """The preprocessed image of one control layer, for the docker's preview.
    ``control`` builds the ControlInput (in the worker thread: it converts the layer's pixels)."""

    engine: str
    control: Callable[[], ControlInput]


@dataclass(frozen=True)
class Stop:
    """Close the connection: the docker asked."""


Item = Union[Submit, SendLive, Rescan, FetchRecalled, PreprocessItem, Stop]


class _Lost(Exception):
    """The connection went while an item was handled; ends the worker with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# How often an idle connection is looked at, so that a server that went away
# shows in the docker within a second rather than at the next Generate.
IDLE_CHECK = 0.5
# While a live stream is open, frames are looked for this often (seconds) between states.
LIVE_POLL = 0.01


class Worker(QObject):
    """One connection to one server, with at most one job in flight."""

    connected = pyqtSignal(object, str)  # Capabilities, server name
    capabilities_changed = pyqtSignal(object)  # Capabilities: models added or gone, or after a refresh
    notice = pyqtSignal(str)  # a sentence for the status line that ends no job
    disconnected = pyqtSignal(str)  # why; empty when the docker asked for it
    job_event = pyqtSignal(int, object)  # ticket number, Queued/Started/Progress/Preview
    job_done = pyqtSignal(int, object)  # ticket number, Result
    job_failed = pyqtSignal(int, str)  # ticket number, message for the status line
    job_cancelled = pyqtSignal(int)
    job_thumbnail = pyqtSignal(int, bytes)  # ticket number, PNG of the result (just before job_done)
    recalled = pyqtSignal(object)  # Recall: settings sent to this client from the server's history
    recalled_image = pyqtSignal(object)  # Result: the recalled image, fetched and decoded (fetch_recalled)
    live_event = pyqtSignal(object)  # LiveStarted, LiveFrame, LiveError or LiveStopped
    preprocessed = pyqtSignal(object)  # QImage of a control layer as the model reads it
    preprocess_failed = pyqtSignal(str)  # why not

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client: Client | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._job_id: str | None = None
        self._cancel_wanted = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def connect_to(self, url: str, token: str | None) -> None:
        """Open a connection in the background; ``connected`` or ``disconnected`` follows."""
        self.disconnect_from()
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(url, token or None, self._jobs), name="paintwire-client", daemon=True)
        self._thread.start()

    def disconnect_from(self) -> None:
        if self._thread is not None:
            self._jobs.put(Stop())
            client = self._client
            if client is not None:
                try:
                    client.close()
                except Exception:  # closing a broken socket: nothing left to do
                    pass
            self._thread = None

    def submit(self, number: int, request: JobSource) -> None:
        with self._lock:
            self._job_id, self._cancel_wanted = None, False
        self._jobs.put(Submit(number, request))

    def live(self, build: Callable[[], object]) -> None:
        """Send a live message: ``build`` runs in the worker thread (converting and comparing
        a state's pixels is no work for Krita's UI thread) and returns it, or None to send nothing."""
        self._jobs.put(SendLive(build))

    def rescan(self) -> None:
        """Ask the server to look at its model folders again; ``capabilities_changed`` follows."""
        self._jobs.put(Rescan())

    def fetch_recalled(self, recall: Recall) -> None:
        """Fetch and decode a recalled image in the worker thread; ``recalled_image`` or ``notice`` follows."""
        self._jobs.put(FetchRecalled(recall))

    def preprocess(self, engine: str, control: Callable[[], ControlInput]) -> None:
        """Ask for a control layer's preprocessed image; ``preprocessed`` or ``preprocess_failed`` follows."""
        self._jobs.put(PreprocessItem(engine, control))

    def cancel(self) -> None:
        """Cancel the job in flight, now or as soon as the server names it."""
        with self._lock:
            job_id, self._cancel_wanted = self._job_id, True
        if job_id is not None:
            self._send_cancel(job_id)

    def _send_cancel(self, job_id: str) -> None:
        client = self._client
        if client is None:
            return
        try:
            client.cancel(job_id)
        except Exception:  # the job may be over already, or the connection gone: the run loop reports the outcome
            pass

    # -- worker thread --------------------------------------------------------------------

    def _run(self, url: str, token: str | None, jobs: queue.Queue) -> None:
        client = self._open(url, token, jobs)
        if client is None:
            return
        reason = ""
        try:
            reason = self._serve(client, url, token, jobs)
        finally:
            if self._client is client:
                self._client = None
            try:
                client.close()
            except Exception:
                pass
            if jobs is self._jobs:  # not replaced by a newer connection
                self.disconnected.emit(reason)

    def _open(self, url: str, token: str | None, jobs: queue.Queue) -> Client | None:
        """Connect; None (with ``disconnected`` said) when that failed or a newer connection replaced this one."""
        client = Client(url, name=f"{CLIENT_NAME}/{__version__}", token=token, timeout=CONNECT_TIMEOUT, updates=True, recall=True)
        try:
            caps = client.connect()
        except (ClientError, JobFailed) as exc:
            if jobs is self._jobs:  # not replaced by a newer connection meanwhile
                self.disconnected.emit(str(exc))
            return None
        except Exception as exc:  # never let a surprise reach Krita's error dialog
            if jobs is self._jobs:
                self.disconnected.emit(f"{type(exc).__name__}: {exc}")
            return None
        if jobs is not self._jobs:  # the docker connected elsewhere meanwhile: this connection is stale
            client.close()
            return None
        self._client = client
        self.connected.emit(caps, getattr(client.protocol, "server_name", "") or "")
        return client

    def _serve(self, client: Client, url: str, token: str | None, jobs: queue.Queue) -> str:
        """Handle the queue's items until Stop or a lost connection; returns why it ended ("" when asked)."""
        caps = client.capabilities
        live = False  # a live stream is open: look for its frames often
        while True:
            if client.capabilities is not caps:  # pushed by the server, read during a job or a poll
                caps = client.capabilities
                self.capabilities_changed.emit(caps)
            try:
                item = jobs.get(timeout=LIVE_POLL if live else IDLE_CHECK)
            except queue.Empty:
                if not client.is_open:
                    return f"The server at {url} closed the connection."
                try:
                    self._route(client.poll())  # pushed capabilities and recalls between jobs, live frames
                except ClientError as exc:
                    return str(exc)
                continue
            try:
                if isinstance(item, Stop):
                    return ""
                if isinstance(item, SendLive):
                    live = self._live_item(client, item, live)
                elif isinstance(item, Rescan):
                    caps = self._rescan(client, caps)
                elif isinstance(item, FetchRecalled):
                    self._fetch(url, token, item.recall)
                elif isinstance(item, PreprocessItem):
                    self._preprocess(client, item)
                else:
                    self._job(client, item)
            except _Lost as lost:
                return lost.reason

    def _job(self, client: Client, item: Submit) -> None:
        """Build the request, run it through hostkit's job flow, and say how it ended."""
        number = item.number
        try:
            request = item.source() if callable(item.source) else item.source
        except (ValueError, ProtocolError) as exc:  # what the artist can fix: said as it is
            self.job_failed.emit(number, getattr(exc, "message", None) or str(exc))
            return
        except Exception as exc:
            self.job_failed.emit(number, f"Cannot start: {type(exc).__name__}: {exc}")
            return
        try:
            outcome = job_flow.submit(client, request, lambda ev: self._on_event(number, ev), EVENT_TIMEOUT)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.job_failed.emit(number, reason)
            raise _Lost(reason) from None
        if isinstance(outcome, job_flow.Cancelled):
            self.job_cancelled.emit(number)
        elif isinstance(outcome, job_flow.Failed):
            if outcome.connection_lost:
                self.job_failed.emit(number, f"Lost the connection: {outcome.message}")
                raise _Lost(outcome.message)
            self.job_failed.emit(number, outcome.message)
        else:
            try:
                self.job_thumbnail.emit(number, thumbnail_png(outcome.result))
            except Exception:  # a thumbnail is a nicety: the result still counts
                pass
            self.job_done.emit(number, outcome.result)

    def _live_item(self, client: Client, item: SendLive, live: bool) -> bool:
        try:
            live = self._send_live(client, item.build, live)
            self._route(client.poll())  # states may come every tick: frames are read between them
        except ClientError as exc:
            raise _Lost(str(exc)) from None
        return live

    def _rescan(self, client: Client, caps: Capabilities) -> Capabilities:
        try:
            caps = client.rescan(timeout=EVENT_TIMEOUT)
        except JobFailed as exc:  # a server without rescan: keep what we have
            self.notice.emit(f"The server cannot refresh its models: {exc.error.message}")
            return caps
        except ClientError as exc:
            raise _Lost(str(exc)) from None
        self.capabilities_changed.emit(caps)
        return caps

    def _fetch(self, url: str, token: str | None, recall: Recall) -> None:
        try:
            decoded = decode_png_bgra(fetch_image(url, token, recall))
        except ValueError as exc:
            self.notice.emit(str(exc))
            return
        if decoded is None:
            self.notice.emit("The recalled image could not be read.")
            return
        width, height, pixels = decoded
        self.recalled_image.emit(recalled_result(recall, width, height, pixels, PixelFormat.BGRA8))

    def _send_live(self, client: Client, build: Callable[[], object], live: bool) -> bool:
        """Build and send one live message; returns whether a stream is open after it."""
        try:
            message = build()
        except Exception as exc:  # a state that cannot be made: said on the status line, the stream goes on
            self.notice.emit(f"Live: {type(exc).__name__}: {exc}")
            return live
        if message is None:
            return live
        try:
            client.live(message)  # type: ignore[arg-type]
        except JobFailed as exc:  # too big for the server's messages: never sent
            error = exc.error
            self.live_event.emit(LiveError(message.stream, error.code, error.message, getattr(message, "seq", None), error.field))  # type: ignore[attr-defined]
            return live
        return isinstance(message, LiveStart) or (live and not isinstance(message, LiveStop))

    def _route(self, messages: list) -> None:
        for message in messages:
            if isinstance(message, LiveFrame) and not isinstance(message.image.data, bytes):
                # A view into the received frame (blob frames): bytes of its own, made here rather than on Krita's UI thread.
                message = dataclasses.replace(message, image=dataclasses.replace(message.image, data=bytes(message.image.data)))
            if isinstance(message, LIVE_SERVER_TYPES):
                self.live_event.emit(message)
            elif isinstance(message, Recall):
                self.recalled.emit(message)

    def _preprocess(self, client: Client, item: PreprocessItem) -> None:
        """One preview of a control layer; what the artist can fix is said, a lost connection ends the worker."""
        try:
            image = to_qimage(client.preprocess(item.engine, item.control(), timeout=EVENT_TIMEOUT))
        except ClientError as exc:
            self.preprocess_failed.emit(f"Lost the connection: {exc}")
            raise _Lost(str(exc)) from None
        except JobFailed as exc:
            self.preprocess_failed.emit(exc.error.message)
            return
        except (ValueError, ProtocolError) as exc:
            self.preprocess_failed.emit(getattr(exc, "message", None) or str(exc))
            return
        if image is None:
            self.preprocess_failed.emit("The server sent a preview this plug-in cannot show.")
        else:
            self.preprocessed.emit(image)

    def _on_event(self, number: int, event: object) -> None:
        if isinstance(event, Queued):
            with self._lock:
                first = self._job_id is None
                self._job_id = event.job
                cancel = self._cancel_wanted and first
            if cancel:
                self._send_cancel(event.job)
        if isinstance(event, Preview):
            event = prepare_preview(event)  # scaled and converted here, not on Krita's UI thread
        self.job_event.emit(number, event)


