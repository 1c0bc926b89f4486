"""Live streams through the real server and the real client, on a tiny SD1.5 model:
frames follow states, superseded states are dropped and counted, a stream never
starves another client's job, and bad input or a vanishing client leaves the
server healthy."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import numpy as np
import pytest
from diffusion_fixtures import diffusers_server, hf_cache_dir, tiny_models_dir  # noqa: F401
from helpers import RawConnection, mask_payload, rgba_payload, scene, wait_for_running_job
from server_process import start_server_process

from fixtures.tiny_models import SD15
from paintwire.protocol import Client, ErrorCode, ImagePayload, JobRequest, PixelFormat, encode
from paintwire.protocol.live import (
    MAX_STREAMS_PER_CLIENT,
    LiveApply,
    LiveError,
    LiveFrame,
    LiveStart,
    LiveStarted,
    LiveState,
    LiveStop,
    LiveStopped,
)

W = H = 64
PARAMS = {"prompt": "a red apple", "steps": 2, "strength": 1.0, "exact_steps": True}


@pytest.fixture()
def client(diffusers_server):
    with Client(diffusers_server.url, name="live-test", timeout=120) as c:
        yield c


def start(client: Client, stream: int = 1, **params) -> LiveStarted:
    client.live(LiveStart(stream, "diffusers", "img2img", SD15, {**PARAMS, **params}))
    return expect(client, LiveStarted)


def expect(client: Client, kind: type, timeout: float = 120):
    """The next live message of ``kind`` (other live messages are a failure)."""
    for message in client.events(timeout):
        if isinstance(message, (LiveStarted, LiveFrame, LiveError, LiveStopped)):
            assert isinstance(message, kind), f"expected {kind.__name__}, got {message}"
            return message
    raise AssertionError("unreachable")


def state(seq: int, image: np.ndarray, stream: int = 1, x: int = 0, y: int = 0, **params) -> LiveState:
    return LiveState(stream, seq, rgba_payload(image), None, x, y, params)


def pixels(frame: LiveFrame) -> np.ndarray:
    return np.frombuffer(frame.image.data, np.uint8).reshape(frame.image.height, frame.image.width, 4)


def painted(i: int) -> np.ndarray:
    """The scene with a stroke that grows with ``i``: a painting in progress."""
    img = scene(W, H)
    img[20:30, 4 : 8 + i % 50, :3] = (20, 200, 40)
    return img


def test_frames_follow_states_with_a_fixed_seed_and_changes_apply(client):
    started = start(client, seed=-1)
    assert started.seed is not None and started.seed >= 0  # picked once, reported
    client.live(state(1, painted(0), x=100, y=50))
    first = expect(client, LiveFrame)
    assert (first.seq, first.x, first.y, first.seed) == (1, 100, 50, started.seed)
    assert (first.image.width, first.image.height) == (W, H) and first.model_ms > 0 and first.run_ms >= first.model_ms
    client.live(state(2, painted(0), x=100, y=50))
    again = expect(client, LiveFrame)
    assert again.seq == 2 and again.seed == started.seed
    assert np.array_equal(pixels(first), pixels(again)), "the same state with the fixed seed must give the same frame"
    client.live(state(3, painted(30), x=100, y=50))
    assert not np.array_equal(pixels(expect(client, LiveFrame)), pixels(first)), "a painted change must change the frame"
    client.live(state(4, painted(0), x=100, y=50, prompt="a blue boat"))
    assert not np.array_equal(pixels(expect(client, LiveFrame)), pixels(first)), "a new prompt must change the frame"
    client.live(state(5, painted(0), x=100, y=50))  # the prompt stays changed
    kept = expect(client, LiveFrame)
    client.live(state(6, painted(0), x=100, y=50, seed=12345))
    reseeded = expect(client, LiveFrame)
    assert reseeded.seed == 12345 and not np.array_equal(pixels(reseeded), pixels(kept))
    client.live(LiveStop(1))
    assert expect(client, LiveStopped).reason == "requested"


def test_a_flood_of_states_is_answered_for_the_newest_and_every_other_is_counted_dropped(client):
    start(client)
    sent = 60
    for seq in range(1, sent + 1):
        client.live(state(seq, painted(seq)))  # without reading: the server must not queue them all
    frames = []
    while not frames or frames[-1].seq != sent:
        frames.append(expect(client, LiveFrame))
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len(frames) < sent / 2, f"the server worked on superseded states: {seqs}"
    assert frames[-1].dropped + len(frames) == sent, "every state is either made into a frame or counted as dropped"
    client.live(LiveStop(1))
    expect(client, LiveStopped)


def test_bad_states_get_clear_errors_and_the_stream_goes_on(client):
    start(client)
    bad_pixels = LiveState(1, 1, ImagePayload(W, H, PixelFormat.RGBA8, bytes(10)))
    client._send(encode(bad_pixels))  # the client library would not build it; a hostile one does
    error = expect(client, LiveError)
    assert (error.code, error.seq, error.field) == (ErrorCode.BAD_IMAGE, 1, "image.data")
    client.live(LiveState(1, 2, rgba_payload(painted(0)), mask_payload(np.zeros((H // 2, W), np.uint8))))
    assert (e := expect(client, LiveError)).code is ErrorCode.BAD_MASK and e.seq == 2
    client.live(state(3, painted(0), strength=5.0))
    assert (e := expect(client, LiveError)).code is ErrorCode.INVALID_PARAM and e.field == "params.strength" and e.seq == 3
    client.live(state(4, painted(0), stream=9))
    assert (e := expect(client, LiveError)).stream == 9 and e.code is ErrorCode.BAD_MESSAGE and "live_start" in e.message
    client.live(state(5, painted(0)))
    assert expect(client, LiveFrame).seq == 5, "the stream goes on after refused states, with its good parameters"
    client.live(LiveStop(1))
    expect(client, LiveStopped)


def test_bad_starts_and_too_many_streams_are_refused(client):
    client.live(LiveStart(1, "nope", "img2img"))
    assert expect(client, LiveError).code is ErrorCode.UNKNOWN_ENGINE
    assert expect(client, LiveStopped).reason == "failed"
    for stream in range(MAX_STREAMS_PER_CLIENT):
        start(client, stream)
    client.live(LiveStart(0, "diffusers", "img2img", SD15, PARAMS))
    assert expect(client, LiveError).code is ErrorCode.BAD_MESSAGE  # already open
    expect(client, LiveStopped)
    client.live(LiveStart(MAX_STREAMS_PER_CLIENT, "diffusers", "img2img", SD15, PARAMS))
    error = expect(client, LiveError)
    assert error.code is ErrorCode.TOO_MANY_STREAMS and "stop one" in error.message
    assert expect(client, LiveStopped).reason == "failed"
    for stream in range(MAX_STREAMS_PER_CLIENT):
        client.live(LiveStop(stream))
        assert expect(client, LiveStopped).stream == stream


def test_stop_during_a_long_frame_ends_at_once_and_sends_nothing_after(diffusers_server, client):
    start(client, steps=40)
    client.live(state(1, painted(0)))
    wait_for_running_job(diffusers_server.http)  # the frame is under way
    client.live(LiveStop(1))
    assert expect(client, LiveStopped).stream == 1
    # The running frame is cancelled at its next step: the next job starts without waiting for 40 steps.
    result = client.run(JobRequest("classical", "inpaint", rgba_payload(painted(0)), mask_payload(np.full((H, W), 255, np.uint8))), timeout=120)
    assert result.layers
    assert all(not isinstance(m, LiveFrame) for m in client.poll())


def test_a_live_stream_flooding_states_never_starves_another_clients_job(diffusers_server, client):
    start(client)
    stop = threading.Event()
    frames: list[tuple[float, LiveFrame]] = []

    def flood() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            client.live(state(seq, painted(seq)))
            time.sleep(1 / 30)

    def read() -> None:
        while not stop.is_set():
            for message in client.poll():
                if isinstance(message, LiveFrame):
                    frames.append((time.monotonic(), message))
            time.sleep(0.005)

    workers = [threading.Thread(target=flood, daemon=True), threading.Thread(target=read, daemon=True)]
    for w in workers:
        w.start()
    try:
        while len(frames) < 2:  # the stream is busy
            time.sleep(0.05)
        events: list[tuple[float, str]] = []
        with Client(diffusers_server.url, name="other", timeout=120) as other:
            request = JobRequest("diffusers", "txt2img", model=SD15, params={"prompt": "a cat", "steps": 2, "width": W, "height": H})
            result = other.run(request, on_event=lambda e: events.append((time.monotonic(), e.TYPE)), timeout=120)
        assert result.layers
        queued = next(t for t, kind in events if kind == "queued")
        begun = next(t for t, kind in events if kind == "started")
        # The fair queue: at most the frame in flight when the job arrived finishes before it starts
        # (one more allowed for the two sockets' delivery order).
        overtaking = [f.seq for t, f in frames if queued < t < begun]
        assert len(overtaking) <= 2, f"live frames overtook another client's job: {overtaking}"
        count = len(frames)
        deadline = time.monotonic() + 60
        while len(frames) <= count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(frames) > count, "the stream goes on after the other job"
    finally:
        stop.set()
        for w in workers:
            w.join(5)
    client.live(LiveStop(1))


def test_a_client_vanishing_mid_frame_leaves_the_server_healthy(diffusers_server):
    for _ in range(3):
        raw = RawConnection(diffusers_server.url)
        raw.send(encode(LiveStart(1, "diffusers", "img2img", SD15, {**PARAMS, "steps": 30})))
        assert isinstance(raw.recv(), LiveStarted)
        raw.send(encode(state(1, painted(0))))
        wait_for_running_job(diffusers_server.http)
        raw.ws.socket.close()  # gone without a close frame, mid-frame
        wait_for_running_job(diffusers_server.http, running=False)
    with urllib.request.urlopen(diffusers_server.http + "/health", timeout=10) as response:
        assert response.status == 200
    with Client(diffusers_server.url, name="after", timeout=120) as after:
        request = JobRequest("diffusers", "txt2img", model=SD15, params={"prompt": "a cat", "steps": 2, "width": W, "height": H})
        assert after.run(request, timeout=120).layers


def test_live_messages_before_hello_are_refused_like_any_other(diffusers_server):
    with RawConnection(diffusers_server.url, hello=False) as raw:
        raw.send(encode(LiveStart(1, "diffusers", "img2img", SD15, PARAMS)))
        error = raw.recv()
        assert error.TYPE == "error" and error.code is ErrorCode.HELLO_REQUIRED
    with RawConnection(diffusers_server.url, hello=False) as raw:
        raw.send(encode(LiveState(1, 1, ImagePayload(W, H, PixelFormat.RGBA8, bytes(3)))))
        assert raw.recv().TYPE == "error", "no stream exists before hello: the refusal is about the connection"


def _history(server, path: str = "/api/history?limit=100") -> dict:
    with urllib.request.urlopen(server.http + path, timeout=30) as response:
        return json.loads(response.read())


def _history_items(server, count: int, timeout: float = 60) -> list[dict]:
    """The history's items once there are ``count`` (or more); fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = _history(server)["items"]
        if len(items) >= count:
            return items
        time.sleep(0.05)
    raise AssertionError(f"the history did not reach {count} items in {timeout} s: {_history(server)['items']}")


def test_frames_are_not_recorded_and_an_applied_frame_is_with_the_streams_settings(tiny_models_dir, tmp_path):
    server = start_server_process(model_dirs=[str(tiny_models_dir)], engines=["diffusers"], history=True, history_dir=str(tmp_path))
    try:
        with Client(server.url, name="live-history", timeout=120) as client:
            started = start(client, seed=-1, steps=3)
            assert started.kept_frames >= 1
            for seq in range(1, 6):  # each frame awaited: five frames, none dropped
                client.live(state(seq, painted(seq), **({"prompt": "a green pear"} if seq == 5 else {})))
                assert expect(client, LiveFrame).seq == seq
            client.live(LiveApply(1, 5))
            # The history records in order: once the applied frame is in, any frame recorded before it would be too.
            (applied,) = _history_items(server, 1)
            settings = _history(server, f"/api/history/{applied['id']}")["settings"]
            client.live(LiveApply(1, 9))  # a frame the stream never made
            refused = expect(client, LiveError)
            assert (refused.code, refused.seq, refused.field) == (ErrorCode.BAD_MESSAGE, 9, "seq")
            # A job afterwards is recorded as ever, and nothing else is.
            job = JobRequest("diffusers", "txt2img", model=SD15, params={"prompt": "a cat", "steps": 2, "width": W, "height": H})
            assert client.run(job, timeout=120).layers
            items = _history_items(server, 2)
            client.live(LiveStop(1))
            expect(client, LiveStopped)
    finally:
        assert server.stop() == 0, server.log()
    assert [i["mode"] for i in items] == ["txt2img", "img2img"], "five frames and one applied: one record of the stream"
    assert (applied["client"], applied["engine"], applied["mode"], applied["model"]) == ("live-history", "diffusers", "img2img", SD15)
    assert (applied["prompt"], applied["seed"]) == ("a green pear", started.seed)
    assert settings["model"] == SD15 and settings["params"]["steps"] == 3 and settings["params"]["seed"] == started.seed
    assert settings["params"]["prompt"] == "a green pear" and settings["params"]["strength"] == PARAMS["strength"]
