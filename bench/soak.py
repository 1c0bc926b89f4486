"""Soak: one real `paintwire serve` under a mix of good, slow, careless and hostile clients.

For the whole run, at once:
  - normal clients submit inpaints and upscales and read everything;
  - slow readers submit upscales, stop reading for a while, then read it all
    (every result must still arrive);
  - a client that never reads (the server must drop it after send_timeout);
  - clients that vanish mid-job (the socket is cut, no close frame);
  - cancel storms (a full queue, every job cancelled at once);
  - hostile bytes: text frames, garbage, unmasked frames, TCP connections that
    never send a request, upgraded connections that never send hello.

It prints the server's RSS and open file descriptors over time, jobs done,
and results lost: a job of a client that stayed connected that did not end
with exactly one result, error or cancelled. Lost must be 0; the exit code is
1 otherwise, or when file descriptors or memory did not come back.

    ./run bench soak                  # 3 minutes
    ./run bench soak --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from _common import machine, rss_kib, start_server_process, table
from paintwire.protocol import Cancelled, ClientConnection, Error, JobRequest, Queued, Result, raw_image

SEND_TIMEOUT = 10.0  # the soak's server drops a non-reader after this long
HELLO_TIMEOUT = 3.0
FINAL = (Result, Error, Cancelled)


@dataclass
class Tally:
    done: int = 0  # jobs that ended with a result
    cancelled: int = 0
    errors: int = 0
    lost: int = 0  # jobs of connected clients that never ended (or ended twice)
    dropped: int = 0  # never-reading clients the server cut off
    vanished: int = 0
    hostile: int = 0  # hostile connections the server closed
    notes: list[str] = field(default_factory=list)


def inpaint(side: int, seed: int) -> JobRequest:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (side, side, 4), dtype=np.uint8)
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4 : side // 2, side // 4 : side // 2] = 255
    return JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image.tobytes()), raw_image(side, side, "l8", mask.tobytes()),
                      params={"method": random.choice(["telea", "fill"])})


def upscale(side: int, scale: float = 2.0) -> JobRequest:
    image = np.full((side, side, 4), 128, np.uint8)
    image[::7, :, 0] = 255
    return JobRequest("classical", "upscale", raw_image(side, side, "rgba8", image.tobytes()), params={"scale": scale})


class Peer:
    """The real ClientConnection over an asyncio websocket; counts each job's finals."""

    def __init__(self, ws: Any, tally: Tally) -> None:
        self.ws, self.conn, self.tally = ws, ClientConnection(), tally
        self.finals: dict[str, int] = {}
        self.refs: dict[int, str | None] = {}

    @classmethod
    async def open(cls, url: str, tally: Tally, **options: Any) -> "Peer":
        ws = await connect(url, max_size=None, compression=None, proxy=None, open_timeout=30, **options)
        peer = cls(ws, tally)
        await ws.send(peer.conn.hello("soak/1"))
        peer.conn.receive(await ws.recv())
        return peer

    async def submit(self, job: JobRequest) -> int:
        ref, frame = self.conn.submit(job)
        self.refs[ref] = None
        await self.ws.send(frame)
        return ref

    async def read(self, timeout: float = 120.0) -> Any:
        message = self.conn.receive(await asyncio.wait_for(self.ws.recv(), timeout))
        if isinstance(message, Queued):
            self.refs[message.ref] = message.job
            self.finals.setdefault(message.job, 0)
        elif isinstance(message, Error) and message.job is None and message.ref is not None:
            self.refs.pop(message.ref, None)  # a refused submit (queue full): no job exists
        elif isinstance(message, FINAL) and message.job is not None:
            self.finals[message.job] = self.finals.get(message.job, 0) + 1
            if isinstance(message, Result):
                self.tally.done += 1
            elif isinstance(message, Cancelled):
                self.tally.cancelled += 1
            else:
                self.tally.errors += 1
        return message

    def open_jobs(self) -> int:
        return sum(1 for ref, job in self.refs.items() if job is None or self.finals.get(job, 0) == 0)

    async def drain(self, timeout: float = 300.0) -> None:
        """Read until every job of this client has ended."""
        deadline = time.monotonic() + timeout
        while self.open_jobs() and time.monotonic() < deadline:
            await self.read(deadline - time.monotonic())

    def account(self) -> None:
        """Jobs that did not end exactly once are lost."""
        lost = self.open_jobs() + sum(1 for n in self.finals.values() if n > 1)
        if lost:
            self.tally.notes.append(f"{lost} lost on one connection")
        self.tally.lost += lost

    async def close(self) -> None:
        await self.ws.close()


async def normal_client(url: str, tally: Tally, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        peer = await Peer.open(url, tally)
        for _ in range(rng.randint(3, 10)):
            job = inpaint(rng.choice([128, 256, 384]), rng.randrange(1 << 30)) if rng.random() < 0.7 else upscale(rng.choice([256, 512]))
            await peer.submit(job)
            await peer.drain()
        peer.account()
        await peer.close()


async def slow_reader(url: str, tally: Tally, stop: float) -> None:
    while time.monotonic() < stop:
        peer = await Peer.open(url, tally, max_queue=1)
        for _ in range(4):
            await peer.submit(upscale(1024))  # 16 MiB results
        await asyncio.sleep(SEND_TIMEOUT * 0.6)  # reads nothing, but less than send_timeout
        await peer.drain()
        peer.account()
        await peer.close()


async def never_reader(url: str, tally: Tally, stop: float) -> None:
    while time.monotonic() < stop:
        peer = await Peer.open(url, tally, max_queue=1)
        for _ in range(6):
            await peer.submit(upscale(1024))
        try:
            await asyncio.wait_for(peer.ws.wait_closed(), SEND_TIMEOUT * 6)
            tally.dropped += 1
        except asyncio.TimeoutError:
            tally.notes.append("a client that never read was not dropped")
            tally.lost += 1
            await peer.ws.close()


async def vanishing_client(url: str, tally: Tally, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        peer = await Peer.open(url, tally)
        for _ in range(rng.randint(1, 4)):
            await peer.submit(upscale(1024) if rng.random() < 0.5 else inpaint(256, rng.randrange(1 << 30)))
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        peer.ws.transport.abort()  # gone, without a close frame
        tally.vanished += 1
        await asyncio.sleep(rng.uniform(0.5, 3.0))


async def cancel_storm(url: str, tally: Tally, stop: float) -> None:
    while time.monotonic() < stop:
        peer = await Peer.open(url, tally)
        for _ in range(8):
            await peer.submit(upscale(512))
        while any(job is None for job in peer.refs.values()):
            await peer.read()
        for job in list(peer.refs.values()):
            if job is not None and peer.finals.get(job, 0) == 0:
                await peer.ws.send(peer.conn.cancel(job))
        # A cancel may cross the job's own result: unknown_job errors then, and that is fine.
        await peer.drain()
        peer.account()
        await peer.close()
        await asyncio.sleep(2.0)


def _handshake(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            break
        response += chunk
    return sock


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True
    finally:
        sock.close()


def _hostile_round(host: str, port: int) -> int:
    """One of each hostile connection; returns how many the server closed by itself."""
    closed = 0
    idle = socket.create_connection((host, port), timeout=10)  # never sends a request
    closed += _closed_by_server(idle, HELLO_TIMEOUT * 3)
    silent = _handshake(host, port)  # upgraded, never says hello
    closed += _closed_by_server(silent, HELLO_TIMEOUT * 3)
    unmasked = _handshake(host, port)
    unmasked.sendall(bytes([0x82, 3]) + b"abc")  # a binary frame without the mask bit
    closed += _closed_by_server(unmasked, 10)
    garbage = _handshake(host, port)
    mask = os.urandom(4)
    payload = os.urandom(200)
    garbage.sendall(bytes([0x82, 0x80 | len(payload) if len(payload) < 126 else 0xFE]) + (struct.pack(">H", len(payload)) if len(payload) >= 126 else b"")
                    + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    closed += _closed_by_server(garbage, HELLO_TIMEOUT * 3)  # not hello: answered, then closed at the deadline
    return closed


async def hostile_client(host: str, port: int, tally: Tally, stop: float) -> None:
    while time.monotonic() < stop:
        closed = await asyncio.to_thread(_hostile_round, host, port)
        tally.hostile += closed
        if closed < 4:
            tally.notes.append(f"a hostile round left {4 - closed} connection(s) open")
        await asyncio.sleep(1.0)


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def sample(pid: int, tally: Tally, start: float, stop: float, every: float, rows: list[list[Any]]) -> None:
    while time.monotonic() < stop:
        await asyncio.sleep(min(every, max(0.1, stop - time.monotonic())))
        rss = rss_kib(pid)
        rows.append([f"{time.monotonic() - start:.0f} s", f"{rss['VmRSS'] / 1024:.0f}", fds(pid), tally.done, tally.cancelled, tally.dropped, tally.lost])
        print(f"  {rows[-1][0]:>7}  rss {rows[-1][1]:>5} MiB  fds {rows[-1][2]:>4}  done {tally.done}  cancelled {tally.cancelled}  "
              f"dropped {tally.dropped}  lost {tally.lost}", flush=True)


async def soak(url: str, host: str, port: int, pid: int, seconds: float, every: float) -> tuple[Tally, list[list[Any]]]:
    tally, rows = Tally(), []
    start = time.monotonic()
    stop = start + seconds
    tasks = [
        *(normal_client(url, tally, stop, seed) for seed in range(3)),
        slow_reader(url, tally, stop),
        never_reader(url, tally, stop),
        *(vanishing_client(url, tally, stop, 100 + seed) for seed in range(2)),
        cancel_storm(url, tally, stop),
        hostile_client(host, port, tally, stop),
        sample(pid, tally, start, stop, every, rows),
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            tally.notes.append(f"a client failed: {type(result).__name__}: {result}")
            tally.lost += 1
    return tally, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to run (default 3)")
    parser.add_argument("--every", type=float, default=0.0, help="seconds between samples (default: 20 samples per run)")
    args = parser.parse_args()
    seconds = args.minutes * 60
    every = args.every or max(5.0, seconds / 20)
    server = start_server_process(send_timeout=SEND_TIMEOUT, hello_timeout=HELLO_TIMEOUT, max_unsent_bytes=32 << 20)
    try:
        pid = server.process.pid
        time.sleep(1.0)
        base_rss, base_fds = rss_kib(pid)["VmRSS"], fds(pid)
        print(f"Soak: {args.minutes:g} minutes against {server.url}\n{machine()}")
        print(f"  baseline rss {base_rss / 1024:.0f} MiB, fds {base_fds}", flush=True)
        tally, rows = asyncio.run(soak(server.url, server.host, server.port, pid, seconds, every))
        time.sleep(5.0)  # every client has left: memory and descriptors should come back
        end = rss_kib(pid)
        end_rss, end_fds, peak = end["VmRSS"], fds(pid), end["VmHWM"]
    finally:
        server.stop()
    table(
        f"Soak over {args.minutes:g} minutes: server RSS (MiB) and open file descriptors over time",
        ["time", "RSS MiB", "fds", "jobs done", "cancelled", "non-readers dropped", "results lost"],
        rows,
    )
    rss_back = end_rss <= base_rss + 100 * 1024
    table(
        "Soak summary",
        ["measure", "value"],
        [
            ["jobs done (results)", tally.done],
            ["jobs cancelled / ended with an error", f"{tally.cancelled} / {tally.errors}"],
            ["clients that vanished mid-job", tally.vanished],
            ["non-reading clients dropped", tally.dropped],
            ["hostile connections closed by the server", tally.hostile],
            ["results lost", tally.lost],
            ["RSS baseline / peak / 5 s after the end (MiB)", f"{base_rss / 1024:.0f} / {peak / 1024:.0f} / {end_rss / 1024:.0f}"],
            ["fds baseline / 5 s after the end", f"{base_fds} / {end_fds}"],
        ],
    )
    for note in tally.notes[:20]:
        print(f"note: {note}")
    ok = tally.lost == 0 and end_fds <= base_fds and rss_back
    print("\nOK" if ok else "\nFAILED: results lost, descriptors left open or memory not returned")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
