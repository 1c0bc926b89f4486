"""``paintwire serve -v`` logs every job: a line when it starts and one when it ends, with
its client (quoted), mode, engine, model, outcome and time. Driven through the real
server process with the classical engine and a test engine whose jobs run until cancelled."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from helpers import inpaint_request, rect_mask, scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server_process import start_server_process  # noqa: E402

from paintwire.protocol import Cancelled, Client, Error, JobRequest, Queued, Result, Started  # noqa: E402

NAME = "log\ntest \x1b[31mred"  # a newline and an escape sequence: the log must quote them
QUOTED = re.escape(repr(NAME))
SECONDS = r"\d+\.\d\d s"


@pytest.fixture(scope="module")
def server():
    proc = start_server_process(engines=["classical", "fixtures.hold_engine:HoldEngine"])
    yield proc
    proc.stop()


def wait_for_line(server, pattern: str, timeout: float = 15.0) -> str:
    """The first log line matching ``pattern``; fails with the log when none comes in time."""
    deadline = time.monotonic() + timeout
    compiled = re.compile(pattern)
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if compiled.search(line):
                return line
        time.sleep(0.02)
    pytest.fail(f"no log line matches {pattern!r}:\n{server.log()[-4000:]}")


def next_event(client: Client, kind: type, ref: int | None = None, job: str | None = None):
    for event in client.events(timeout=15):
        if isinstance(event, kind) and (ref is None or event.ref == ref) and (job is None or event.job == job):
            return event


def test_each_job_is_logged_at_its_start_and_end_with_client_mode_engine_model_outcome_and_time(server):
    with Client(server.url, name=NAME, shared_memory=False) as client:
        peer = wait_for_line(server, rf"client {QUOTED} connected from \S+$").rsplit(" ", 1)[1]
        who = rf"client {QUOTED} from {re.escape(peer)}"

        request = inpaint_request(scene(64, 48), rect_mask(64, 48, 10, 10, 20, 20), method="telea")
        done = client.run(JobRequest(request.engine, request.mode, request.image, request.mask, "opencv", request.params))
        assert isinstance(done, Result)
        inpaint = rf"{who}, inpaint on classical with 'opencv'$"
        start = wait_for_line(server, rf"job {done.job} started after {SECONDS} queued: {inpaint}")
        wait_for_line(server, rf"job {done.job} done after {SECONDS}: {inpaint}")
        assert " INFO paintwire.server.job_log: " in start

        # A job that runs until cancelled, one queued behind it and cancelled there, then the first cancelled.
        client.submit(JobRequest("hold", "hold"))
        held = next_event(client, Started).job
        behind = next_event(client, Queued, ref=client.submit(JobRequest("hold", "hold"))).job
        client.cancel(behind)
        next_event(client, Cancelled, job=behind)
        client.cancel(held)
        next_event(client, Cancelled, job=held)
        hold = rf"{who}, hold on hold with the default model$"
        wait_for_line(server, rf"job {held} started after {SECONDS} queued: {hold}")
        wait_for_line(server, rf"job {held} cancelled after {SECONDS}: {hold}")
        wait_for_line(server, rf"job {behind} cancelled in the queue after {SECONDS}: {hold}")
        assert not re.search(rf"job {behind} started", server.log())

        client.submit(JobRequest("hold", "hold", params={"fail": True}))
        failed = next_event(client, Error)
        assert failed.code.value == "engine_failed"
        wait_for_line(server, rf"job {failed.job} error engine_failed after {SECONDS}: {hold}")
    # A client that leaves: its running job is cancelled, its queued one dropped.
    with Client(server.url, name="leaver", shared_memory=False) as client:
        client.submit(JobRequest("hold", "hold"))
        running = next_event(client, Started).job
        waiting = next_event(client, Queued, ref=client.submit(JobRequest("hold", "hold"))).job
    hold = r"client 'leaver' from \S+, hold on hold with the default model$"
    wait_for_line(server, rf"job {running} cancelled after {SECONDS}: {hold}")
    wait_for_line(server, rf"job {waiting} dropped \(the client left\) in the queue after {SECONDS}: {hold}")
    # The client's name forged no line and sent no escape sequence to the operator's terminal.
    assert not any(line.startswith("test ") for line in server.log().splitlines())
    assert "\x1b" not in server.log()
