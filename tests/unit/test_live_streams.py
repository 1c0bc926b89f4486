"""The server's live streams with the real scheduler and the classical engine, in
process: a flood of states holds one job in the queue (the newest state takes the
place of the one waiting), the stream is an owner of the fair queue like any
client, and stopping leaves nothing queued."""

from __future__ import annotations

import asyncio

import numpy as np

from paintwire.protocol import ErrorCode, ImagePayload, PixelFormat
from paintwire.protocol.live import LiveApply, LiveError, LiveFrame, LiveStart, LiveStarted, LiveState, LiveStop, LiveStopped
from paintwire.server.app import build_capabilities
from paintwire.server.config import LimitsConfig
from paintwire.server.engines.classical import ClassicalEngine
from paintwire.server.live import KEPT_FRAMES, LiveStreams
from paintwire.server.runner import JobRunner
from paintwire.server.scheduler import Scheduler

W = H = 16


def state(seq: int, level: int = 0) -> LiveState:
    image = np.full((H, W, 4), level, np.uint8)
    image[..., 3] = 255
    mask = np.zeros((H, W), np.uint8)
    mask[4:8, 4:8] = 255
    return LiveState(1, seq, ImagePayload(W, H, PixelFormat.RGBA8, image.tobytes()), ImagePayload(W, H, PixelFormat.L8, mask.tobytes()), 3, 4)


def rig():
    engine = ClassicalEngine()
    limits = LimitsConfig()
    scheduler = Scheduler([engine], JobRunner({engine.name: engine}, limits.max_pixels, 0.0), 16, 256)
    sent: list = []
    streams = LiveStreams(sent.append, scheduler, lambda: build_capabilities([engine], limits), lambda: True,
                          lambda: "'test' from 127.0.0.1:1")
    return scheduler, streams, sent


def test_a_flood_waits_as_one_queued_job_carrying_the_newest_state():
    async def main() -> list:
        scheduler, streams, sent = rig()
        streams.handle(LiveStart(1, "classical", "inpaint", params={"method": "telea"}))
        assert isinstance(sent[-1], LiveStarted) and sent[-1].seed is None  # the classical inpaint takes no seed
        for seq in range(1, 101):
            streams.handle(state(seq, seq))
        assert len(scheduler.queue) == 1 and len(scheduler.jobs) == 1, "a flood holds one job, not a queue"
        stream = streams.streams[1]
        assert stream.inflight_state.seq == 100 and stream.dropped == 99 and stream.pending is None
        scheduler.start()
        for _ in range(200):
            await asyncio.sleep(0.02)
            if any(isinstance(m, LiveFrame) for m in sent):
                break
        streams.handle(LiveStop(1))
        scheduler.stop()
        await scheduler.wait_stopped(5)
        return sent

    sent = asyncio.run(main())
    frames = [m for m in sent if isinstance(m, LiveFrame)]
    # The layer lies at the mask's bounds inside the region (4, 4), placed from the region's offset (3, 4).
    assert len(frames) == 1 and (frames[0].seq, frames[0].dropped, frames[0].x, frames[0].y) == (100, 99, 7, 8)
    assert isinstance(sent[-1], LiveStopped) and sent[-1].reason == "requested"


def test_stop_removes_the_queued_job_and_a_closed_connection_stops_every_stream():
    scheduler, streams, sent = rig()
    streams.handle(LiveStart(1, "classical", "inpaint"))
    streams.handle(state(1))
    assert len(scheduler.queue) == 1
    streams.handle(LiveStop(1))
    assert len(scheduler.queue) == 0 and not scheduler.jobs and not streams.streams
    streams.handle(LiveStop(1))
    assert isinstance(sent[-1], LiveError) and sent[-1].code is ErrorCode.BAD_MESSAGE
    streams.handle(LiveStart(1, "classical", "inpaint"))
    streams.handle(state(2))
    streams.close()
    assert len(scheduler.queue) == 0 and not scheduler.jobs and not streams.streams


def test_frames_are_not_recorded_and_an_applied_one_is_once():
    async def main():
        engine = ClassicalEngine()
        limits = LimitsConfig()
        recorded: list = []
        scheduler = Scheduler([engine], JobRunner({engine.name: engine}, limits.max_pixels, 0.0), 16, 256,
                              on_result=lambda job, result: recorded.append((job, result)))
        sent: list = []
        streams = LiveStreams(sent.append, scheduler, lambda: build_capabilities([engine], limits), lambda: True,
                              lambda: "'painter' from 127.0.0.1:1", client_name=lambda: "painter")
        scheduler.start()
        streams.handle(LiveStart(1, "classical", "inpaint", params={"method": "telea"}))
        assert sent[-1].kept_frames == KEPT_FRAMES
        for seq in range(1, KEPT_FRAMES + 3):
            streams.handle(state(seq, seq))
            for _ in range(500):
                await asyncio.sleep(0.01)
                if any(isinstance(m, LiveFrame) and m.seq == seq for m in sent):
                    break
        frames = [m.seq for m in sent if isinstance(m, LiveFrame)]
        assert frames == list(range(1, KEPT_FRAMES + 3)) and recorded == []
        streams.handle(LiveApply(1, frames[-1]))
        assert len(recorded) == 1
        job, result = recorded[0]
        assert job.owner.client_name == "painter" and job.checked.request.params["method"] == "telea" and result.layers
        streams.handle(LiveApply(1, frames[0]))  # no longer kept
        assert isinstance(sent[-1], LiveError) and sent[-1].field == "seq" and sent[-1].seq == frames[0] and len(recorded) == 1
        streams.handle(LiveApply(2, 1))  # no such stream
        assert isinstance(sent[-1], LiveError) and sent[-1].field == "stream"
        streams.handle(LiveStop(1))
        scheduler.stop()
        await scheduler.wait_stopped(5)

    asyncio.run(main())
