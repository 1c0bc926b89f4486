"""Connection hygiene below HTTP: limits, handshake deadline, masked frames.

aiohttp accepts every TCP connection, waits for its request for ever and
reads websocket frames whether or not the client masked them. The guard sits
between the listening socket and aiohttp's protocol objects:

- more than ``max_total`` open connections, or ``max_per_address`` from one
  IP address, get an HTTP 503 with a sentence and are closed;
- a connection that has not sent a complete request ``handshake_timeout``
  seconds after it opened is closed (the session then gives the hello the
  same time);
- after the websocket upgrade every client frame header is checked: RFC 6455
  section 5.1 says a server must close a connection that sends an unmasked
  frame, which aiohttp does not do. The check reads frame headers only and
  skips payloads, so it costs nothing per byte.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter
from typing import Callable

from aiohttp import web

log = logging.getLogger(__name__)

CLOSE_PROTOCOL_ERROR = 1002  # RFC 6455 section 7.4.1


class ConnectionGuard:
    def __init__(self, max_total: int, max_per_address: int, handshake_timeout: float) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.handshake_timeout = handshake_timeout
        self.open: dict[asyncio.BaseTransport, GuardedProtocol] = {}
        self.per_address: Counter[str] = Counter()

    def site(self, runner: web.AppRunner, host: str, port: int) -> web.TCPSite:
        """A TCP site whose connections pass through this guard (the app must
        have ``middleware`` installed)."""
        return _GuardedSite(self, runner, host, port)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: GuardedProtocol(self, factory())

    @web.middleware
    async def middleware(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        protocol = self.open.get(request.transport) if request.transport is not None else None
        if protocol is not None:
            protocol.request_started()
        return await handler(request)

    def frames_follow(self, transport: asyncio.BaseTransport | None, follow: bool = True) -> None:
        """The websocket route accepts the upgrade: the request's bytes are all read,
        so whatever the client sends from now on is frames (or the upgrade failed
        and it is HTTP again: ``follow=False``)."""
        protocol = self.open.get(transport) if transport is not None else None
        if protocol is not None:
            protocol.frames = FrameHeaderCheck() if follow else None

    def close_all(self) -> None:
        """Shutdown: close every connection still open (handshakes included)."""
        for transport in list(self.open):
            transport.abort()  # type: ignore[attr-defined]

    # -- bookkeeping from GuardedProtocol ---------------------------------------------------

    def admit(self, protocol: "GuardedProtocol", address: str) -> str | None:
        """Count a new connection; returns why it is refused, or None."""
        if len(self.open) >= self.max_total:
            return f"The server has its most connections open ({self.max_total}); close some or try again shortly."
        if self.per_address[address] >= self.max_per_address:
            return f"Your address has {self.max_per_address} connections open, the most this server allows; close some."
        self.open[protocol.transport] = protocol  # type: ignore[index]
        self.per_address[address] += 1
        return None

    def release(self, protocol: "GuardedProtocol", address: str) -> None:
        if self.open.pop(protocol.transport, None) is not None:  # type: ignore[arg-type]
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol, after the guard's checks."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self.admitted = False
        self.frames: FrameHeaderCheck | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        refusal = self.guard.admit(self, self.address)
        if refusal is not None:
            log.warning("refused a connection from %s: %s", self.address, refusal)
            body = (refusal + "\n").encode()
            transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            transport.close()
            return
        self.admitted = True
        self._deadline = asyncio.get_running_loop().call_later(self.guard.handshake_timeout, self._handshake_expired)
        self.inner.connection_made(transport)

    def request_started(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _handshake_expired(self) -> None:
        log.info("closing a connection from %s: no complete request within %.0f s", self.address, self.guard.handshake_timeout)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        if self.frames is not None and not self.frames.feed(data):
            self._protocol_error("client frames must be masked (RFC 6455 section 5.1)")
            return
        self.inner.data_received(data)

    def _protocol_error(self, reason: str) -> None:
        log.warning("closing the connection from %s: %s", self.address, reason)
        self.admitted = False  # nothing more reaches aiohttp
        assert self.transport is not None
        text = reason.encode()[:120]
        self.transport.write(bytes([0x88, 2 + len(text)]) + struct.pack(">H", CLOSE_PROTOCOL_ERROR) + text)
        self.transport.close()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None  # type: ignore[func-returns-value]

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        was_admitted = self.transport in self.guard.open
        self.guard.release(self, self.address)
        if was_admitted:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class FrameHeaderCheck:
    """Follows websocket frame boundaries in the client's byte stream and reports
    an unmasked frame. Reads headers only; payload bytes are skipped by count."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._skip = 0  # payload bytes of the current frame still to come

    def feed(self, data: bytes) -> bool:
        """False as soon as a frame without the mask bit appears."""
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            want = 2 if len(self._head) < 2 else _header_length(self._head)
            take = min(want - len(self._head), n - i)
            self._head += data[i : i + take]
            i += take
            if len(self._head) < want:
                return True  # the rest of the header comes in a later chunk
            if want == 2:
                if not self._head[1] & 0x80:
                    return False
                continue  # now the full header length is known
            self._skip = _payload_length(self._head)
            self._head.clear()
        return True


def _header_length(head: bytearray) -> int:
    length = head[1] & 0x7F
    extra = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extra + 4  # masked: four mask bytes follow the length


def _payload_length(head: bytearray) -> int:
    length = head[1] & 0x7F
    if length == 126:
        return int(struct.unpack(">H", bytes(head[2:4]))[0])
    if length == 127:
        return int(struct.unpack(">Q", bytes(head[2:10]))[0])
    return length


class _GuardedSite(web.TCPSite):
    def __init__(self, guard: ConnectionGuard, runner: web.AppRunner, host: str, port: int) -> None:
        super().__init__(runner, host, port)
        self._guard = guard

    async def start(self) -> None:
        # TCPSite.start with the protocol factory wrapped; the rest is BaseSite's.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server), self._host, self._port, backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port
        )
        sockets = self._server.sockets or ()
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
