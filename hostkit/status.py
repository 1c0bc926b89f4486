"""What a plug-in tells the artist while a job runs, and how long it waits."""

from __future__ import annotations

from paintwire.protocol import Progress, Queued, Started
from paintwire.protocol.messages import JobEvent

CONNECT_TIMEOUT = 10.0  # seconds for the websocket handshake and the welcome
# How long a client waits for a server that has just started to have its engines ready
# (the diffusers engine imports torch after the server listens: 37 s seen on a loaded machine).
ENGINE_START_SECONDS = 120.0
# Per event, not per job: a diffusers job on a slow machine can spend minutes
# loading a model before its first progress event. A connection that stays
# silent longer than this is treated as lost, so a host never waits for ever.
EVENT_TIMEOUT = 600.0


SENDING = "Sending the job \u2026"  # the status while a job's pixels go to the server


def event_text(event: JobEvent) -> str | None:
    """A status line for a job event, or None for events that change no text."""
    if isinstance(event, Queued):
        return "Waiting: next in the queue." if event.position == 0 else f"Waiting: {event.position} job(s) ahead."
    if isinstance(event, Started):
        return "Working \u2026"
    if isinstance(event, Progress):
        return event.describe()  # the phase and its step: "Denoising: step 3 of 20", "Loading model"
    return None


def progress_fraction(event: JobEvent) -> float | None:
    """How far the whole job is, 0 to 1 across its phases, when ``event`` says so."""
    if isinstance(event, Progress):
        return event.overall
    return None


def describe_error(message: str, connected: bool) -> str:
    """The status line for a failure: what happened and, for a lost connection, what to do."""
    text = " ".join(message.split())
    if not connected:
        return f"Not connected: {text}"
    return f"Failed: {text}"
