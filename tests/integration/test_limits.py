"""The server's limits, each with a clear error: message size, image pixels,
queue length per client, steps and batch size."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from paintwire.protocol import (
    Client,
    ClientConnection,
    Error,
    ErrorCode,
    JobFailed,
    JobRequest,
    ModeSpec,
    ParamSpec,
    ParamType,
    ProtocolError,
    Queued,
    Result,
    check_job,
    raw_image,
)
from paintwire.server.app import PaintwireServer
from paintwire.server.config import ConfigError, LimitsConfig, ServerConfig, load_config
from paintwire.server.engines.base import Engine

WAIT = 30.0


def inpaint_job(side: int, height: int | None = None, method: str = "fill", radius: int = 5, hole: int | None = None) -> JobRequest:
    height = height or side
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, side, 4), dtype=np.uint8)
    mask = np.zeros((height, side), np.uint8)
    h = hole or max(1, side // 4)
    mask[(height - h) // 2:(height + h) // 2, (side - h) // 2:(side + h) // 2] = 255
    return JobRequest(
        "classical", "inpaint", raw_image(side, height, "rgba8", image.tobytes()), raw_image(side, height, "l8", mask.tobytes()),
        params={"method": method, "radius": radius},
    )


def raw_connection(url: str):
    ws = connect(url, legacy=True, compression=None, proxy=None, max_size=None)
    conn = ClientConnection()
    ws.send(conn.hello("limits-test/1"))
    conn.receive(ws.recv(timeout=WAIT))
    return ws, conn


# --- message size ------------------------------------------------------------------------


def test_message_over_the_limit_closes_only_that_connection(start_server):
    server = start_server(max_message_bytes=200_000)
    with Client(server.url) as bystander:
        ws, _ = raw_connection(server.url)
        ws.send(msgpack.packb({"type": "cancel", "job": "x", "pad": bytes(300_000)}))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=WAIT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # "message too big"
        ws.close()
        # The other client never noticed.
        assert isinstance(bystander.run(inpaint_job(64), timeout=WAIT), Result)


def test_the_log_names_the_limit_a_frame_broke(start_server):
    """The server's log states its own limit (inclusive), not the one past it that the
    websocket library is given to make the limit inclusive."""
    limit = 200_000
    server = start_server(max_message_bytes=limit)
    ws, _ = raw_connection(server.url)
    ws.send(msgpack.packb({"type": "cancel", "job": "x", "pad": bytes(300_000)}))
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=WAIT)
    ws.close()
    deadline = time.monotonic() + WAIT
    while "over the limit" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the child's log for a line, with a deadline that fails the test
    line = next((l for l in server.log().splitlines() if "over the limit" in l), "")
    assert f"limit of {limit} bytes" in line, server.log()
    assert str(limit + 1) not in server.log()


def test_message_at_the_limit_is_read(start_server):
    limit = 200_000
    server = start_server(max_message_bytes=limit)
    ws, conn = raw_connection(server.url)
    with ws:
        frame = msgpack.packb({"type": "cancel", "job": "x", "pad": b""})
        frame = msgpack.packb({"type": "cancel", "job": "x", "pad": bytes(limit - len(frame) - 3)})  # bin 8 -> bin 32 header: 3 more bytes
        assert len(frame) == limit
        ws.send(frame)
        answer = conn.receive(ws.recv(timeout=WAIT))
        assert isinstance(answer, Error) and answer.code is ErrorCode.UNKNOWN_JOB  # read and answered, not closed


def test_client_refuses_to_send_a_job_over_the_limit(start_server):
    server = start_server(max_message_bytes=200_000)
    with Client(server.url) as client:
        with pytest.raises(JobFailed) as info:
            client.run(inpaint_job(256), timeout=WAIT)  # 256 KiB of RGBA alone
        assert info.value.error.code is ErrorCode.TOO_LARGE
        assert "200000" in info.value.error.message
        assert isinstance(client.run(inpaint_job(64), timeout=WAIT), Result)  # the connection is fine


def test_text_frames_are_rejected_and_the_connection_goes_on(live_server):
    ws, conn = raw_connection(live_server.url)
    with ws:
        ws.send('{"type": "hello"}')
        answer = conn.receive(ws.recv(timeout=WAIT))
        assert isinstance(answer, Error) and answer.code is ErrorCode.BAD_FRAME
        ref, frame = conn.submit(inpaint_job(32))
        ws.send(frame)
        assert isinstance(conn.receive(ws.recv(timeout=WAIT)), Queued)


# --- pixels ----------------------------------------------------------------------------


def test_image_over_max_pixels(start_server):
    server = start_server(max_pixels=128 * 128)
    with Client(server.url) as client:
        with pytest.raises(JobFailed) as info:
            client.run(inpaint_job(129, 128), timeout=WAIT)
        error = info.value.error
        assert error.code is ErrorCode.TOO_LARGE and error.field == "job.image" and error.ref is not None
        assert isinstance(client.run(inpaint_job(128), timeout=WAIT), Result)
        # An upscale whose output would be over the limit is refused too.
        big = inpaint_job(128)
        with pytest.raises(JobFailed) as info:
            client.run(JobRequest("classical", "upscale", big.image, params={"scale": 2.0}), timeout=WAIT)
        assert info.value.error.code is ErrorCode.INVALID_PARAM and info.value.error.field == "job.params.scale"


# --- queue -----------------------------------------------------------------------------


def test_queue_length_per_client(start_server):
    server = start_server(max_queued_per_client=2)
    slow = inpaint_job(256, method="telea", radius=16, hole=192)  # about a second each on a small CPU
    with Client(server.url) as greedy, Client(server.url) as other:
        refs = [greedy.submit(slow) for _ in range(4)]
        accepted, refused = [], []
        while len(accepted) + len(refused) < len(refs):
            message = next(greedy.events(WAIT))
            if isinstance(message, Queued) and message.job not in accepted:
                accepted.append(message.job)
            elif isinstance(message, Error) and message.ref in refs:
                assert message.code is ErrorCode.QUEUE_FULL, message
                assert "2 jobs waiting" in message.message
                refused.append(message.ref)
        assert refused and 2 <= len(accepted) <= 3
        # Another client is not limited by the first one's queue.
        other_ref = other.submit(inpaint_job(32))
        assert any(isinstance(m, Queued) and m.ref == other_ref for m in [next(other.events(WAIT))])
        for job in accepted:
            greedy.cancel(job)


# --- steps and batch size ------------------------------------------------------------------


class StepsEngine(Engine):
    """Advertises generous steps and batch ranges, as a diffusion engine does."""

    name = "stepper"
    label = "Stepper"

    def modes(self):
        return (
            ModeSpec("gen", "Generate", "", needs_image=False, needs_mask=False, params=(
                ParamSpec("steps", ParamType.INT, 200, "Steps", "", minimum=1, maximum=1000),
                ParamSpec("batch_size", ParamType.INT, 1, "Batch", "", minimum=1, maximum=64),
                ParamSpec("strength", ParamType.FLOAT, 0.5, "Strength", "", minimum=0.0, maximum=1.0),
            )),
        )

    def run(self, job, ctx):  # pragma: no cover - never run
        raise AssertionError


def test_steps_and_batch_are_capped_by_the_configuration():
    server = PaintwireServer(ServerConfig(limits=LimitsConfig(max_steps=50, max_batch=4)), engines=[StepsEngine()])
    mode = server.capabilities.engine("stepper").mode("gen")
    specs = {p.name: p for p in mode.params}
    assert specs["steps"].maximum == 50 and specs["steps"].default == 50  # a default over the cap comes down to it
    assert specs["batch_size"].maximum == 4 and specs["batch_size"].default == 1
    assert specs["strength"].maximum == 1.0
    ok = check_job(JobRequest("stepper", "gen", params={"steps": 50, "batch_size": 4}), server.capabilities)
    assert ok.params["steps"] == 50
    for params, field in (({"steps": 51}, "job.params.steps"), ({"batch_size": 5}, "job.params.batch_size")):
        with pytest.raises(ProtocolError) as info:
            check_job(JobRequest("stepper", "gen", params=params), server.capabilities)
        assert info.value.code is ErrorCode.INVALID_PARAM and info.value.field == field
        assert "at most" in info.value.message


def test_limit_settings_are_validated():
    config = load_config(env={"PAINTWIRE_MAX_STEPS": "80", "PAINTWIRE_MAX_BATCH": "2"})
    assert (config.limits.max_steps, config.limits.max_batch) == (80, 2)
    for env in ({"PAINTWIRE_MAX_STEPS": "0"}, {"PAINTWIRE_MAX_BATCH": "-1"}, {"PAINTWIRE_MAX_MESSAGE_BYTES": "10"}):
        with pytest.raises(ConfigError):
            load_config(env=env)
