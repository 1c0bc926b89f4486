"""The job runner: turns a scheduled job into engine calls, in the worker thread.

The scheduler decides which job runs when; the runner does the running:
payloads to arrays, the engine's ``run``, result layers to payloads, and
every failure to the job's final message. It reports its own phases
(preparing: reading the request's pixels, the first update of every job;
finishing: packing the result layers) around the engine's, and checks for a
cancel between them, so no step it takes outlasts a cancel by long.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Mapping

import cv2
import numpy as np

from paintwire.protocol import Cancelled, CheckedControl, Encoding, Error, ErrorCode, ImagePayload, Layer, Phase, PixelFormat, Preview, Progress, ProtocolError, Rect, Result
from paintwire.protocol.messages import JobEvent

from .engines.base import PREVIEW_MAX_SIDE, DecodedControl, Engine, EngineJob, EngineOutput, JobCancelledError, JobContext, ProgressUpdate
from .imaging import array_to_payload, as_rgba, payload_to_array
from .jobs import FinalEvent, Job

log = logging.getLogger(__name__)

# Sends a progress or preview event to the job's owner from the worker thread.
EventSink = Callable[[JobEvent], None]


class JobRunner:
    def __init__(self, engines: Mapping[str, Engine], max_output_pixels: int, previews_per_second: float,
                 model_hash: Callable[[str, str], str | None] | None = None) -> None:
        self.engines = engines
        self.max_output_pixels = max_output_pixels
        self.previews_per_second = previews_per_second
        # (engine, model) -> the model's WebUI hash when already known (never computed here: it reads the file).
        self.model_hash = model_hash

    def run(self, job: Job, send: EventSink) -> FinalEvent:
        """Run ``job`` to its final message. Never raises."""
        request = job.checked.request
        ctx = JobContext(job.cancel_event, _progress_sink(job, send), _preview_sink(job, send), self.previews_per_second if job.previews else 0.0)
        start = time.perf_counter()
        try:
            engine_job = self._decode(job, ctx)
            engine_start = time.perf_counter()
            output = self.engines[request.engine].run(engine_job, ctx)
            job.engine_seconds = time.perf_counter() - engine_start
            del engine_job  # the decoded input: free it before the result is encoded
            result = self._encode(job, output, ctx)
            job.run_seconds = time.perf_counter() - start
            return result
        except JobCancelledError:
            return Cancelled(job.id)
        except ProtocolError as exc:
            return Error(exc.code, exc.message, exc.field, job=job.id)
        except MemoryError:
            return Error(ErrorCode.OUT_OF_MEMORY, "The server ran out of memory for this job; try a smaller image or batch.", job=job.id)
        except Exception as exc:
            if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
                return Error(ErrorCode.OUT_OF_MEMORY, "The GPU ran out of memory for this job; try a smaller image, batch or inpaint area.", job=job.id)
            log.exception("job %s failed", job.id)
            return Error(ErrorCode.ENGINE_FAILED, f"The {request.engine} engine failed: {type(exc).__name__}: {exc}", job=job.id)

    def _decode(self, job: Job, ctx: JobContext) -> EngineJob:
        request = job.checked.request
        ctx.phase(Phase.PREPARING, 0, 1, "reading the image")  # the first update, before the (maybe big) pixels are read
        image = _decode(request.image, "job.image", ctx)
        mask = _decode(request.mask, "job.mask", ctx)
        controls = tuple(
            decoded_control(c, as_rgba(_decode(c.control.image, f"job.controls.{i}.image", ctx)))
            for i, c in enumerate(job.checked.controls)
        )
        return EngineJob(
            id=job.id,
            mode=request.mode,
            params=dict(job.checked.params),
            image=image,
            mask=mask,
            model=request.model,
            max_output_pixels=self.max_output_pixels,
            controls=controls,
            origin=(request.crop.x, request.crop.y) if request.crop else (0, 0),
            canvas=request.canvas_size if request.crop else None,
        )

    def _encode(self, job: Job, output: EngineOutput, ctx: JobContext) -> Result:
        request = job.checked.request
        ctx.phase(Phase.FINISHING, 0, len(output.layers))
        layers = []
        for i, layer in enumerate(output.layers):
            settings = _wire_settings({"engine": request.engine, "mode": request.mode, **layer.settings})
            known = self.model_hash(request.engine, settings["model"]) if self.model_hash and settings.get("model") else None
            if known:
                settings["model_hash"] = known  # so the client's saved PNG can carry it too
            layers.append(Layer(array_to_payload(layer.pixels, request.output_format), layer.x, layer.y, layer.name, layer.seed, settings))
            layer.pixels = np.empty((0, 0, 4), np.uint8)  # drop the engine's copy as soon as it is encoded
            ctx.phase(Phase.FINISHING, i + 1, len(output.layers))
        return Result(job.id, tuple(layers), output.width, output.height, *output.offset)


# PNG decoding is one OpenCV call that cannot be interrupted (seconds for 8192x8192),
# so it runs here while the job's thread watches for a cancel. A cancelled job ends
# at once; its decode finishes in the background and is dropped.
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paintwire-decode")
CANCEL_POLL_SECONDS = 0.05
_decoding_lock = threading.Lock()
_decoding = 0  # decodes submitted and not yet finished


def decodes_in_progress() -> int:
    """PNG decodes still running, those of cancelled jobs included."""
    return _decoding


def _count_decodes(step: int) -> None:
    global _decoding
    with _decoding_lock:
        _decoding += step


def _decode_png(payload: ImagePayload, field: str) -> np.ndarray:
    try:
        return payload_to_array(payload, field)
    finally:
        _count_decodes(-1)


def _decode(payload: ImagePayload | None, field: str, ctx: JobContext) -> np.ndarray | None:
    if payload is None:
        return None
    if payload.encoding is Encoding.RAW:
        return payload_to_array(payload, field)  # a view of the bytes, or one quick copy
    _count_decodes(+1)
    future = _DECODER.submit(_decode_png, payload, field)
    while True:
        try:
            return future.result(timeout=CANCEL_POLL_SECONDS)
        except FutureTimeout:
            ctx.check_cancelled()


def decoded_control(checked: CheckedControl, image: np.ndarray) -> DecodedControl:
    """A checked control with its decoded pixels, as engines take it."""
    c = checked.control
    return DecodedControl(c.kind, image, checked.preprocessor, dict(checked.params), c.model, c.strength, c.start, c.end)


def _progress_sink(job: Job, send: EventSink) -> Callable[[ProgressUpdate], None]:
    def sink(u: ProgressUpdate) -> None:
        send(Progress(job.id, u.step, u.total, u.stage, u.phase.value, round(u.fraction, 4)))

    return sink


def _preview_sink(job: Job, send: EventSink) -> Callable[[np.ndarray, Rect], None]:
    def sink(rgba: np.ndarray, box: Rect) -> None:
        image = array_to_payload(_shrink(rgba), PixelFormat.RGBA8)
        send(Preview(job.id, image, box.x, box.y, box.width, box.height))

    return sink


def _shrink(rgba: np.ndarray) -> np.ndarray:
    """A guard for engines that offer big previews; PreviewMaker already sends small ones."""
    h, w = rgba.shape[:2]
    scale = PREVIEW_MAX_SIDE / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(rgba)
    return cv2.resize(rgba, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _wire_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as msgpack can carry them: scalars, strings and lists only."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, (bool, int, float, str)) or value is None:
            out[str(key)] = value
        elif isinstance(value, (list, tuple)):
            out[str(key)] = [v if isinstance(v, (bool, int, float, str)) else str(v) for v in value]
        else:
            out[str(key)] = str(value)
    return out
