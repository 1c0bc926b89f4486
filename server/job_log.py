"""The verbose log's job lines (``paintwire serve -v``): one when a job starts, one when it ends.

Each line names the job, its client (quoted, as the connection lines quote it:
a client chooses its own name), its mode, engine and model, and at the end the
outcome (done, cancelled, the error's code, or dropped when its client left)
with the seconds it ran. A job that ends while still queued gets an end line only.
"""

from __future__ import annotations

import logging
import time

from paintwire.protocol.messages import Error, Result

from .jobs import FinalEvent, Job
from .logtext import quoted

log = logging.getLogger(__name__)


def started(job: Job) -> None:
    job.started_at = time.monotonic()
    if log.isEnabledFor(logging.INFO):
        log.info("job %s started after %.2f s queued: %s", job.id, job.started_at - job.queued_at, _what(job))


def ended(job: Job, final: FinalEvent | None) -> None:
    """``final`` None: the job was dropped from the queue, its client gone."""
    if not log.isEnabledFor(logging.INFO):
        return
    if final is None:
        outcome = "dropped (the client left)"
    else:
        outcome = "done" if isinstance(final, Result) else f"error {final.code.value}" if isinstance(final, Error) else "cancelled"
    if job.started_at is None:
        when = f"in the queue after {time.monotonic() - job.queued_at:.2f} s"
    else:
        when = f"after {time.monotonic() - job.started_at:.2f} s"
    log.info("job %s %s %s: %s", job.id, outcome, when, _what(job))


def _what(job: Job) -> str:
    request = job.checked.request
    model = quoted(request.model) if request.model else "the default model"
    return f"client {job.owner.describe()}, {request.mode} on {request.engine} with {model}"
