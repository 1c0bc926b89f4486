"""The history's recorder (server/history/recorder.py): settings and files of a result,
compositing a partial layer, and the bounded queue that drops rather than grows."""

from __future__ import annotations

import io
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np
from PIL import Image

from paintwire.protocol import JobRequest, Layer, Result
from paintwire.protocol.metadata import recall
from paintwire.protocol.pngtext import read_text
from paintwire.server.history import Finished, HistoryRecorder, HistoryStore
from paintwire.server.imaging import array_to_payload


def finished(side: int = 8, alpha: int = 255, seed: int = 3) -> Finished:
    base = np.zeros((side * 2, side * 2, 4), np.uint8)
    base[..., 2], base[..., 3] = 200, 255  # a blue, opaque input
    layer_px = np.zeros((side, side, 4), np.uint8)
    layer_px[..., 0], layer_px[..., 3] = 255, alpha  # red, at ``alpha``
    layer = Layer(array_to_payload(layer_px), side // 2, side // 2, "Inpaint", seed, {"method": "ns", "prompt": "x <lora:ink:0.5>"})
    request = JobRequest("classical", "inpaint", array_to_payload(base), params={"method": "ns"})
    return Finished("client/1", 1_700_000_000.0, request, Result("job", (layer,), side * 2, side * 2))


def wait_for(store: HistoryStore, count: int) -> None:
    deadline = time.monotonic() + 20
    while store.totals()[0] < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_record_holds_settings_png_metadata_and_the_layer_over_its_input(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    lora = tmp_path / "ink.safetensors"
    lora.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}data")
    recorder = HistoryRecorder(store, lambda engine, name: lora if name == "ink" else None, lambda engine, mode: {})
    assert recorder.offer(finished(alpha=128))
    wait_for(store, 1)
    record = store.list()[0][0]
    full = store.get(record.id)
    assert full is not None and full.settings["params"] == {"method": "ns", "prompt": "x <lora:ink:0.5>", "seed": 3}
    assert full.settings["loras"] == [{"name": "ink", "weight": 0.5, "hash": "3a6eb0790f39"}]  # sha256(b"data")[:12]
    png = store.image_path(record.id).read_bytes()
    assert recall(read_text(png)).settings == full.settings  # type: ignore[union-attr]
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    assert pixels.shape == (8, 8, 4) and (pixels[..., 3] == 255).all()  # over the opaque input
    assert abs(int(pixels[0, 0, 0]) - 128) <= 1 and abs(int(pixels[0, 0, 2]) - 100) <= 1  # half red over blue
    recorder.stop()


def test_a_full_queue_drops_with_a_log_line_instead_of_growing(tmp_path: Path, caplog) -> None:
    store = HistoryStore(tmp_path)
    recorder = HistoryRecorder(store, lambda e, n: None, lambda e, m: {}, max_pending=2)
    blocker = sqlite3.connect(tmp_path / "history.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the recorder's first add waits for this lock
    try:
        with caplog.at_level(logging.WARNING, logger="paintwire.server.history.recorder"):
            accepted = [recorder.offer(finished(seed=i)) for i in range(6)]
        # One is being recorded (waiting for the lock), two wait in the queue, the rest are dropped.
        assert accepted.count(True) in (2, 3) and accepted[:2] == [True, True] and accepted[-1] is False
        assert recorder.dropped == accepted.count(False)
        assert "not recording job job of client/1: its queue is full" in caplog.text
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    wait_for(store, accepted.count(True))
    assert store.totals()[0] == accepted.count(True)
    recorder.stop()


def test_pending_bytes_are_bounded_too(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    one = finished(side=64)
    recorder = HistoryRecorder(store, lambda e, n: None, lambda e, m: {}, max_pending_bytes=one.size + 1)
    blocker = sqlite3.connect(tmp_path / "history.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert recorder.offer(one)
        assert not recorder.offer(finished(side=64))  # a second one would pass the byte bound
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    recorder.stop()


def test_a_layer_of_a_cropped_job_is_composited_over_the_right_pixels(tmp_path: Path) -> None:
    import dataclasses

    from paintwire.protocol.crops import Crop

    store = HistoryStore(tmp_path)
    recorder = HistoryRecorder(store, lambda e, n: None, lambda e, m: {})
    job = finished(alpha=0)  # a fully transparent layer: the stored picture is what lies under it
    base = np.zeros((16, 16, 4), np.uint8)
    base[..., 3] = 255
    base[:4, :4, 1] = 255  # green where the layer lands: canvas (16, 16) is the crop's (0, 0)
    request = dataclasses.replace(job.request, image=array_to_payload(base), crop=Crop(16, 16, 64, 64))
    layer = dataclasses.replace(job.result.layers[0], x=16, y=16)
    assert recorder.offer(Finished("c", 1.0, request, Result("job", (layer,), 64, 64)))
    wait_for(store, 1)
    pixels = np.asarray(Image.open(store.image_path(store.list()[0][0].id)).convert("RGBA"))
    assert (pixels[:4, :4, 1] == 255).all() and (pixels[4:, 4:, 1] == 0).all()
    recorder.stop()
