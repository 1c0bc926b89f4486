"""A small blocking client on top of ClientConnection, using websockets.sync.

For the CLI, the GIMP plug-in (its own process, so blocking is fine) and the
Krita plug-in (from a worker thread). ``cancel`` may be called from another
thread while ``run`` is waiting for events.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidURI, InvalidHandshake
from websockets.sync.client import ClientConnection as WebSocket
from websockets.sync.client import connect

from . import shm
from .addresses import is_loopback_host
from .connection import ClientConnection, ConnectionState
from .errors import ErrorCode, ProtocolError
from .controls import ControlInput, Preprocessed
from .images import ImagePayload
from .live import LiveClientMessage
from .messages import Cancelled, Capabilities, CapabilitiesUpdate, Error, JobRequest, Queued, Result
from .recall import Recall
from .transfer import TransferOffer

DEFAULT_URL = "ws://127.0.0.1:7878/ws"
# Results can be larger than anything a client sends (an upscale makes 4-16x
# the pixels), so the cap is generous; it guards against a broken server only.
MAX_RECEIVE_BYTES = 2**31
CLOSE_MESSAGE_TOO_BIG = 1009  # the websocket close code a server sends for a frame over its limit


def open_websocket(url: str, **options: Any) -> WebSocket:
    """websockets.sync's connect(), returning the connection directly on every
    release we may run with: 17 wants ``legacy=True`` for that, 15 and 16 do it
    by default and do not know the flag, and releases before 15 know no
    ``proxy`` option (they never use a proxy, so it can go)."""
    attempts = [dict(options, legacy=True), dict(options)]
    if "proxy" in options:
        attempts.append({k: v for k, v in options.items() if k != "proxy"})
    for attempt in attempts[:-1]:
        try:
            return connect(url, **attempt)
        except TypeError:
            continue
    return connect(url, **attempts[-1])


def _is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)


class ClientError(Exception):
    """The server could not be reached, or the connection broke."""


class JobFailed(Exception):
    """The server rejected or failed the job; ``error`` says why."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code.value}: {error.message}" + (f" ({error.field})" if error.field else ""))
        self.error = error


class JobCancelled(Exception):
    """The job was cancelled before it finished."""


EventHandler = Callable[[Any], None]


class Client:
    """A connection to a Paintwire server.

    >>> with Client("ws://127.0.0.1:7878/ws") as client:
    ...     result = client.run(request, on_event=print)
    """

    def __init__(
        self, url: str = DEFAULT_URL, name: str = "paintwire-python", token: str | None = None, timeout: float = 10.0, updates: bool = False,
        recall: bool = False, shared_memory: bool = True,
    ) -> None:
        self.url = url
        # Offer shared memory to a server on this machine (Linux); the handshake proves it works.
        self.shared_memory = shared_memory
        self.name = name
        self.token = token
        self.updates = updates  # ask the server to send new capabilities when its models change
        self.recall = recall  # take recall messages (settings sent from the server's history)
        self.recalls: list[Recall] = []  # recalls that arrived while run() waited; poll() hands them out
        self.timeout = timeout
        self.protocol = ClientConnection()
        self._ws: WebSocket | None = None
        self._lock = threading.Lock()  # serialises sends from the worker and the UI thread
        self._arena = shm.Arena()  # this connection's segment, reused job after job
        self._arena_ref: int | None = None  # the submit whose pixels are in it until its answer comes

    # -- connection ---------------------------------------------------------------------

    def connect(self) -> Capabilities:
        try:
            # A proxy from the environment (https_proxy, ALL_PROXY) must never see a
            # local server's pixels and token: loopback connections go direct.
            direct = {"proxy": None} if _is_loopback(self.url) else {}
            self._ws = open_websocket(self.url, open_timeout=self.timeout, max_size=MAX_RECEIVE_BYTES, compression=None, **direct)
        except (OSError, InvalidURI, InvalidHandshake, TimeoutError) as exc:
            raise ClientError(f"Cannot connect to {self.url}: {exc}. Is the server running (paintwire serve)?") from exc
        probe = shm.probe() if self.shared_memory and _is_loopback(self.url) else None
        offer = TransferOffer(probe=probe[0], token=probe[1]) if probe else TransferOffer()
        try:
            self._send(self.protocol.hello(self.name, self.token, self.updates, offer, self.recall))
            message = self._receive(self.timeout)
        finally:
            if probe:
                shm.remove(probe[0])  # read (and removed) by a server that took it; ours to remove otherwise
        if isinstance(message, Error):
            self.close()
            raise JobFailed(message)
        assert self.protocol.capabilities is not None
        return self.protocol.capabilities

    @property
    def capabilities(self) -> Capabilities:
        if self.protocol.capabilities is None:
            raise ClientError("Not connected.")
        return self.protocol.capabilities

    @property
    def is_open(self) -> bool:
        """Whether the connection is still open. The websocket's reader thread
        notices a close frame or a dropped socket even while no job runs."""
        if self._ws is None:
            return False
        state = getattr(self._ws, "state", None)
        return state is None or getattr(state, "name", "OPEN") == "OPEN"

    @property
    def uses_shared_memory(self) -> bool:
        """Whether this connection hands pixels over in shared memory."""
        return self.protocol.transfer.shm

    def close(self) -> None:
        self._arena.close()
        self._arena_ref = None
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        self.protocol.state = ConnectionState.CLOSED

    def __enter__(self) -> "Client":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs ---------------------------------------------------------------------------

    def submit(self, job: JobRequest) -> int:
        """Send a job; returns its ref. Its events come from ``events()``."""
        # The segment holds one job's pixels until the server has read them (it answers
        # only after): a submit while it is taken sends its pixels in the frame.
        shared = self.protocol.transfer.shm and self._arena_ref is None
        try:
            ref, frame = self.protocol.submit(job, self._arena.write if shared else None)
        except OSError:  # no room in /dev/shm: the frame it is, from now on
            self._no_shared_memory()
            return self.submit(job)
        except ProtocolError as exc:  # over the server's message size: never sent
            raise JobFailed(Error.from_exception(exc)) from None
        if shared:
            self._arena_ref = ref
        self._send(frame)
        return ref

    def _no_shared_memory(self) -> None:
        """Send pixels in the frame from now on (a segment was refused or could not be made)."""
        self.protocol.transfer = dataclasses.replace(self.protocol.transfer, shm=False)

    def _answered(self, message: Any) -> None:
        """A submit's answer came: the server has read its segment (or never will)."""
        if isinstance(message, (Queued, Error)) and message.ref is not None and message.ref == self._arena_ref:
            self._arena_ref = None
        if isinstance(message, Error) and message.code is ErrorCode.BAD_SEGMENT:
            self._no_shared_memory()

    def cancel(self, job_id: str) -> None:
        """Ask the server to cancel a job; safe to call from another thread."""
        self._send(self.protocol.cancel(job_id))

    def live(self, message: LiveClientMessage) -> None:
        """Send a live stream message (live_start, live_state, live_stop); the stream's
        answers arrive through ``events()`` or ``poll()``. Safe from another thread."""
        try:
            frame = self.protocol.live(message)
        except ProtocolError as exc:  # a state over the server's message size: never sent
            raise JobFailed(Error.from_exception(exc)) from None
        self._send(frame)

    def rescan(self, timeout: float | None = None) -> Capabilities:
        """Ask the server to look at its model folders again; returns the capabilities
        it answers with. Call it while no job of this client is running: events of a
        running job that arrive meanwhile are not delivered."""
        self._send(self.protocol.rescan())
        deadline = self.timeout if timeout is None else timeout
        for message in self.events(deadline):
            if isinstance(message, Recall):
                self.recalls.append(message)  # sent meanwhile: kept for poll(), like during run()
            if isinstance(message, CapabilitiesUpdate):
                return message.capabilities
            if isinstance(message, Error) and message.job is None and message.ref is None:
                raise JobFailed(message)  # e.g. a server that does not know rescan (unknown_type)
        raise AssertionError("unreachable")

    def preprocess(self, engine: str, control: ControlInput, timeout: float | None = None) -> ImagePayload:
        """The image the model would read from ``control`` (a preview of its preprocessor).
        Raises JobFailed with the server's error. Like ``rescan``, call it while no job of
        this client is running: other events that arrive meanwhile are not delivered."""
        ref, frame = self.protocol.preprocess(engine, control)
        self._send(frame)
        for message in self.events(self.timeout if timeout is None else timeout):
            if isinstance(message, Preprocessed) and message.ref == ref:
                return message.image
            if isinstance(message, Recall):
                self.recalls.append(message)  # sent meanwhile: kept for poll(), like during run()
            if isinstance(message, Error) and message.job is None and message.ref in (ref, None):
                raise JobFailed(message)  # also a server that does not know preprocess (unknown_type)
        raise AssertionError("unreachable")

    def wait_until_started(self, timeout: float | None = None) -> Capabilities:
        """The capabilities once no engine of the server is starting any more: a server
        listens before its slow engines have started (docs/protocol.md section 3.4) and
        pushes new capabilities when they are ready. Returns at once when none is starting.
        Needs ``updates`` (asked for in hello); raises ClientError when ``timeout`` passes first."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while starting := [e.name for e in self.capabilities.engines if e.starting]:
            remaining = deadline - time.monotonic()
            if not self.updates or remaining <= 0:
                raise ClientError(f"The server's {', '.join(starting)} engine did not start within {limit:g} s; try again in a moment.")
            message = self._receive(remaining)
            if isinstance(message, Recall):
                self.recalls.append(message)  # kept for poll(), as during run()
        return self.capabilities

    def poll(self) -> list[Any]:
        """The messages that have already arrived, without waiting: for a client that
        is idle between jobs and wants the server's pushed ``capabilities``."""
        out: list[Any] = list(self.recalls)
        self.recalls.clear()
        while True:
            if self._ws is None:
                raise ClientError("Not connected.")
            try:
                data = self._ws.recv(timeout=0)
            except TimeoutError:
                return out
            except ConnectionClosed as exc:
                raise ClientError(f"The connection to {self.url} was closed: {exc}.") from exc
            try:
                out.append(self.protocol.receive(data if isinstance(data, bytes) else data.encode()))
            except ProtocolError as exc:
                raise ClientError(f"The server broke the protocol: {exc}") from exc
            self._answered(out[-1])

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """Every message from the server, as it comes."""
        while True:
            yield self._receive(timeout)

    def run(self, job: JobRequest, on_event: EventHandler | None = None, timeout: float | None = None) -> Result:
        """Submit ``job`` and block until it ends.

        Every event of the job goes to ``on_event`` (progress, previews,
        queue position). Returns the Result; raises JobFailed or JobCancelled.
        ``timeout`` bounds the wait for each event, not the whole job.
        """
        ref = self.submit(job)
        job_id: str | None = None
        for message in self.events(timeout):
            mine = (isinstance(message, (Queued, Error)) and message.ref == ref and job_id is None) or (
                job_id is not None and getattr(message, "job", None) == job_id
            )
            if not mine:
                if isinstance(message, Recall):
                    self.recalls.append(message)  # not this job's: kept for poll()
                continue
            if isinstance(message, Queued):
                job_id = message.job
            if on_event is not None:
                on_event(message)
            if isinstance(message, Result):
                return message
            if isinstance(message, Error):
                raise JobFailed(message)
            if isinstance(message, Cancelled):
                raise JobCancelled(f"Job {job_id} was cancelled.")
        raise AssertionError("unreachable")

    # -- transport ----------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        if self._ws is None:
            raise ClientError("Not connected.")
        try:
            with self._lock:
                self._ws.send(frame)
        except ConnectionClosed as exc:
            raise ClientError(f"The connection to {self.url} was closed: {exc}.") from exc

    def _receive(self, timeout: float | None) -> Any:
        if self._ws is None:
            raise ClientError("Not connected.")
        try:
            data = self._ws.recv(timeout=timeout)
        except TimeoutError:
            raise ClientError(f"No answer from {self.url} within {timeout} s.") from None
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CLOSE_MESSAGE_TOO_BIG:
                raise ClientError(f"The server at {self.url} closed the connection: a message was over its size limit ({ErrorCode.TOO_LARGE.value}).") from exc
            raise ClientError(f"The connection to {self.url} was closed: {exc}.") from exc
        try:
            message = self.protocol.receive(data if isinstance(data, bytes) else data.encode())
        except ProtocolError as exc:
            if exc.code is ErrorCode.UNSUPPORTED_VERSION:
                raise ClientError(str(exc)) from exc
            raise ClientError(f"The server broke the protocol: {exc}") from exc
        self._answered(message)
        return message
