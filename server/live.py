"""Live streams on the server: one generation in flight per stream, always on the newest state.

Each stream is a job owner of its own: every frame is an ordinary job that goes
through the scheduler's fair queue, so a stream flooding states waits its turn
behind other clients' jobs like anyone else (the queue serves owners in turn),
and a client that does not read its frames stops getting new ones
(``ready_for_work`` is the session's).

Memory is bounded whatever the client sends: a stream holds at most the job in
flight and one pending state. A state that arrives while the stream's job is
still queued replaces that job's request in place; one that arrives while it
runs waits as the pending state, replacing any earlier one. Every replaced
state is counted in ``dropped``.

Frames are not results: none is recorded in the history (a stream makes several a
second). The newest ``KEPT_FRAMES`` are kept, and the one the artist applies
(``live_apply``) is recorded then, with the settings of the state it was made from.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from paintwire.protocol import Capabilities, CheckedJob, ErrorCode, JobPhase, JobRequest, ProtocolError, Result, check_job
from paintwire.protocol.live import (
    MAX_STREAMS_PER_CLIENT,
    LiveApply,
    LiveError,
    LiveFrame,
    LiveServerMessage,
    LiveStart,
    LiveStarted,
    LiveState,
    LiveStateError,
    LiveStop,
    LiveStopped,
    StopReason,
)
from paintwire.protocol.messages import Cancelled, Error, JobEvent
from paintwire.protocol.params import MAX_SEED

from .jobs import Job

log = logging.getLogger(__name__)

SEED, BATCH = "seed", "batch_size"

# Frames a stream keeps for live_apply, newest first. The artist applies the frame on
# screen; by the time the click arrives a frame or two more may have come. Each kept
# frame holds its picture and its state's pixels (a few MB at most for a 1024 px region).
KEPT_FRAMES = 4


class LiveScheduler(Protocol):
    """What a stream asks of the scheduler (server.scheduler.Scheduler is one)."""

    def submit(self, owner: Any, ref: int, checked: CheckedJob) -> Job: ...

    def cancel(self, owner: Any, job_id: str) -> None: ...

    def drop_owner(self, owner: Any) -> None: ...

    def record(self, job: Job, result: Result) -> None: ...


@dataclass
class _Pending:
    state: LiveState
    checked: CheckedJob


class LiveStream:
    """One open stream. It is the owner of its frames' jobs: the scheduler sends it
    their events, and it turns each job's end into a frame for the client."""

    def __init__(self, streams: "LiveStreams", start: LiveStart, params: dict[str, Any], seed: int | None) -> None:
        self.streams = streams
        self.id = start.stream
        self.start = start
        self.params = params  # the stream's parameters, as the client last set them (the seed fixed)
        self.seed = seed
        self.inflight: Job | None = None
        self.inflight_state: LiveState | None = None
        self.pending: _Pending | None = None
        self.dropped = 0
        self.stopped = False
        self.kept: deque[tuple[int, Job, Result]] = deque(maxlen=KEPT_FRAMES)  # (seq, its job, its result), for live_apply

    @property
    def client_name(self) -> str | None:
        """The client's name, for the history record of an applied frame."""
        return self.streams.client_name()

    # -- as a job owner -------------------------------------------------------------------

    def ready_for_work(self) -> bool:
        return not self.stopped and self.streams.ready()

    def describe(self) -> str:
        return f"{self.streams.describe()} (live stream {self.id})"

    def emit(self, message: JobEvent) -> None:
        """Events of this stream's jobs: only a job's end matters here."""
        job, state = self.inflight, self.inflight_state
        if job is None or state is None or getattr(message, "job", None) != job.id:
            return  # queued, started, progress: nothing for a live client; or a job already let go
        if not isinstance(message, (Result, Error, Cancelled)):
            return
        self.inflight = self.inflight_state = None
        if self.stopped:
            return
        if isinstance(message, Result) and message.layers:
            self.kept.append((state.seq, job, message))
            layer = message.layers[0]
            self.streams.emit(LiveFrame(self.id, state.seq, layer.image, state.x + layer.x, state.y + layer.y, self.dropped,
                                        layer.seed, round(job.run_seconds * 1000, 2), round(job.engine_seconds * 1000, 2)))
        elif isinstance(message, Error):
            if message.code is ErrorCode.SHUTTING_DOWN:
                self.stop(StopReason.SHUTTING_DOWN)
                return
            self.streams.emit(LiveError(self.id, message.code, message.message, state.seq, message.field))
        self._next()

    # -- states -----------------------------------------------------------------------------

    def push(self, state: LiveState, checked: CheckedJob) -> None:
        if self.inflight is not None and self.inflight.state is JobPhase.QUEUED:
            # Not started yet: the newest state takes its place (and its turn) in the queue.
            self.inflight.checked, self.inflight_state = checked, state
            self.dropped += 1
            return
        if self.inflight is not None:
            if self.pending is not None:
                self.dropped += 1
            self.pending = _Pending(state, checked)
            return
        self._submit(state, checked)

    def apply(self, seq: int) -> None:
        """The artist kept frame ``seq``: record it in the history as a result."""
        for kept_seq, job, result in self.kept:
            if kept_seq == seq:
                self.streams.scheduler.record(job, result)
                return
        newest = [kept for kept, _, _ in self.kept]
        self.streams.emit(LiveError(self.id, ErrorCode.BAD_MESSAGE,
                                    f"Frame {seq} of live stream {self.id} is not kept (the server keeps the newest {KEPT_FRAMES}: "
                                    f"{', '.join(map(str, newest)) or 'none yet'}).", seq, "seq"))

    def _next(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and not self.stopped:
            self._submit(pending.state, pending.checked)

    def _submit(self, state: LiveState, checked: CheckedJob) -> None:
        try:
            job = self.streams.scheduler.submit(self, state.seq, checked)
        except ProtocolError as exc:  # the server's queue is full: this state is lost, the stream goes on
            self.streams.emit(LiveError(self.id, exc.code, exc.message, state.seq, exc.field))
            return
        job.previews = False
        job.record = False  # a frame is not a result until the artist applies it
        if job.state is JobPhase.QUEUED:  # (a scheduler may end a job at once, e.g. while stopping)
            self.inflight, self.inflight_state = job, state

    def stop(self, reason: str) -> None:
        """End the stream now: the pending state goes, a queued job is removed and a
        running one stops at its next step; the client hears ``live_stopped``."""
        if self.stopped:
            return
        self.stopped = True
        self.pending = None
        self.kept.clear()
        self.streams.scheduler.drop_owner(self)
        self.inflight = self.inflight_state = None
        self.streams.forget(self)
        self.streams.emit(LiveStopped(self.id, reason))


class LiveStreams:
    """The live streams of one connection: opens, feeds and closes them.

    Gets what it needs from the session: a way to send, the scheduler, the
    capabilities of the moment, whether the client is reading, and the client's
    name for the log."""

    def __init__(self, emit: Callable[[LiveServerMessage], None], scheduler: LiveScheduler, capabilities: Callable[[], Capabilities],
                 ready: Callable[[], bool], describe: Callable[[], str],
                 max_streams: int = MAX_STREAMS_PER_CLIENT,
                 client_name: Callable[[], str | None] = lambda: None) -> None:
        self.emit = emit
        self.client_name = client_name
        self.scheduler = scheduler
        self.capabilities = capabilities
        self.ready = ready
        self.describe = describe  # the client, for the log's job lines
        self.max_streams = max_streams
        self.streams: dict[int, LiveStream] = {}

    def handle(self, message: LiveStart | LiveState | LiveStop | LiveApply) -> None:
        if isinstance(message, LiveStart):
            self.open(message)
        elif isinstance(message, LiveState):
            self.feed(message)
        elif isinstance(message, LiveApply):
            self.apply(message)
        else:
            self.close_stream(message)

    def refused(self, error: LiveStateError) -> None:
        """A live_state that could not be read (bad pixels, a bad mask)."""
        if error.stream in self.streams:
            self.emit(LiveError(error.stream, error.code, error.message, error.seq, error.field))
        else:
            self.emit(LiveError(error.stream, ErrorCode.BAD_MESSAGE, f"No live stream {error.stream} is open; send live_start first.", error.seq, "stream"))

    def open(self, start: LiveStart) -> None:
        if start.stream in self.streams:
            self._refuse_start(start, ErrorCode.BAD_MESSAGE, f"Live stream {start.stream} is already open; stop it first or use another number.", "stream")
            return
        if len(self.streams) >= self.max_streams:
            self._refuse_start(start, ErrorCode.TOO_MANY_STREAMS,
                               f"You have {len(self.streams)} live streams open, the most this server allows per client; stop one first.", "stream")
            return
        request = JobRequest(start.engine, start.mode, None, None, start.model, dict(start.params), start.output_format)
        try:
            checked = check_job(request, self.capabilities(), images=False)
        except ProtocolError as exc:
            self._refuse_start(start, exc.code, exc.message, exc.field)
            return
        params = dict(start.params)
        names = {p.name for p in checked.mode.params}
        seed = None
        if SEED in names:
            seed = _fixed_seed(checked.params[SEED])
            params[SEED] = seed
        if BATCH in names:
            params[BATCH] = 1  # a frame is one picture
        stream = self.streams[start.stream] = LiveStream(self, start, params, seed)
        self.emit(LiveStarted(stream.id, seed, KEPT_FRAMES))

    def feed(self, state: LiveState) -> None:
        stream = self.streams.get(state.stream)
        if stream is None:
            self.emit(LiveError(state.stream, ErrorCode.BAD_MESSAGE, f"No live stream {state.stream} is open; send live_start first.", state.seq, "stream"))
            return
        params = {**stream.params, **state.params}
        if SEED in state.params and stream.seed is not None and isinstance(state.params[SEED], int):
            params[SEED] = stream.seed = _fixed_seed(state.params[SEED])
        if BATCH in params:
            params[BATCH] = 1
        s = stream.start
        request = JobRequest(s.engine, s.mode, state.image, state.mask, s.model, params, s.output_format)
        try:
            checked = check_job(request, self.capabilities())
        except ProtocolError as exc:
            # The state is refused; the stream keeps its last good parameters.
            self.emit(LiveError(stream.id, exc.code, exc.message, state.seq, _live_field(exc.field)))
            return
        stream.params = params
        stream.push(state, checked)

    def apply(self, apply: LiveApply) -> None:
        stream = self.streams.get(apply.stream)
        if stream is None:
            self.emit(LiveError(apply.stream, ErrorCode.BAD_MESSAGE, f"No live stream {apply.stream} is open.", apply.seq, "stream"))
            return
        stream.apply(apply.seq)

    def close_stream(self, stop: LiveStop) -> None:
        stream = self.streams.get(stop.stream)
        if stream is None:
            self.emit(LiveError(stop.stream, ErrorCode.BAD_MESSAGE, f"No live stream {stop.stream} is open.", None, "stream"))
            return
        stream.stop(StopReason.REQUESTED)

    def forget(self, stream: LiveStream) -> None:
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]

    def close(self) -> None:
        """The client went away: stop every stream at once (nothing is sent)."""
        for stream in list(self.streams.values()):
            stream.pending = None
            stream.kept.clear()
            stream.stopped = True
            self.scheduler.drop_owner(stream)
        self.streams.clear()

    def _refuse_start(self, start: LiveStart, code: ErrorCode, message: str, field: str | None) -> None:
        self.emit(LiveError(start.stream, code, message, None, _live_field(field)))
        self.emit(LiveStopped(start.stream, StopReason.FAILED))


def _fixed_seed(seed: int) -> int:
    """-1 asks for a random seed: picked once here, so every frame of the stream uses it."""
    return secrets.randbelow(MAX_SEED + 1) if seed == -1 else seed


def _live_field(field: str | None) -> str | None:
    """check_job names job fields; live_start and live_state have them at their top level."""
    return field.removeprefix("job.") if field else field
