"""Recording finished jobs into the history, off the event loop.

The scheduler hands every result to :meth:`HistoryRecorder.offer` right after
the result was queued for its client, and offer only appends to a bounded
queue: the client's result never waits for the history. One worker thread
turns each layer into settings, a PNG with its metadata and a thumbnail, and
stores them. A full queue (a slow disk, a burst of huge results) drops the new
record with a log line instead of growing.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from paintwire.protocol import JobRequest, Layer, Result
from paintwire.protocol.compositing import over
from paintwire.protocol.metadata import Labels, layer_settings, png_text, prompt_words
from paintwire.protocol.pngtext import add_text

from ..imaging import encode_png, payload_to_array
from . import hashes
from .store import HistoryStore, NewRecord

log = logging.getLogger(__name__)

THUMB_SIDE = 256
# Bounds on what waits to be recorded: results are raw pixels, up to 256 MiB each.
MAX_PENDING = 32
MAX_PENDING_BYTES = 512 << 20

ModelFile = Callable[[str, str], "Path | None"]  # (engine, model name) -> its file or folder
LabelsFor = Callable[[str, str], Labels]  # (engine, mode) -> its choice labels


@dataclass(frozen=True)
class Finished:
    """A job that ended with a result, as the scheduler saw it."""

    client: str
    created: float
    request: JobRequest  # its ``parent``: the history result the job started from
    result: Result

    @property
    def size(self) -> int:
        """Bytes this keeps alive until recorded: the result's pixels and the request's (control layers too)."""
        controls = (c.image for c in self.request.controls)
        inputs = [p for p in (self.request.image, self.request.mask, *controls) if p is not None]
        return sum(len(layer.image.data) for layer in self.result.layers) + sum(len(p.data) for p in inputs)


class HistoryRecorder:
    def __init__(self, store: HistoryStore, model_file: ModelFile, labels: LabelsFor, max_pending: int = MAX_PENDING,
                 max_pending_bytes: int = MAX_PENDING_BYTES, embedding_names: Callable[[str], set[str]] = lambda engine: set()) -> None:
        self.store = store
        self.model_file = model_file
        self.labels = labels
        self.embedding_names = embedding_names  # engine -> the names of its embeddings (used by naming them in a prompt)
        self.max_pending_bytes = max_pending_bytes
        self._queue: queue.Queue[Finished | None] = queue.Queue(max_pending)
        self._pending_bytes = 0
        self._count_lock = threading.Lock()
        self.recorded = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._work, name="paintwire-history", daemon=True)
        self._thread.start()

    def offer(self, finished: Finished) -> bool:
        """Queue a result for recording without waiting; False when it was dropped."""
        size = finished.size
        with self._count_lock:
            if self._pending_bytes + size > self.max_pending_bytes and self._pending_bytes:
                return self._drop(finished, "its results wait for the disk")
            try:
                self._queue.put_nowait(finished)
            except queue.Full:
                return self._drop(finished, "its queue is full")
            self._pending_bytes += size
        return True

    def _drop(self, finished: Finished, why: str) -> bool:
        self.dropped += 1
        log.warning("history: not recording job %s of %s: %s", finished.result.job, finished.client or "?", why)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Record what is queued (for at most ``timeout`` seconds), then stop; what is
        left then (a database locked all along) is dropped with the process."""
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        _lower_priority()
        while True:
            finished = self._queue.get()
            try:
                if finished is None:
                    return
                self._record(finished)
            except Exception:
                log.exception("history: recording a result failed")
            finally:
                if finished is not None:
                    with self._count_lock:
                        self._pending_bytes -= finished.size

    def _record(self, finished: Finished) -> None:
        request, result = finished.request, finished.result
        labels = self.labels(request.engine, request.mode)
        base: np.ndarray | None = None
        for layer in result.layers:
            settings = self.settings_of(request, layer)
            rgba = payload_to_array(layer.image, "layer")
            if rgba[..., 3].min() < 255:
                base = _input_pixels(request) if base is None else base  # decoded only when a layer needs it
                rgba = _composited(rgba, base, layer, request)
            png = add_text(encode_png(rgba), png_text(settings, labels))
            params = settings["params"]
            self.store.add(NewRecord(
                created=finished.created, client=finished.client, engine=request.engine, mode=request.mode,
                model=settings.get("model") or "", prompt=str(params.get("prompt") or ""), seed=layer.seed,
                width=rgba.shape[1], height=rgba.shape[0], settings=settings, png=png, thumb=thumbnail(rgba),
                parent=request.parent,
            ))
            self.recorded += 1

    def settings_of(self, request: JobRequest, layer: Layer) -> dict[str, Any]:
        """The full settings that made ``layer``, with the hashes of its model and LoRAs."""
        settings = layer_settings(request.engine, request.mode, request.model, layer)
        if settings["model"]:
            settings["model_hash"] = self._hash(request.engine, settings["model"], hashes.MODEL)
        for lora in settings.get("loras", ()):
            lora["hash"] = self._hash(request.engine, lora["name"], hashes.LORA)
        params = settings["params"]
        used = sorted(prompt_words(str(params.get("prompt") or ""), str(params.get("negative_prompt") or ""))
                      & self.embedding_names(request.engine))
        if used:
            settings["embeddings"] = [{"name": n, "hash": self._hash(request.engine, n, hashes.EMBEDDING)} for n in used]
        return settings

    def _hash(self, engine: str, name: str, kind: str) -> str | None:
        path = self.model_file(engine, name)
        if path is None:
            return None
        try:
            return hashes.short_hash(path, kind, self.store)
        except OSError as exc:
            log.warning("history: cannot hash %s: %s", path, exc)
            return None


def _lower_priority() -> None:
    """Let the engine's threads have the CPU first: recording can wait, a job should not.
    On Linux a thread has a nice value of its own; elsewhere this does nothing.

    A thread this one starts inherits the 10, and so would OpenCV's worker threads
    if this thread were the first to run a parallel OpenCV operation (a Lanczos
    resize, say): they are made on first use and then serve every thread, the
    engine's included. The recorder's own calls (area resize, PNG and WebP
    encoding) run no parallel region; keep it so."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _input_pixels(request: JobRequest) -> np.ndarray | None:
    try:
        return payload_to_array(request.image) if request.image is not None else None
    except Exception:
        return None


def _composited(rgba: np.ndarray, base: np.ndarray | None, layer: Layer, request: JobRequest) -> np.ndarray:
    """The layer as it looks in the document: over the input below it where it is
    not opaque (an inpainted region is shown with its surroundings, not cut out).
    Layers sit on the canvas; a cropped input covers only its part of it."""
    h, w = rgba.shape[:2]
    x = layer.x - (request.crop.x if request.crop is not None else 0)
    y = layer.y - (request.crop.y if request.crop is not None else 0)
    if base is None or x < 0 or y < 0 or y + h > base.shape[0] or x + w > base.shape[1]:
        return rgba
    return over(rgba, base[y:y + h, x:x + w])


def thumbnail(rgba: np.ndarray) -> bytes:
    """A WebP at most THUMB_SIDE px on its longer side (alpha kept)."""
    h, w = rgba.shape[:2]
    scale = min(1.0, THUMB_SIDE / max(h, w))
    small = rgba if scale >= 1 else cv2.resize(rgba, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".webp", np.ascontiguousarray(small[..., [2, 1, 0, 3]]), [cv2.IMWRITE_WEBP_QUALITY, 82])
    if not ok:
        raise ValueError("thumbnail encoding failed")
    return buf.tobytes()

