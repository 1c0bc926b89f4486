"""Queue, cancel, disconnect and isolation between clients, through the real server."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from helpers import RawConnection, inpaint_request, rect_mask, scene

from paintwire.protocol import Cancel, Client, JobCancelled, Submit, encode


def long_request():
    """A fill of a 2048x2048 hole with the striped picture around it as context:
    eight cancellable passes, over a second of work."""
    img = np.zeros((2100, 2100, 4), np.uint8)
    img[..., 3] = 255
    img[::7, :, 0] = 255
    mask = rect_mask(2100, 2100, 20, 20, 2048, 2048)
    return inpaint_request(img, mask, method="fill", mask_blur=0, padding=20)


def short_request():
    return inpaint_request(scene(), rect_mask(160, 120, 10, 10, 20, 20))


def wait_for_idle(server, limit: float = 30.0) -> dict:
    """Poll /info until nothing is queued or running (bounded); returns the last status."""
    deadline = time.monotonic() + limit
    while True:
        with urllib.request.urlopen(server.http + "/info", timeout=10) as r:
            status = json.load(r)
        if (status["queue"]["queued"] == 0 and not status["queue"]["running"]) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def until(conn: RawConnection, kind: str, job: str | None = None):
    """Messages up to and including the first of ``kind`` (for ``job``, if given)."""
    seen = []
    while True:
        msg = conn.recv()
        seen.append(msg)
        if msg.TYPE == kind and (job is None or getattr(msg, "job", None) == job):
            return seen


def test_cancel_a_running_job_stops_it_and_the_server_goes_on(live_server):
    with RawConnection(live_server.url) as conn:
        conn.send(encode(Submit(1, long_request())))
        queued = conn.recv()
        assert queued.TYPE == "queued" and queued.ref == 1
        assert conn.recv().TYPE == "started"
        conn.send(encode(Cancel(queued.job)))
        seen = until(conn, "cancelled", queued.job)
        assert not any(m.TYPE == "result" for m in seen)
        # Within a step: at most a pass or two of the eight after the cancel.
        steps = [m.step for m in seen if m.TYPE == "progress"]
        assert len(steps) < 8
        conn.send(encode(Submit(2, short_request())))
        assert until(conn, "result")[-1].TYPE == "result"


def test_cancel_a_queued_job_at_once(live_server):
    with RawConnection(live_server.url) as conn:
        conn.send(encode(Submit(1, long_request())))
        first = conn.recv()
        conn.send(encode(Submit(2, short_request())))
        seen = until(conn, "queued")
        second = [m for m in seen if m.TYPE == "queued" and m.ref == 2][0]
        assert second.position == 0  # next after the running one
        conn.send(encode(Cancel(second.job)))
        seen = until(conn, "cancelled", second.job)
        # The long job was still running when the queued one was cancelled.
        assert not any(m.TYPE == "result" and m.job == first.job for m in seen)
        conn.send(encode(Cancel(first.job)))
        until(conn, "cancelled", first.job)


def test_cancel_of_an_unknown_or_foreign_job_is_an_error(live_server):
    with RawConnection(live_server.url) as owner, RawConnection(live_server.url) as other:
        owner.send(encode(Submit(1, long_request())))
        job = owner.recv().job
        other.send(encode(Cancel(job)))
        err = other.recv()
        assert (err.TYPE, err.code.value, err.job) == ("error", "unknown_job", None)
        owner.send(encode(Cancel(job)))
        until(owner, "cancelled", job)


def test_a_client_that_disconnects_mid_job_has_its_jobs_cancelled(live_server):
    conn = RawConnection(live_server.url)
    conn.send(encode(Submit(1, long_request())))
    conn.send(encode(Submit(2, long_request())))
    until(conn, "started")
    conn.close()
    status = wait_for_idle(live_server)
    assert status["queue"]["queued"] == 0 and not status["queue"]["running"]
    with Client(live_server.url) as client:
        assert client.run(short_request()).layers


def test_two_clients_at_once_get_only_their_own_events(live_server):
    """Each Client's state machine rejects any event for a job it does not own,
    so cross-talk would fail the run; the results must also match their inputs."""
    outcomes: dict[str, object] = {}

    def work(name: str, x: int) -> None:
        try:
            with Client(live_server.url, name=name) as client:
                layers = []
                for _ in range(4):
                    req = inpaint_request(scene(), rect_mask(160, 120, x, 20, 16, 16), mask_blur=0)
                    layers.append(client.run(req).layers[0])
                outcomes[name] = layers
        except Exception as exc:  # reported by the assertion below
            outcomes[name] = exc

    threads = [threading.Thread(target=work, args=(f"client-{x}", x)) for x in (10, 100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for x in (10, 100):
        layers = outcomes[f"client-{x}"]
        assert isinstance(layers, list), layers
        assert all((layer.x, layer.y) == (x, 20) for layer in layers)


def queued_positions(conn: RawConnection, count: int) -> dict[int, int]:
    """Read until ``count`` queued events arrived (skipping the running job's
    progress); returns each ref's latest position."""
    positions: dict[int, int] = {}
    seen = 0
    while seen < count:
        msg = conn.recv()
        if msg.TYPE == "queued":
            positions[msg.ref] = msg.position
            seen += 1
    return positions


def test_the_queue_is_fair_between_clients(live_server):
    with RawConnection(live_server.url) as busy, RawConnection(live_server.url) as other:
        busy.send(encode(Submit(1, long_request())))
        running = busy.recv().job
        for ref in (2, 3, 4):
            busy.send(encode(Submit(ref, short_request())))
        assert queued_positions(busy, 3) == {2: 0, 3: 1, 4: 2}
        other.send(encode(Submit(1, short_request())))
        # The busy client is being served already, so the newcomer goes first
        # and the busy client's waiting jobs each move back by one.
        assert queued_positions(other, 1) == {1: 0}
        assert queued_positions(busy, 3) == {2: 1, 3: 2, 4: 3}
        busy.send(encode(Cancel(running)))
        until(other, "result")


def test_the_client_library_raises_job_cancelled(live_server):
    with Client(live_server.url) as client:
        def cancel_on_start(event):
            if event.TYPE == "started":
                client.cancel(event.job)
        with pytest.raises(JobCancelled):
            client.run(long_request(), on_event=cancel_on_start)
        assert client.run(short_request()).layers


def test_stopping_the_server_tells_clients_about_their_jobs(start_server):
    server = start_server()
    with RawConnection(server.url) as conn:
        conn.send(encode(Submit(1, long_request())))
        conn.send(encode(Submit(2, short_request())))
        until(conn, "started")
        server.process.terminate()
        errors = {}
        while len(errors) < 2:
            msg = conn.recv()
            if msg.TYPE == "error":
                errors[msg.job] = msg.code.value
        assert sorted(errors.values()) == ["shutting_down", "shutting_down"]
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                conn.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert server.process.wait(30) == 0
