"""One job, from the artist's choice to layers in the document: the steps every host runs.

The steps are plain functions and one small plan object, so that each host
drives them its own way: GIMP and the test host block (:func:`run_job` runs
them all, in order: :func:`read_request`, then :func:`send_and_write`), Krita
reads its document on the UI thread, builds the request and waits on the
server in a worker thread, and writes the result back on the UI thread. The client is a parameter; nothing here opens a socket
or starts a thread.

1. :func:`plan_job`: which mode, which control layers (checked against the
   document's layers); raises :class:`JobNotReady` with a sentence.
2. :meth:`JobPlan.area`: the part of the canvas to read (the mode's crop rule
   around the selection; None: all of it).
3. The host reads its document there (:meth:`.document.Document.snapshot`).
4. :meth:`JobPlan.request`: the JobRequest, control layers at the job's region.
5. :func:`submit`: the request through the client, its events to a
   :class:`JobSink` (:func:`report`), ending in :class:`Done`, :class:`Failed`
   or :class:`Cancelled`.
6. :meth:`JobPlan.place`: where the result's layers go and their names; the
   host writes them (:func:`.document.write_placement`), after its preview is gone.
7. :meth:`JobPlan.record`: the history entry (settings, seeds, layer names)
   for "apply again" and "use settings".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, Union

from paintwire.protocol import (
    Capabilities, ClientError, ImagePayload, JobCancelled, JobFailed, JobRequest, ModeSpec, PixelFormat, Preview,
    ProtocolError, Result,
)
from paintwire.protocol.controls import ControlKindSpec
from paintwire.protocol.messages import JobEvent
from paintwire.protocol.rect import Rect

from . import controls as kit_controls
from . import modes as kit_modes
from .controls import ControlLayer
from .document import Document
from .history import HistoryEntry, history_entry
from .placement import Placement, place_result
from .request import JobSettings, build_request, prompt_of, read_area, reads_document
from .snapshot import Snapshot
from .sources import InputSource
from .status import SENDING, event_text, progress_fraction

# Reads a control layer's pixels in a region of the canvas (Document.layer_image, or a host's own).
LayerReader = Callable[[ControlLayer, Rect], ImagePayload]


class JobNotReady(ValueError):
    """The job cannot be sent as it is (a control layer that is gone, a mode the server
    no longer has); the message is a sentence for the artist."""


@dataclass(frozen=True)
class JobPlan:
    """A job decided but not yet read: the settings, the server's description of the
    mode, and the control layers that go with it (checked)."""

    caps: Capabilities
    settings: JobSettings
    mode: ModeSpec
    kinds: tuple[ControlKindSpec, ...]
    controls: tuple[ControlLayer, ...]

    @property
    def reads_document(self) -> bool:
        """Whether the job sends pixels (Generate sends only the canvas size)."""
        return reads_document(self.mode)

    @property
    def control_layers(self) -> list[str]:
        """The layers to read for the control layers, each once."""
        return list(dict.fromkeys(c.layer for c in self.controls))

    def read_area(self, size: tuple[int, int], selected: Rect | None) -> Rect:
        """The part of a canvas of ``size`` the job reads, given the bounds of what is
        selected (None: nothing): the mode's crop rule (request.read_area)."""
        try:
            return read_area(self.caps, self.settings, size[0], size[1], selected)
        except ProtocolError as exc:
            raise JobNotReady(exc.message) from None

    def area(self, size: tuple[int, int], selected: Rect | None) -> Rect | None:
        """:meth:`read_area`, or None when that is the whole canvas (what Document.snapshot takes)."""
        box = self.read_area(size, selected)
        return None if box == Rect(0, 0, size[0], size[1]) else box

    def request(self, snapshot: Snapshot, read_layer: LayerReader, output_format: PixelFormat = PixelFormat.RGBA8) -> JobRequest:
        """The request for ``snapshot`` (read where :meth:`area` said; Snapshot.blank for a job that
        reads no pixels), control layers read by ``read_layer`` at the same part of the canvas.
        Raises JobNotReady, or ValueError for pixels that do not fit what was asked (a selection
        that reached beyond its reported bounds)."""
        try:
            request = build_request(snapshot, self.caps, self.settings, output_format)
            return kit_controls.with_controls(request, self.kinds, self.controls, read_layer, (snapshot.width, snapshot.height))
        except ProtocolError as exc:
            raise JobNotReady(exc.message) from None

    def place(self, result: Result, document_size: tuple[int, int]) -> Placement:
        """Where the result's layers go on a document of ``document_size``, and their names."""
        return place_for(result, self.settings, self.mode, document_size)

    def record(self, job_id: str, result: Result, placement: Placement) -> HistoryEntry:
        """The history entry of the finished job."""
        return record_for(job_id, self.settings, self.mode, result, placement)


def plan_job(
    caps: Capabilities, settings: JobSettings, controls: Sequence[ControlLayer] = (), layers: Sequence[str] | None = None,
    strict: bool = False,
) -> JobPlan:
    """Plan a job of ``settings``. ``controls`` are the artist's control layers (the enabled
    ones go; none for a mode without a control input); ``layers`` the document's layer
    names, to catch one that is gone. ``strict``: the controls were asked for by name (a
    script), so a mode that takes none is an error rather than a silent no-op. Raises
    JobNotReady."""
    mode = kit_modes.find_mode(caps, settings.engine, settings.mode)
    if mode is None:
        raise JobNotReady("Connect to a server that offers this mode first.")
    kinds = kit_controls.control_kinds(caps, settings.engine)
    chosen = [c for c in controls if c.enabled]
    try:
        if strict and chosen:
            kit_controls.check_for_script(mode, kinds, chosen, layers if layers is not None else [c.layer for c in chosen])
        chosen = kit_controls.controls_for_job(mode, kinds, chosen, layers)
    except ValueError as exc:
        raise JobNotReady(str(exc)) from None
    return JobPlan(caps, settings, mode, tuple(kinds), tuple(chosen))


def place_for(result: Result, settings: JobSettings, mode: ModeSpec, document_size: tuple[int, int]) -> Placement:
    """Where a result of ``settings`` goes: the mode's placement, layers named after the prompt and seed."""
    return place_result(result, document_size, prompt_of(settings.params), mode.placement)


def record_for(job_id: str, settings: JobSettings, mode: ModeSpec, result: Result, placement: Placement) -> HistoryEntry:
    return history_entry(job_id or result.job or "", settings, result, placement, mode.label)


# -- events while the job runs ----------------------------------------------------------------


class JobSink(Protocol):
    """Where a job's events show: a status line, a progress figure, a preview."""

    def status(self, text: str) -> None: ...

    def fraction(self, value: float) -> None: ...

    def preview(self, event: Any) -> None:
        """A Preview, or the host's own prepared form of one (Krita scales it off its UI thread)."""


def report(event: Any, sink: JobSink) -> None:
    """Show one job event: a preview (``event.event`` is a Preview for a host's prepared one),
    else its status line and, when it says, how far the job is."""
    if isinstance(getattr(event, "event", event), Preview):
        sink.preview(event)
        return
    text = event_text(event)
    if text:
        sink.status(text)
    fraction = progress_fraction(event)
    if fraction is not None:
        sink.fraction(fraction)


# -- submitting through the client -------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    result: Result


@dataclass(frozen=True)
class Failed:
    """The server refused or failed the job (``field``: the offending one), or, with
    ``connection_lost``, the connection went."""

    message: str
    field: str | None = None
    connection_lost: bool = False


@dataclass(frozen=True)
class Cancelled:
    pass


Outcome = Union[Done, Failed, Cancelled]


class JobClient(Protocol):
    """What :func:`submit` needs of paintwire.protocol.Client."""

    def run(self, request: JobRequest, on_event: Callable[[JobEvent], None] | None = None, timeout: float | None = None) -> Result: ...


def submit(client: JobClient, request: JobRequest, on_event: Callable[[JobEvent], None] | None, timeout: float | None) -> Outcome:
    """Run ``request`` on the server and wait for its end; each event goes to ``on_event``
    in order. Failures are outcomes, not exceptions (a lost connection included)."""
    try:
        return Done(client.run(request, on_event=on_event, timeout=timeout))
    except JobCancelled:
        return Cancelled()
    except JobFailed as exc:
        return Failed(exc.error.message, exc.error.field)
    except ClientError as exc:
        return Failed(str(exc), connection_lost=True)


# -- the whole flow, for a host that can wait ---------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A job that ran and was written: ``written`` is what Document.write returned."""

    request: JobRequest
    result: Result
    placement: Placement
    written: Any
    entry: HistoryEntry


class JobError(Exception):
    """A job that ended without a result (``outcome`` says how); nothing was written."""

    def __init__(self, outcome: Failed | Cancelled) -> None:
        super().__init__(outcome.message if isinstance(outcome, Failed) else "The job was cancelled.")
        self.outcome = outcome


def read_request(document: Document, plan: JobPlan, source: InputSource, output_format: PixelFormat = PixelFormat.RGBA8) -> JobRequest:
    """Steps 2 to 4 on a document: read only what the job reads, then build the request."""
    size = document.size()
    if plan.reads_document:
        snapshot = document.snapshot(source, plan.area(size, document.selection_bounds()))
    else:
        snapshot = Snapshot.blank(*size)  # Generate sends no pixels, only the canvas size
    return plan.request(snapshot, document.layer_image, output_format)


def run_job(
    document: Document, client: JobClient, plan: JobPlan, source: InputSource = InputSource.VISIBLE, sink: JobSink | None = None,
    timeout: float | None = None, output_format: PixelFormat = PixelFormat.RGBA8,
) -> Finished:
    """Every step, in order, blocking: read, request, submit (events to ``sink``, previews
    to the document too), place and write. The preview leaves before anything is
    written, whatever the outcome; nothing is written unless a complete result came.
    Raises JobNotReady (or ValueError, see JobPlan.request) before sending, JobError
    when the job ended without a result."""
    return send_and_write(document, client, plan, read_request(document, plan, source, output_format), sink, timeout)


def send_and_write(
    document: Document, client: JobClient, plan: JobPlan, request: JobRequest, sink: JobSink | None = None, timeout: float | None = None,
) -> Finished:
    """The steps of :func:`run_job` after the request is built: submit, place, write, record.
    Raises JobError when the job ended without a result (nothing is written then)."""
    show = _Shown(document, sink)
    show.status(SENDING)
    try:
        outcome = submit(client, request, lambda event: report(event, show), timeout)
    finally:
        document.end_preview()
    if not isinstance(outcome, Done):
        raise JobError(outcome)
    result = outcome.result
    placement = plan.place(result, document.size())
    written = document.write(placement)
    return Finished(request, result, placement, written, plan.record(result.job, result, placement))


@dataclass(frozen=True)
class _Shown:
    """run_job's sink: previews on the document, and everything to the host's sink."""

    document: Document
    sink: JobSink | None

    def status(self, text: str) -> None:
        if self.sink is not None:
            self.sink.status(text)

    def fraction(self, value: float) -> None:
        if self.sink is not None:
            self.sink.fraction(value)

    def preview(self, event: Any) -> None:
        self.document.preview(event)
        if self.sink is not None:
            self.sink.preview(event)
