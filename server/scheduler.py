"""The job scheduler: a fair queue in front of one worker that drives the accelerator.

Runs on the event loop. Engines run in a single worker thread (one job at a
time on the device); their progress and previews come back to the loop with
call_soon_threadsafe, which keeps each job's events in order, and go only to
the job's owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from paintwire.protocol import (
    Cancelled,
    Error,
    ErrorCode,
    Layer,
    Phase,
    PixelFormat,
    Preview,
    Progress,
    ProtocolError,
    Queued,
    Result,
    Started,
)

from .config import ServerConfig
from .engines.base import PREVIEW_MAX_SIDE, Engine, EngineJob, JobCancelledError, JobContext, ProgressUpdate
from .imaging import array_to_payload, payload_to_array
from .jobs import Job, JobOwner, JobState
from .masks import Box
from .queue import FairQueue

log = logging.getLogger(__name__)



class Scheduler:
    def __init__(self, engines: list[Engine], config: ServerConfig) -> None:
        self.engines = {e.name: e for e in engines}
        self.config = config
        self.queue: FairQueue[Job] = FairQueue(config.max_queued_per_client, config.max_queued_total)
        self.running: Job | None = None
        self.jobs: dict[str, Job] = {}  # every job not yet over, by id
        self.completed = 0
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paintwire-engine")
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._work(), name="paintwire-worker")

    async def stop(self) -> None:
        for job in list(self.jobs.values()):
            self._finish(job, Error(ErrorCode.SHUTTING_DOWN, "The server is shutting down.", job=job.id))
            job.cancel_event.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        # The engine stops at its next step; wait for it off the loop so that
        # sessions can still send their last frames.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        for engine in self.engines.values():
            engine.close()

    # -- requests from sessions -----------------------------------------------------------

    def submit(self, owner: JobOwner, ref: int, checked: Any) -> Job:
        """Queue a validated job; raises ProtocolError(QUEUE_FULL)."""
        job = Job(owner, ref, checked)
        self.queue.push(owner, job)
        self.jobs[job.id] = job
        job.position = self.queue.positions()[job]
        owner.emit(Queued(job.id, ref, job.position))
        # A newcomer may go ahead of jobs of clients that were just served.
        self._announce_positions()
        self._wakeup.set()
        return job

    def cancel(self, owner: JobOwner, job_id: str) -> None:
        """Cancel a queued job now, or a running one at its next step."""
        job = self.jobs.get(job_id)
        if job is None or job.owner is not owner:
            # Other clients' jobs are indistinguishable from unknown ones on purpose.
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"No job {job_id!r} of yours is queued or running (it may have finished).", "job")
        if job.state is JobState.QUEUED:
            self.queue.remove(job)
            self._finish(job, Cancelled(job.id))
            self._announce_positions()
        else:
            job.cancel_event.set()

    def drop_owner(self, owner: JobOwner) -> None:
        """The owner went away: forget its queued jobs, stop its running one."""
        for job in self.queue.remove_owner(owner):
            job.state = JobState.DONE
            self.jobs.pop(job.id, None)
        if self.running is not None and self.running.owner is owner:
            self.running.cancel_event.set()
        self._announce_positions()

    # -- the worker ---------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = self.queue.pop()
            if job is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._announce_positions()
            self.running = job
            job.state = JobState.RUNNING
            job.owner.emit(Started(job.id))
            try:
                outcome = await asyncio.get_running_loop().run_in_executor(self._executor, self._run_job, job)
            except asyncio.CancelledError:
                raise
            except Exception:  # _run_job catches everything; this is a last guard
                log.exception("job %s: worker failure", job.id)
                outcome = Error(ErrorCode.INTERNAL, "The server failed while running this job.", job=job.id)
            self.running = None
            self.completed += 1
            self._finish(job, outcome)

    def _finish(self, job: Job, final: Any) -> None:
        if job.state is JobState.DONE:
            return
        job.state = JobState.DONE
        self.jobs.pop(job.id, None)
        job.owner.emit(final)

    def _announce_positions(self) -> None:
        for job, position in self.queue.positions().items():
            if position != job.position:
                job.position = position
                job.owner.emit(Queued(job.id, job.ref, position))

    # -- in the worker thread -------------------------------------------------------------

    def _run_job(self, job: Job) -> Any:
        """Runs in the engine thread; returns the job's final message."""
        loop = self._loop
        assert loop is not None
        ctx = JobContext(job.cancel_event, self._progress_sink(job), self._preview_sink(job), self.config.previews_per_second)
        try:
            ctx.phase(Phase.PREPARING)  # the first update, before the (maybe big) pixels are decoded
            request = job.checked.request
            engine = self.engines[request.engine]
            engine_job = EngineJob(
                id=job.id,
                mode=request.mode,
                params=dict(job.checked.params),
                image=payload_to_array(request.image, "job.image") if request.image else None,
                mask=payload_to_array(request.mask, "job.mask") if request.mask else None,
                model=request.model,
                max_output_pixels=self.config.max_pixels,
            )
            ctx.check_cancelled()
            output = engine.run(engine_job, ctx)
            fmt = request.output_format
            layers = tuple(
                Layer(array_to_payload(l.pixels, fmt), l.x, l.y, l.name, l.seed, _wire_settings(l.settings)) for l in output.layers
            )
            return Result(job.id, layers, output.width, output.height)
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
            return Error(ErrorCode.ENGINE_FAILED, f"The {job.checked.request.engine} engine failed: {type(exc).__name__}: {exc}", job=job.id)

    def _progress_sink(self, job: Job):
        loop = self._loop
        assert loop is not None

        def sink(u: ProgressUpdate) -> None:
            message = Progress(job.id, u.step, u.total, u.stage, u.phase.value, round(u.fraction, 4))
            loop.call_soon_threadsafe(self._emit_if_running, job, message)

        return sink

    def _preview_sink(self, job: Job):
        loop = self._loop
        assert loop is not None

        def sink(rgba: np.ndarray, box: Box) -> None:
            image = array_to_payload(_shrink(rgba), PixelFormat.RGBA8)
            loop.call_soon_threadsafe(self._emit_if_running, job, Preview(job.id, image, box.x, box.y, box.width, box.height))

        return sink

    def _emit_if_running(self, job: Job, message: Any) -> None:
        # A job that was just cancelled or whose owner left gets nothing more.
        if job.state is JobState.RUNNING and not job.cancel_event.is_set():
            job.owner.emit(message)

    # -- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"queued": len(self.queue), "running": self.running is not None, "completed": self.completed}


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
