"""A job inside the server, from submit to its last event."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from paintwire.protocol import CheckedJob, JobPhase
from paintwire.protocol.messages import Cancelled, Error, JobEvent, Result

# The message that ends a job: exactly one per job reaches its owner.
FinalEvent = Result | Error | Cancelled


class JobOwner(Protocol):
    """Where a job's events go: the session of the connection that submitted it."""

    def emit(self, message: JobEvent) -> None: ...

    def ready_for_work(self) -> bool:
        """False while the owner has more unsent bytes than it may have: its next
        job waits, so a client that does not read cannot pile up results."""
        ...

    def describe(self) -> str:
        """The client, for the log: its name quoted (logtext.quoted) and its address."""
        ...


@dataclass(eq=False)  # identity equality: jobs are dict keys and queue items
class Job:
    owner: JobOwner
    ref: int
    checked: CheckedJob
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    # The protocol's job phases, seen from the server: queued, running, done.
    state: JobPhase = JobPhase.QUEUED
    cancel_event: threading.Event = field(default_factory=threading.Event)
    position: int = -1  # last queue position told to the owner
    previews: bool = True  # live frames want no previews: the frame itself comes at once
    record: bool = True  # into the history when it ends with a result; a live frame only once applied (live_apply)
    # Set by the runner: seconds from the start of its run to the final message, and the engine's share.
    run_seconds: float = 0.0
    engine_seconds: float = 0.0
    fraction: float = 0.0  # the last progress's share of the whole job, for the queue view
    # time.monotonic() at submit and at start (None until it starts), for the log's job lines.
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None

    def __hash__(self) -> int:
        return id(self)
