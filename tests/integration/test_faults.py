"""Faults: a client vanishing mid-job, cancel storms, an engine raising, out of memory.

After each fault the server keeps serving the other clients, the queue keeps
moving and nothing is left behind: no job, no session, no queue lane.

An out-of-memory cannot be produced for real here, so these tests run the
real server in process with one extra engine, ``FaultyEngine``, that raises
on request; every other part (aiohttp app, sessions, scheduler, worker
thread, protocol) is the real one. The last test drives the real
``paintwire serve`` process with the classical engine only.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import numpy as np
import pytest
from websockets.asyncio.client import connect

from paintwire.protocol import (
    Cancelled,
    ClientConnection,
    Error,
    ErrorCode,
    JobRequest,
    ModeSpec,
    ParamSpec,
    ParamType,
    Queued,
    Result,
    Started,
    raw_image,
)
from paintwire.server.app import PaintwireServer, start_server
from paintwire.server.config import LimitsConfig, NetworkConfig, ServerConfig
from paintwire.server.engines.base import Engine, EngineJob, EngineOutput, JobContext
from paintwire.server.layers import OutputLayer
from paintwire.server.engines.classical import ClassicalEngine

WAIT = 30.0  # seconds any single event may take before the test gives up


class SimulatedOOM(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (the scheduler matches the name)."""


SimulatedOOM.__name__ = "OutOfMemoryError"


class FaultyEngine(Engine):
    """Test-only engine: steps with a short sleep each, then ends as told."""

    name = "faulty"
    label = "Faulty (tests only)"
    MODE = ModeSpec(
        "run", "Run", "Sleep through the steps, then behave as told.", needs_image=False, needs_mask=False,
        params=(
            ParamSpec("outcome", ParamType.CHOICE, "ok", "Outcome", "", choices=("ok", "raise", "memory", "gpu_memory")),
            ParamSpec("steps", ParamType.INT, 3, "Steps", "", minimum=1, maximum=1000),
            ParamSpec("step_seconds", ParamType.FLOAT, 0.005, "Step time", "", minimum=0.0, maximum=1.0),
        ),
    )

    def modes(self) -> tuple[ModeSpec, ...]:
        return (self.MODE,)

    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        steps = job.params["steps"]
        for i in range(1, steps + 1):
            time.sleep(job.params["step_seconds"])
            ctx.progress(i, steps, "faulting")
        outcome = job.params["outcome"]
        if outcome == "raise":
            raise ValueError("the engine broke")
        if outcome == "memory":
            raise MemoryError()
        if outcome == "gpu_memory":
            raise SimulatedOOM("CUDA out of memory. Tried to allocate 20.00 GiB")
        return EngineOutput([OutputLayer(np.zeros((4, 4, 4), np.uint8), 0, 0, "faulty")], 4, 4)


def faulty(outcome: str = "ok", steps: int = 3, step_seconds: float = 0.005) -> JobRequest:
    return JobRequest("faulty", "run", params={"outcome": outcome, "steps": steps, "step_seconds": step_seconds})


def classical_job(side: int = 64) -> JobRequest:
    image = raw_image(side, side, "rgba8", np.full((side, side, 4), 200, np.uint8).tobytes())
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4: side // 2, side // 4: side // 2] = 255
    return JobRequest("classical", "inpaint", image, raw_image(side, side, "l8", mask.tobytes()), params={"method": "telea"})


class Peer:
    """A test client on the event loop: the real ClientConnection over websockets."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.conn = ClientConnection()
        self.events: list[Any] = []

    async def hello(self) -> None:
        await self.ws.send(self.conn.hello("faults-test/1"))
        self.conn.receive(await asyncio.wait_for(self.ws.recv(), WAIT))

    async def submit(self, job: JobRequest) -> int:
        ref, frame = self.conn.submit(job)
        await self.ws.send(frame)
        return ref

    async def next(self) -> Any:
        message = self.conn.receive(await asyncio.wait_for(self.ws.recv(), WAIT))
        self.events.append(message)
        return message

    async def job_id(self, ref: int) -> str:
        while True:
            message = await self.next()
            if isinstance(message, Queued) and message.ref == ref:
                return message.job
            assert not (isinstance(message, Error) and message.ref == ref), message

    async def final(self, job_id: str) -> Any:
        while True:
            message = await self.next()
            if getattr(message, "job", None) == job_id and isinstance(message, (Result, Error, Cancelled)):
                return message

    async def run(self, job: JobRequest) -> Any:
        return await self.final(await self.job_id(await self.submit(job)))


@asynccontextmanager
async def serving(**limits: Any) -> AsyncIterator[tuple[PaintwireServer, str]]:
    cfg = ServerConfig(NetworkConfig(host="127.0.0.1", port=0), LimitsConfig(**limits), engines=[])
    runner, server, port = await start_server(cfg, engines=[ClassicalEngine(), FaultyEngine()])
    try:
        yield server, f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def peer(url: str) -> AsyncIterator[Peer]:
    async with connect(url, max_size=None, compression=None, proxy=None) as ws:
        p = Peer(ws)
        await p.hello()
        yield p


async def assert_nothing_left(server: PaintwireServer, sessions: int = 0) -> None:
    """No job, session or queue lane outlives its client (polled: sessions end on the loop)."""
    scheduler = server.scheduler
    assert scheduler is not None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if not scheduler.jobs and scheduler.running is None and len(server.sessions) == sessions:
            break
        await asyncio.sleep(0.02)
    assert scheduler.jobs == {}
    assert scheduler.running is None
    assert scheduler.status()["queued"] == 0
    assert len(server.sessions) == sessions
    if sessions == 0:
        # Every per-owner table of the queue is empty once its owners are gone.
        for name, value in vars(scheduler.queue).items():
            if isinstance(value, (dict, list, set)):
                assert not value, f"FairQueue.{name} still holds {value!r}"


@pytest.mark.parametrize(
    "outcome, code",
    [("raise", ErrorCode.ENGINE_FAILED), ("memory", ErrorCode.OUT_OF_MEMORY), ("gpu_memory", ErrorCode.OUT_OF_MEMORY)],
)
async def test_engine_failure_ends_only_that_job(outcome, code):
    async with serving() as (server, url):
        async with peer(url) as a, peer(url) as b:
            ref_a = await a.submit(faulty(outcome, steps=5))
            ref_b = await b.submit(classical_job())
            failed = await a.final(await a.job_id(ref_a))
            assert isinstance(failed, Error) and failed.code is code, failed
            assert failed.message
            assert isinstance(await b.final(await b.job_id(ref_b)), Result)
            # The same client goes on: the worker thread survived the exception.
            assert isinstance(await a.run(faulty("ok")), Result)
            assert isinstance(await a.run(classical_job()), Result)
            await assert_nothing_left(server, sessions=2)
        await assert_nothing_left(server)


async def test_client_vanishing_mid_job():
    async with serving() as (server, url):
        async with peer(url) as b:
            a_ws = await connect(url, max_size=None, compression=None, proxy=None)
            a = Peer(a_ws)
            await a.hello()
            running = await a.job_id(await a.submit(faulty(steps=100, step_seconds=0.05)))
            for _ in range(3):
                await a.job_id(await a.submit(faulty(steps=100, step_seconds=0.05)))
            while not any(isinstance(m, Started) and m.job == running for m in a.events):
                await a.next()
            a_ws.transport.abort()  # no close frame: the client is just gone
            # B's job runs next: the running job stopped within a step and A's queue was dropped.
            assert isinstance(await b.run(classical_job()), Result)
            assert isinstance(await b.run(faulty()), Result)
            await assert_nothing_left(server, sessions=1)
        await assert_nothing_left(server)
        assert server.scheduler.status()["completed"] == 3  # A's running job, and B's two


async def test_cancel_storm():
    async with serving(max_queued_per_client=8) as (server, url):
        async with peer(url) as a, peer(url) as b:
            refs = [await a.submit(faulty(steps=100, step_seconds=0.05)) for _ in range(8)]  # at the per-client limit
            ids = [await a.job_id(ref) for ref in refs]
            b_ref = await b.submit(classical_job())
            # Every job cancelled many times over, plus ids that never existed, without waiting.
            storm = [a.conn.cancel(job) for _ in range(20) for job in ids] + [a.conn.cancel(f"nope{i}") for i in range(50)]
            for frame in storm:
                await a.ws.send(frame)
            ended: dict[str, Any] = {}
            while len(ended) < len(ids):
                message = await a.next()
                if isinstance(message, (Cancelled, Result)):
                    ended[message.job] = message
                elif isinstance(message, Error):
                    assert message.code is ErrorCode.UNKNOWN_JOB, message
            assert all(isinstance(m, Cancelled) for m in ended.values())
            # Frames are handled in order: once this job ends, every cancel was answered.
            assert isinstance(await a.run(faulty()), Result)  # the queue keeps moving for A too
            errors = [m for m in a.events if isinstance(m, Error)]
            assert all(m.code is ErrorCode.UNKNOWN_JOB for m in errors)
            # Cancels of a job that is over (or never was) are refused; a cancel of the
            # running job is answered by its one Cancelled event when it stops.
            assert len(storm) - 20 - len(ids) <= len(errors) <= len(storm) - len(ids)
            assert isinstance(await b.final(await b.job_id(b_ref)), Result)
            await assert_nothing_left(server, sessions=2)
        await assert_nothing_left(server)


async def test_many_clients_coming_and_going():
    """Connections opened and dropped in every state leave nothing behind."""
    async with serving() as (server, url):
        for i in range(12):
            ws = await connect(url, max_size=None, compression=None, proxy=None)
            p = Peer(ws)
            if i % 3:
                await p.hello()
                if i % 3 == 2:
                    await p.job_id(await p.submit(faulty(steps=50, step_seconds=0.01)))
            if i % 2:
                ws.transport.abort()
            else:
                await ws.close()
        async with peer(url) as b:
            assert isinstance(await b.run(faulty()), Result)
            await assert_nothing_left(server, sessions=1)
        await assert_nothing_left(server)


def _info(server: Any) -> dict:
    with urllib.request.urlopen(f"{server.http}/info", timeout=WAIT) as response:
        return json.loads(response.read())


def test_real_server_after_faults(start_server):
    """The real `paintwire serve`: vanishing clients and cancels leave an idle queue."""
    from paintwire.protocol import Client

    server = start_server()
    big = classical_job(1024)
    big = JobRequest(big.engine, big.mode, big.image, raw_image(1024, 1024, "l8", bytes([255]) * (1024 * 1024)), params={"method": "fill"})
    for _ in range(3):
        gone = Client(server.url, name="vanishing")
        gone.connect()
        for _ in range(3):
            gone.submit(big)
        gone._ws.socket.close()  # the socket just goes away
    with Client(server.url) as client:
        ref = client.submit(big)
        job_id = None
        for message in client.events(WAIT):
            if isinstance(message, Queued) and message.ref == ref:
                job_id = message.job
                client.cancel(job_id)
            if isinstance(message, (Cancelled, Result)) and message.job == job_id:
                break
        assert isinstance(client.run(classical_job(), timeout=WAIT), Result)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        info = _info(server)
        if info["queue"]["queued"] == 0 and not info["queue"]["running"] and info["clients"] == 0:
            break
        time.sleep(0.05)
    assert info["queue"]["queued"] == 0 and info["queue"]["running"] is False, info
    assert info["clients"] == 0, info
    with Client(server.url) as client:  # and it still serves
        assert isinstance(client.run(classical_job(), timeout=WAIT), Result)
