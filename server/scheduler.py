"""The job scheduler: a fair queue in front of one worker that drives the accelerator.

Runs on the event loop and only schedules: which job runs next, positions,
cancels, owners that leave. The JobRunner does the work in a single worker
thread (one job at a time on the device); its progress and previews come back
to the loop with call_soon_threadsafe, which keeps each job's events in
order, and go only to the job's owner.

Once the worker has had nothing to do for IDLE_SECONDS after a job, ``on_idle``
runs (the server gives memory back then, not during a job's steps).

An owner that is not ``ready_for_work`` (it has not read what it was sent) is
skipped until it reads: its results cannot pile up in the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from paintwire.protocol import CheckedJob, Cancelled, Error, ErrorCode, JobPhase, Progress, ProtocolError, Queued, Result, Started
from paintwire.protocol.messages import JobEvent

from . import job_log
from .engines.base import Engine
from .jobs import FinalEvent, Job, JobOwner
from .queue import FairQueue
from .runner import JobRunner

log = logging.getLogger(__name__)

# Well beyond the gap between a live stream's frames (its next state is sent as a
# frame arrives) and a short pause in painting: the next job after a release
# faults its working memory in again.
IDLE_SECONDS = 2.0


class Scheduler:
    def __init__(self, engines: list[Engine], runner: JobRunner, max_queued_per_client: int, max_queued_total: int,
                 on_result: Callable[[Job, Result], None] | None = None, on_idle: Callable[[], None] | None = None) -> None:
        self.engines = list(engines)
        # Told of every result after it was queued for its owner (the history records it).
        self.on_result = on_result
        self.on_idle = on_idle
        self._idle_timer: asyncio.TimerHandle | None = None
        self._worked = False  # a job ran since on_idle last ran
        self.runner = runner
        self.queue: FairQueue[Job] = FairQueue(max_queued_per_client, max_queued_total)
        self.running: Job | None = None
        self.jobs: dict[str, Job] = {}  # every job not yet over, by id
        self.completed = 0
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paintwire-engine")
        self._inflight: Future[FinalEvent] | None = None  # the engine thread's current job
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._work(), name="paintwire-worker")

    def stop(self) -> None:
        """Stop taking work: every open job's owner is told (shutting_down) now, and
        the running job is cancelled (it stops at its next step)."""
        for job in list(self.jobs.values()):
            job.cancel_event.set()
            self._finish(job, Error(ErrorCode.SHUTTING_DOWN, "The server is shutting down.", job=job.id))
        self._busy()
        if self._task is not None:
            self._task.cancel()

    async def wait_stopped(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the running job to stop, then free the
        engines; False when the engine was still busy (it is left to stop on its own)."""
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.running = None
        # Wait for the engine's thread on the loop, never in another thread: a thread left
        # waiting for a job that does not stop would hold up the loop's own shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            try:
                await asyncio.wait_for(asyncio.wrap_future(inflight), timeout)
            except asyncio.TimeoutError:
                log.warning("the running job did not stop within %.1f s of shutdown; leaving it to finish its step", timeout)
                return False
            except Exception:
                pass  # its failure was the job's; the engines are freed all the same
        for engine in self.engines:
            engine.close()
        return True

    # -- requests from sessions -----------------------------------------------------------

    def submit(self, owner: JobOwner, ref: int, checked: CheckedJob) -> Job:
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
        if job.state is JobPhase.QUEUED:
            self.queue.remove(job)
            self._finish(job, Cancelled(job.id))
            self._announce_positions()
        else:
            job.cancel_event.set()

    def drop_owner(self, owner: JobOwner) -> None:
        """The owner went away: forget its queued jobs, stop its running one."""
        for job in self.queue.remove_owner(owner):
            job.state = JobPhase.DONE
            self.jobs.pop(job.id, None)
            job_log.ended(job, None)
        if self.running is not None and self.running.owner is owner:
            self.running.cancel_event.set()
        self._announce_positions()
        self._wakeup.set()  # others' jobs may have waited behind a slow owner

    def wake(self) -> None:
        """An owner became ready for work again (it read its backlog)."""
        self._wakeup.set()

    # -- the worker ---------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            job = self.queue.pop(ready=lambda owner: owner.ready_for_work())
            if job is None:
                self._idle_soon()
                await self._wakeup.wait()
                continue
            self._busy()
            self._announce_positions()
            self.running = job
            job.state = JobPhase.RUNNING
            job.owner.emit(Started(job.id))
            job_log.started(job)
            send = self._event_sender(job)
            try:
                self._inflight = self._executor.submit(self.runner.run, job, send)
                outcome: FinalEvent = await asyncio.wrap_future(self._inflight, loop=loop)
            except asyncio.CancelledError:
                raise
            except Exception:  # the runner catches everything; this is a last guard
                log.exception("job %s: worker failure", job.id)
                outcome = Error(ErrorCode.INTERNAL, "The server failed while running this job.", job=job.id)
            self.running = None
            self.completed += 1
            self._worked = True
            self._finish(job, outcome)
            del outcome  # the result's pixels now live only in the owner's outbox

    def _idle_soon(self) -> None:
        if self.on_idle is not None and self._worked and self._idle_timer is None and self._loop is not None:
            self._idle_timer = self._loop.call_later(IDLE_SECONDS, self._idle)

    def _busy(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle(self) -> None:
        self._idle_timer = None
        self._worked = False
        assert self.on_idle is not None
        try:
            self.on_idle()
        except Exception:
            log.exception("the idle hook failed")

    def _finish(self, job: Job, final: FinalEvent) -> None:
        if job.state is JobPhase.DONE:
            return
        job.state = JobPhase.DONE
        self.jobs.pop(job.id, None)
        job.owner.emit(final)
        job_log.ended(job, final)
        if isinstance(final, Result) and job.record:
            self.record(job, final)

    def record(self, job: Job, result: Result) -> None:
        """Hand a result to ``on_result`` (the history): every job's as it ends, and a live
        frame's when the artist applies it."""
        if self.on_result is not None:
            try:
                self.on_result(job, result)
            except Exception:  # the history must never cost a client its job
                log.exception("job %s: recording the result failed", job.id)

    def _announce_positions(self) -> None:
        for job, position in self.queue.positions().items():
            if position != job.position:
                job.position = position
                job.owner.emit(Queued(job.id, job.ref, position))

    def _event_sender(self, job: Job):  # type: ignore[no-untyped-def]
        loop = self._loop
        assert loop is not None

        def send(message: JobEvent) -> None:
            loop.call_soon_threadsafe(self._emit_if_running, job, message)

        return send

    def _emit_if_running(self, job: Job, message: JobEvent) -> None:
        # A job that was just cancelled or whose owner left gets nothing more.
        if job.state is JobPhase.RUNNING and not job.cancel_event.is_set():
            if isinstance(message, Progress):
                job.fraction = message.fraction if message.fraction is not None else message.step / max(1, message.total)
            job.owner.emit(message)

    # -- status -------------------------------------------------------------------------

    def open_jobs(self) -> list[Job]:
        """The running job, then the queued ones in the order they will run."""
        return ([self.running] if self.running is not None else []) + list(self.queue.order())

    def status(self) -> dict[str, Any]:
        return {"queued": len(self.queue), "running": self.running is not None, "completed": self.completed}
