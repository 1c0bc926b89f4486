"""The network side: a blocking paintwire Client in a thread of its own,
reporting to the docker through Qt signals.

Krita's UI thread never waits on the network. Signals emitted from the worker
thread reach slots of objects living in the UI thread as queued calls, so the
docker handles every event in the UI thread. ``cancel`` is called from the UI
thread; the client serialises its sends.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Union

from paintwire.hostkit.recall import fetch_image, recalled_result
from paintwire.hostkit.status import CONNECT_TIMEOUT, EVENT_TIMEOUT
from paintwire.protocol import (
    Client, ClientError, JobCancelled, JobFailed, JobRequest, PixelFormat, Preview, ProtocolError, Queued, Recall, __version__,
)

from .imaging import decode_png_bgra, prepare_preview, thumbnail_png
from .qt import QObject, pyqtSignal
from .state import CLIENT_NAME

# A job is sent as a request, or as a function that builds it: called in the
# worker thread, so that converting the document's pixels never blocks Krita.
# It may raise ValueError or ProtocolError with a sentence for the artist.
JobSource = Union[JobRequest, Callable[[], JobRequest]]
RESCAN = "rescan"  # a queue item: ask the server to rescan its model folders
FETCH = "fetch"  # a queue item (FETCH, Recall): fetch and decode a recalled image
# How often an idle connection is looked at, so that a server that went away
# shows in the docker within a second rather than at the next Generate.
IDLE_CHECK = 0.5


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
            self._jobs.put(None)
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
        self._jobs.put((number, request))

    def rescan(self) -> None:
        """Ask the server to look at its model folders again; ``capabilities_changed`` follows."""
        self._jobs.put(RESCAN)

    def fetch_recalled(self, recall: Recall) -> None:
        """Fetch and decode a recalled image in the worker thread; ``recalled_image`` or ``notice`` follows."""
        self._jobs.put((FETCH, recall))

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
        client = Client(url, name=f"{CLIENT_NAME}/{__version__}", token=token, timeout=CONNECT_TIMEOUT, updates=True, recall=True)
        try:
            caps = client.connect()
        except (ClientError, JobFailed) as exc:
            if jobs is self._jobs:  # not replaced by a newer connection meanwhile
                self.disconnected.emit(str(exc))
            return
        except Exception as exc:  # never let a surprise reach Krita's error dialog
            if jobs is self._jobs:
                self.disconnected.emit(f"{type(exc).__name__}: {exc}")
            return
        if jobs is not self._jobs:  # the docker connected elsewhere meanwhile: this connection is stale
            client.close()
            return
        self._client = client
        server = getattr(client.protocol, "server_name", "") or ""
        self.connected.emit(caps, server)
        reason = ""
        try:
            while True:
                if client.capabilities is not caps:  # pushed by the server, read during a job or a poll
                    caps = client.capabilities
                    self.capabilities_changed.emit(caps)
                try:
                    item = jobs.get(timeout=IDLE_CHECK)
                except queue.Empty:
                    if not client.is_open:
                        reason = f"The server at {url} closed the connection."
                        break
                    try:
                        pushed = client.poll()  # pushed capabilities and recalls, between jobs
                    except ClientError as exc:
                        reason = str(exc)
                        break
                    for message in pushed:
                        if isinstance(message, Recall):
                            self.recalled.emit(message)
                    continue
                if item is None:
                    break
                if item is RESCAN:
                    try:
                        caps = client.rescan(timeout=EVENT_TIMEOUT)
                    except JobFailed as exc:  # a server without rescan: keep what we have
                        self.notice.emit(f"The server cannot refresh its models: {exc.error.message}")
                        continue
                    except ClientError as exc:
                        reason = str(exc)
                        break
                    self.capabilities_changed.emit(caps)
                    continue
                if isinstance(item, tuple) and item[0] == FETCH:
                    self._fetch(url, token, item[1])
                    continue
                number, request = item
                try:
                    request = request() if callable(request) else request
                except (ValueError, ProtocolError) as exc:  # what the artist can fix: said as it is
                    self.job_failed.emit(number, getattr(exc, "message", None) or str(exc))
                    continue
                except Exception as exc:
                    self.job_failed.emit(number, f"Cannot start: {type(exc).__name__}: {exc}")
                    continue
                try:
                    result = client.run(request, on_event=lambda ev, n=number: self._on_event(n, ev), timeout=EVENT_TIMEOUT)
                except JobCancelled:
                    self.job_cancelled.emit(number)
                except JobFailed as exc:
                    self.job_failed.emit(number, exc.error.message)
                except ClientError as exc:
                    reason = str(exc)
                    self.job_failed.emit(number, f"Lost the connection: {exc}")
                    break
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    self.job_failed.emit(number, reason)
                    break
                else:
                    try:
                        self.job_thumbnail.emit(number, thumbnail_png(result))
                    except Exception:  # a thumbnail is a nicety: the result still counts
                        pass
                    self.job_done.emit(number, result)
        finally:
            if self._client is client:
                self._client = None
            try:
                client.close()
            except Exception:
                pass
            if jobs is self._jobs:  # not replaced by a newer connection
                self.disconnected.emit(reason)

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


