"""A job inside the server, from submit to its last event."""

from __future__ import annotations

import enum
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from paintwire.protocol import CheckedJob


class JobOwner(Protocol):
    """Where a job's events go: the session of the connection that submitted it."""

    def emit(self, message: Any) -> None: ...


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False)  # identity equality: jobs are dict keys and queue items
class Job:
    owner: JobOwner
    ref: int
    checked: CheckedJob
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    state: JobState = JobState.QUEUED
    cancel_event: threading.Event = field(default_factory=threading.Event)
    position: int = -1  # last queue position told to the owner

    def __hash__(self) -> int:
        return id(self)
