"""One session per websocket connection: hello and auth, submits, cancels, and
the ordered stream of events back to this client only."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from paintwire.protocol import (
    Cancel,
    ConnectionState,
    Error,
    ErrorCode,
    Hello,
    ProtocolError,
    Rescan,
    ServerConnection,
    Submit,
    Welcome,
    __version__,
    check_job,
)

if TYPE_CHECKING:
    from .app import PaintwireServer

log = logging.getLogger(__name__)


class Session:
    def __init__(self, ws: web.WebSocketResponse, server: "PaintwireServer", peer: str, pre_authorized: bool) -> None:
        self.ws = ws
        self.server = server
        self.peer = peer
        self.pre_authorized = pre_authorized  # a valid token came with the handshake
        self.conn = ServerConnection(max_pixels=server.config.max_pixels)
        self.closed = False
        self.wants_updates = False  # hello asked for capabilities messages
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- outgoing -----------------------------------------------------------------------

    def emit(self, message: Any) -> None:
        """Queue a message for this client; frames leave in the order emitted."""
        if self.closed:
            return
        try:
            frame = self.conn.send(message)
        except RuntimeError:
            log.exception("refusing to send an out-of-order event")
            return
        self._outbox.put_nowait(frame)

    async def _write(self) -> None:
        while True:
            frame = await self._outbox.get()
            if frame is None:
                return
            try:
                await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return  # the reader notices the closed socket and cleans up

    # -- incoming -----------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Send what is queued for this client, then close (server stopping)."""
        self._outbox.put_nowait(None)
        if self._writer is not None:
            await asyncio.wait_for(asyncio.shield(self._writer), timeout=5)
        self.closed = True
        await self.ws.close(code=1001, message=b"server shutting down")

    async def serve(self) -> None:
        writer = self._writer = asyncio.create_task(self._write())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    if not self._handle(msg.data):
                        break
                elif msg.type == WSMsgType.TEXT:
                    self.emit(Error(ErrorCode.BAD_FRAME, "Send binary frames holding msgpack; text frames are not part of the protocol."))
                elif msg.type == WSMsgType.ERROR:
                    exc = self.ws.exception()
                    log.info("connection %s: %s", self.peer, exc)
                    break
        finally:
            self.closed = True
            self.server.scheduler.drop_owner(self)
            self._outbox.put_nowait(None)
            await writer

    def _handle(self, data: bytes) -> bool:
        """Handle one frame; False means close the connection."""
        try:
            message = self.conn.receive(data)
        except ProtocolError as exc:
            self.emit(Error.from_exception(exc))
            return self.conn.state is not ConnectionState.CLOSED
        if isinstance(message, Hello):
            return self._hello(message)
        if isinstance(message, Submit):
            try:
                checked = check_job(message.job, self.server.capabilities)
                self.server.scheduler.submit(self, message.ref, checked)
            except ProtocolError as exc:
                self.emit(Error.from_exception(exc, ref=message.ref))
        elif isinstance(message, Rescan):
            task = asyncio.create_task(self.server.rescan_for(self))
            self._tasks.add(task)  # a reference until it is done, or the loop may drop it
            task.add_done_callback(self._tasks.discard)
        elif isinstance(message, Cancel):
            try:
                self.server.scheduler.cancel(self, message.job)
            except ProtocolError as exc:
                self.emit(Error.from_exception(exc))
        return True

    def _hello(self, hello: Hello) -> bool:
        token = self.server.config.token
        if token and not self.pre_authorized and not (hello.token and hmac.compare_digest(hello.token.encode(), token.encode())):
            self._outbox.put_nowait(self.conn.reject(Error(ErrorCode.UNAUTHORIZED, "This server needs a token: pass the one it printed at start (--token).", "token")))
            return False
        self.wants_updates = hello.updates
        welcome = Welcome(server=f"paintwire/{__version__}", capabilities=self.server.capabilities)
        self._outbox.put_nowait(self.conn.accept(welcome))
        log.info("client %s connected from %s", hello.client, self.peer)
        return True
