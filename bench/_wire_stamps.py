"""`paintwire serve` with time stamps on its submit path, for bench/wire.py.

    python bench/_wire_stamps.py STAMPS_FILE serve --config ... -v

Wraps the functions a shared-memory submit passes through (frame in, session,
blob header, segment reads, message reading, job check, answer, send) and
appends ``name time`` lines to STAMPS_FILE, ``time`` being ``time.perf_counter()``:
CLOCK_MONOTONIC on Linux, the same clock in every process, so the bench lines
these up with its own stamps. The server is otherwise the real one.
"""

from __future__ import annotations

import functools
import sys
from time import perf_counter
from typing import Any, Callable

from aiohttp import web

import paintwire.protocol.codec as codec
import paintwire.protocol.shm as shm
import paintwire.server.connections as connections
import paintwire.server.session as session
from paintwire.cli.main import main

_stamps: list[tuple[str, float]] = []
_out: Any = None


def stamp(name: str) -> None:
    _stamps.append((name, perf_counter()))


def flush() -> None:
    _out.write("".join(f"{name} {t:.7f}\n" for name, t in _stamps))
    _out.flush()
    _stamps.clear()


def wrap(owner: Any, attr: str, name: str) -> None:
    """``owner.attr`` stamps ``name>`` when called and ``name<`` when it returns or raises."""
    inner: Callable[..., Any] | None = getattr(owner, attr, None)
    if inner is None:  # an older server without this step: its time counts in the step around it
        return

    @functools.wraps(inner)
    def stamped(*args: Any, **kwargs: Any) -> Any:
        stamp(name + ">")
        try:
            return inner(*args, **kwargs)
        finally:
            stamp(name + "<")

    setattr(owner, attr, stamped)


def install() -> None:
    wrap(session.Session, "_handle", "handle")  # returns after the message's buffers are freed
    wrap(codec, "split", "split")
    wrap(shm, "read_segment", "read_segment")
    wrap(shm, "new_buffer", "new_buffer")
    wrap(codec, "_read", "from_wire")
    wrap(session, "check_job", "check_job")
    wrap(session.Session, "emit", "emit")

    frame_in = connections.GuardedProtocol.data_received

    def data_received(self: connections.GuardedProtocol, data: bytes) -> None:
        stamp("data_received")
        frame_in(self, data)

    connections.GuardedProtocol.data_received = data_received  # type: ignore[method-assign]
    send_bytes = web.WebSocketResponse.send_bytes

    async def send(self: web.WebSocketResponse, data: bytes, *args: Any, **kwargs: Any) -> None:
        stamp("send>")
        await send_bytes(self, data, *args, **kwargs)
        stamp("send<")
        flush()  # after the answer left: the file write is not on the path measured

    web.WebSocketResponse.send_bytes = send  # type: ignore[method-assign]


if __name__ == "__main__":
    _out = open(sys.argv.pop(1), "a", encoding="ascii")
    install()
    sys.exit(main(sys.argv[1:]))
