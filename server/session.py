"""One session per websocket connection: hello and auth, submits, cancels, and
the ordered stream of events back to this client only.

A session gets what it needs and nothing more: a scheduler to hand jobs to,
the capabilities to check them against (replaced when the models change), an
authorize function for the hello's token, and a rescan function for a
client's ``rescan``. It never sees the server.

Sending is bounded. Frames wait in an outbox whose byte count the scheduler
reads (``ready_for_work``): over ``max_unsent_bytes`` this client's next job
waits until it reads. A client whose socket takes nothing for
``send_timeout`` seconds is dropped, so a peer that never reads cannot hold
results in memory for ever.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from typing import Awaitable, Callable, Protocol

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from paintwire.protocol import (
    Cancel,
    CheckedJob,
    ConnectionState,
    Error,
    ErrorCode,
    CheckedControl,
    Hello,
    ImagePayload,
    Preprocess,
    Preprocessed,
    ProtocolError,
    Rescan,
    ServerConnection,
    Submit,
    Welcome,
    __version__,
    check_control,
    check_job,
)
from paintwire.protocol import shm
from paintwire.protocol.addresses import is_loopback_host
from paintwire.protocol.live import LIVE_CLIENT_TYPES, LiveServerMessage, LiveStateError
from paintwire.protocol.messages import Capabilities, CapabilitiesUpdate, ServerMessage
from paintwire.protocol.transfer import TransferTerms

from .config import LimitsConfig
from .jobs import JobOwner
from .live import LiveStreams
from .logtext import quoted

log = logging.getLogger(__name__)

# Websocket close codes (RFC 6455 section 7.4.1).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
# How often the writer looks at a blocked send's progress.
SEND_POLL_SECONDS = 0.25
# Preprocess requests one connection may have waiting: each holds a layer's pixels.
MAX_PREPROCESSING = 4

PreprocessFn = Callable[[str, CheckedControl], Awaitable[ImagePayload]]


class JobScheduler(Protocol):
    """What a session asks of the scheduler."""

    def submit(self, owner: JobOwner, ref: int, checked: CheckedJob) -> object: ...

    def cancel(self, owner: JobOwner, job_id: str) -> None: ...

    def drop_owner(self, owner: JobOwner) -> None: ...

    def wake(self) -> None: ...


class Session:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        peer: str,
        *,
        scheduler: JobScheduler,
        capabilities: Capabilities,
        authorize: Callable[[str | None], bool],
        limits: LimitsConfig,  # max_pixels, max_unsent_bytes, send_timeout and hello_timeout
        transport: asyncio.BaseTransport | None = None,
        rescan: Callable[[], Awaitable[Capabilities]] | None = None,
        preprocess: PreprocessFn | None = None,
    ) -> None:
        self.ws = ws
        self.peer = peer
        self.scheduler = scheduler
        self.capabilities = capabilities
        self.authorize = authorize
        self.limits = limits
        self.transport = transport
        self.rescan = rescan
        self.preprocess = preprocess
        self._preprocessing = 0  # preprocess requests not yet answered
        self.wants_updates = False  # hello asked for a capabilities message whenever they change
        self._tasks: set[asyncio.Task[None]] = set()
        self.conn = ServerConnection(max_pixels=limits.max_pixels)
        self.closed = False
        self.client_name: str | None = None
        self.id = secrets.token_hex(6)  # names this connection to the HTTP API (/api/clients)
        self.accepts_recall = False  # hello said it takes recall messages
        self._outbox: deque[bytes] = deque()
        self._unsent = 0  # bytes in the outbox, the frame being sent included
        self._more = asyncio.Event()  # the outbox got a frame, or the session is ending
        self._ending = False  # send what is queued, then stop
        self._writer: asyncio.Task[None] | None = None
        self._closing_task: asyncio.Future[None] | None = None
        self.live = LiveStreams(self.emit, scheduler, lambda: self.capabilities, self.ready_for_work, self.describe,
                                client_name=lambda: self.client_name)

    # -- outgoing -----------------------------------------------------------------------

    @property
    def unsent_bytes(self) -> int:
        return self._unsent

    def ready_for_work(self) -> bool:
        return not self.closed and self._unsent <= self.limits.max_unsent_bytes

    def describe(self) -> str:
        return f"{quoted(self.client_name)} from {self.peer}"

    def emit(self, message: ServerMessage | LiveServerMessage) -> None:
        """Queue a message for this client; frames leave in the order emitted."""
        if self.closed:
            return
        try:
            frame = self.conn.send(message)
        except RuntimeError:
            log.exception("refusing to send an out-of-order event")
            return
        self._queue(frame)

    def update_capabilities(self, capabilities: Capabilities) -> None:
        """The server's capabilities changed: check new jobs against these, and tell
        the client if it asked to be told."""
        self.capabilities = capabilities
        if self.wants_updates and self.conn.state is ConnectionState.READY:
            self.emit(CapabilitiesUpdate(capabilities))

    async def _rescan_for_client(self) -> None:
        assert self.rescan is not None
        self.capabilities = await self.rescan()
        self.emit(CapabilitiesUpdate(self.capabilities))  # the answer, changed or not (dropped if the client left)

    def _queue(self, frame: bytes) -> None:
        self._outbox.append(frame)
        self._unsent += len(frame)
        self._more.set()

    async def _write(self) -> None:
        while True:
            if not self._outbox:
                if self._ending:
                    return
                self._more.clear()
                await self._more.wait()
                continue
            frame = self._outbox[0]
            if not await self._send(frame):
                return
            self._outbox.popleft()
            was_over = self._unsent > self.limits.max_unsent_bytes
            self._unsent -= len(frame)
            del frame
            if was_over and self.ready_for_work():
                self.scheduler.wake()

    async def _send(self, frame: bytes) -> bool:
        """Send one frame; False when the connection is gone or was dropped because
        the client read nothing for ``send_timeout`` seconds."""
        send = asyncio.ensure_future(self.ws.send_bytes(frame))
        loop = asyncio.get_running_loop()
        last_progress, last_size = loop.time(), -1
        try:
            while True:
                done, _ = await asyncio.wait({send}, timeout=SEND_POLL_SECONDS)
                if done:
                    send.result()
                    return True
                size = self.transport.get_write_buffer_size() if isinstance(self.transport, asyncio.WriteTransport) else 0
                if last_size < 0 or size < last_size:
                    last_progress = loop.time()  # the client took some bytes
                last_size = size
                if loop.time() - last_progress > self.limits.send_timeout:
                    log.warning(
                        "client %s from %s read nothing for %.0f s with %d bytes waiting; dropping it",
                        quoted(self.client_name), self.peer, self.limits.send_timeout, self._unsent,
                    )
                    self.abort()
                    return False
        except (ConnectionError, RuntimeError):
            return False  # the reader notices the closed socket and cleans up
        finally:
            if not send.done():
                send.cancel()

    def abort(self) -> None:
        """Cut the connection at once (no closing handshake): for peers that read nothing."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]

    # -- lifecycle ----------------------------------------------------------------------

    async def shutdown(self, timeout: float) -> None:
        """The server is stopping: send what is queued, then close (within ``timeout`` seconds each)."""
        await self.close_after_flush(CLOSE_GOING_AWAY, b"server shutting down", timeout)

    async def serve(self) -> None:
        writer = self._writer = asyncio.create_task(self._write())
        hello_timer = asyncio.get_running_loop().call_later(self.limits.hello_timeout, self._hello_expired)
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    if not self._handle(msg.data):
                        break
                elif msg.type == WSMsgType.TEXT:
                    self.emit(Error(ErrorCode.BAD_FRAME, "Send binary frames holding msgpack; text frames are not part of the protocol."))
                elif msg.type == WSMsgType.ERROR:
                    self._log_read_error(msg.data)
                    break
        finally:
            hello_timer.cancel()
            self.closed = True
            self.live.close()
            self.scheduler.drop_owner(self)
            self._ending = True
            self._more.set()
            await writer
            self._release()
            release_segments = getattr(self.conn.segment_reader, "release", None)
            if release_segments is not None:
                release_segments()  # the client's segments: nothing is left in /dev/shm after a crash

    def _log_read_error(self, error: object) -> None:
        if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
            # aiohttp's own sentence names the limit it was given, one past ours (which is inclusive).
            log.info("client %s from %s sent a frame over the limit of %d bytes (max_message_bytes); closed it with code 1009",
                     quoted(self.client_name), self.peer, self.capabilities.limits.max_message_bytes)
            return
        log.info("connection %s: %s", self.peer, quoted(error if error is not None else self.ws.exception()))

    def _release(self) -> None:
        # Free what this connection held now, not when a garbage collection finds
        # the session: unsent frames can be hundreds of megabytes.
        self._outbox.clear()
        self._unsent = 0
        self._writer = None

    def _hello_expired(self) -> None:
        if self.conn.state is ConnectionState.START and not self.closed:
            log.info("connection %s sent no hello within %.0f s; closing it", self.peer, self.limits.hello_timeout)
            self._queue(self.conn.reject(Error(ErrorCode.HELLO_REQUIRED, f"No hello within {self.limits.hello_timeout:g} seconds of connecting; send hello first.")))
            self._closing_task = asyncio.ensure_future(self.close_after_flush(CLOSE_POLICY, b"no hello", timeout=1.0))

    async def close_after_flush(self, code: int, reason: bytes, timeout: float) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then close with ``code``."""
        self._ending = True
        self._more.set()
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout)
            except asyncio.TimeoutError:
                self.abort()
                return
        self.closed = True
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason), timeout)
        except asyncio.TimeoutError:
            self.abort()

    # -- incoming -----------------------------------------------------------------------

    def _handle(self, data: bytes) -> bool:
        """Handle one frame; False means close the connection."""
        try:
            message = self.conn.receive(data)
        except ProtocolError as exc:
            if isinstance(exc, LiveStateError) and self.conn.state is ConnectionState.READY:
                self.live.refused(exc)  # a bad live state: its stream hears why and goes on
                return True
            self.emit(Error.from_exception(exc))
            return self.conn.state is not ConnectionState.CLOSED
        if isinstance(message, Hello):
            return self._hello(message)
        if isinstance(message, Submit):
            try:
                checked = check_job(message.job, self.capabilities)
                self.scheduler.submit(self, message.ref, checked)
            except ProtocolError as exc:
                self.emit(Error.from_exception(exc, ref=message.ref))
        elif isinstance(message, LIVE_CLIENT_TYPES):
            self.live.handle(message)
        elif isinstance(message, Rescan):
            if self.rescan is None:
                self.emit(Error(ErrorCode.UNKNOWN_TYPE, "This server cannot rescan its models.", "type"))
            else:
                task = asyncio.create_task(self._rescan_for_client())
                self._tasks.add(task)  # keep a reference until done, or the loop may drop it
                task.add_done_callback(self._tasks.discard)
        elif isinstance(message, Cancel):
            try:
                self.scheduler.cancel(self, message.job)
            except ProtocolError as exc:
                self.emit(Error.from_exception(exc))
        elif isinstance(message, Preprocess):
            self._start_preprocess(message)
        return True

    def _start_preprocess(self, message: Preprocess) -> None:
        try:
            if self.preprocess is None:
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "This server cannot preprocess control layers.", "type")
            if self._preprocessing >= MAX_PREPROCESSING:
                raise ProtocolError(ErrorCode.QUEUE_FULL, f"{MAX_PREPROCESSING} preprocess requests of this connection are "
                                    "still waiting; wait for their answers before sending more.")
            engine = self.capabilities.engine(message.engine)
            if engine is None:
                known = ", ".join(e.name for e in self.capabilities.engines)
                raise ProtocolError(ErrorCode.UNKNOWN_ENGINE, f"No engine named {message.engine!r}; this server has: {known}.", "engine")
            checked = check_control(message.control, engine, self.capabilities, "control", needs_model=False)
        except ProtocolError as exc:
            self.emit(Error.from_exception(exc, ref=message.ref))
            return
        self._preprocessing += 1
        task = asyncio.create_task(self._preprocess(message.ref, message.engine, checked))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _preprocess(self, ref: int, engine: str, checked: CheckedControl) -> None:
        assert self.preprocess is not None
        try:
            self.emit(Preprocessed(ref, await self.preprocess(engine, checked)))
        except ProtocolError as exc:
            self.emit(Error.from_exception(exc, ref=ref))
        except Exception as exc:  # a bug in a preprocessor: say so, keep serving
            log.exception("preprocessing for %s failed", quoted(self.client_name))
            self.emit(Error(ErrorCode.INTERNAL, f"Preprocessing failed: {type(exc).__name__}: {exc}", "control", None, ref))
        finally:
            self._preprocessing -= 1

    def _hello(self, hello: Hello) -> bool:
        if not self.authorize(hello.token):
            self._queue(self.conn.reject(Error(ErrorCode.UNAUTHORIZED, "This server needs a token: pass the one it printed at start (--token).", "token")))
            return False
        self.client_name = hello.client
        self.wants_updates = hello.updates
        self.accepts_recall = hello.recall
        terms = self._transfer_terms(hello)
        if terms.shm:
            self.conn.segment_reader = shm.SegmentReads()
            self.conn.max_segment_bytes = self.capabilities.limits.max_message_bytes
        self._queue(self.conn.accept(Welcome(server=f"paintwire/{__version__}", capabilities=self.capabilities, transfer=terms,
                                                  client_id=self.id)))
        log.info("client %s connected from %s", quoted(hello.client), self.peer)
        return True

    def _transfer_terms(self, hello: Hello) -> TransferTerms:
        """Shared memory only for a loopback peer whose probe segment this server can read."""
        offer = hello.transfer
        if offer.probe is None or offer.token is None:
            return TransferTerms()
        if not is_loopback_host(self.peer):
            return TransferTerms(note="Shared memory is for clients on the server's own machine.")
        note = shm.check_probe(offer.probe, offer.token)
        return TransferTerms(shm=not note, note=note)
