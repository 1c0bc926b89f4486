"""One run of a Paintwire procedure, from arguments to layers, without GIMP.

The GIMP side hands in a document (reads the snapshot, writes the placement),
a progress sink and, for interactive runs, a dialog; this module does the rest
in the same order every time: connect, pick the engine, ask the artist, read
the document, build the request, wait for the result, write it. Every failure
becomes a PluginError with a sentence for the artist; nothing is written to
the document unless a complete result arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from paintwire.protocol import (
    Capabilities,
    Client,
    ClientError,
    JobCancelled,
    JobFailed,
    ModeSpec,
    PixelFormat,
    Preview,
    Progress,
    ProtocolError,
    Queued,
    Started,
)
from paintwire.protocol import workflow

from actions import Args, PluginError, check_source, choose_engine, job_params
from settings import CONNECT_TIMEOUT, Connection, check_url

CLIENT_NAME = "paintwire-gimp/0.1.0"


class Document(Protocol):
    def size(self) -> tuple[int, int]: ...

    def snapshot(self, source: str) -> workflow.Snapshot: ...

    def write(self, placement: workflow.Placement, target: workflow.Target) -> Any: ...

    def preview(self, event: Preview) -> None:
        """Show a preview while the job runs (a temporary layer)."""

    def end_preview(self) -> None:
        """Remove what ``preview`` showed; called whatever the job's outcome, before anything is written."""


class ProgressSink(Protocol):
    def start(self, text: str) -> None: ...

    def text(self, text: str) -> None: ...

    def fraction(self, value: float) -> None: ...

    def end(self) -> None: ...


@dataclass(frozen=True)
class DialogRequest:
    """What an interactive dialog needs to show its form."""

    ui_mode: str
    capabilities: Capabilities
    choices: list[workflow.Choice]
    initial: workflow.Choice
    args: Args


# A dialog returns the arguments to run with, or None when the artist cancelled.
Dialog = Callable[[DialogRequest], "Args | None"]


@dataclass(frozen=True)
class Outcome:
    args: Args  # the arguments that ran (to save as the procedure's last values)
    written: Any  # what Document.write returned
    job_id: str
    placement: workflow.Placement


class Cancelled(Exception):
    """The artist closed the dialog: not an error."""


def event_text(event: Any) -> str | None:
    if isinstance(event, Queued):
        return "Paintwire: waiting for the server" + (f" ({event.position} jobs ahead)" if event.position else "")
    if isinstance(event, Started):
        return "Paintwire: working"
    if isinstance(event, Progress):
        stage = f" ({event.stage})" if event.stage else ""
        return f"Paintwire: step {event.step} of {event.total}{stage}"
    return None


def run(
    ui_mode: str,
    args: Args,
    connection: Connection,
    document: Document,
    progress: ProgressSink,
    dialog: Dialog | None = None,
    client_factory: Callable[..., Client] = Client,
) -> Outcome:
    """Run ``ui_mode`` on ``document``. Raises PluginError or Cancelled."""
    problem = check_url(connection.url)
    if problem:
        raise PluginError(problem)
    check_source(args.source)
    client = client_factory(connection.url, name=CLIENT_NAME, token=connection.token_or_none, timeout=CONNECT_TIMEOUT)
    try:
        progress.start("Paintwire: connecting")
        caps = _connect(client, connection)
        try:
            choice = choose_engine(caps, ui_mode, args.engine, args.model)
        except PluginError:
            if dialog is None:
                raise
            # The last-used model is gone from the server: the dialog starts from its first one.
            choice = choose_engine(caps, ui_mode)
        if dialog is not None:
            choices = workflow.model_choices(caps, ui_mode)
            new_args = dialog(DialogRequest(ui_mode, caps, choices, choice, args))
            if new_args is None:
                raise Cancelled()
            args = new_args
            check_source(args.source)
            choice = choose_engine(caps, ui_mode, args.engine, args.model)
        mode = workflow.find_mode(caps, choice.engine, ui_mode)
        assert mode is not None  # choose_engine only offers engines that have it
        request = _request(document, caps, choice, ui_mode, mode, args)
        progress.text("Paintwire: sending")
        result = _wait(client, request, connection, progress, document)
        document.end_preview()
        placement = workflow.place_result(result, document.size(), workflow.prompt_of(request.params))
        # An expand grows this image's canvas in place; another size (upscale) opens a new image.
        target = workflow.result_target(workflow.JobSettings(ui_mode, choice.engine, choice.model, request.params), result, document.size())
        written = document.write(placement, target)
        return Outcome(args, written, result.job, placement)
    finally:
        document.end_preview()
        client.close()
        progress.end()


def _connect(client: Client, connection: Connection) -> Capabilities:
    try:
        return client.connect()
    except ClientError as exc:
        raise PluginError(f"{exc} (Set the address in Filters > Paintwire > Connection.)") from None
    except JobFailed as exc:  # hello refused: bad token, incompatible version
        raise PluginError(f"The Paintwire server at {connection.url} refused the connection: {exc.error.message}") from None


def _request(document: Document, caps: Capabilities, choice: workflow.Choice, ui_mode: str, mode: ModeSpec, args: Args):
    params = job_params(mode, args)
    snapshot = document.snapshot(args.source) if (mode.needs_image or mode.mask_allowed) else _blank(document)
    settings = workflow.JobSettings(ui_mode, choice.engine, choice.model, params)
    try:
        return workflow.build_request(snapshot, caps, settings)
    except ProtocolError as exc:
        raise PluginError(exc.message) from None


def _blank(document: Document) -> workflow.Snapshot:
    # Generate sends no pixels; the snapshot only carries the canvas size.
    width, height = document.size()
    return workflow.Snapshot(width, height, bytes(width * height * 4), PixelFormat.RGBA8)


def _wait(client: Client, request, connection: Connection, progress: ProgressSink, document: Document):
    def on_event(event: Any) -> None:
        text = event_text(event)
        if text:
            progress.text(text)
        if isinstance(event, Progress) and event.total > 0:
            progress.fraction(min(max(event.step / event.total, 0.0), 1.0))
        if isinstance(event, Preview):
            document.preview(event)

    try:
        return client.run(request, on_event=on_event, timeout=connection.timeout)
    except JobFailed as exc:
        field = f" ({exc.error.field})" if exc.error.field else ""
        raise PluginError(f"The Paintwire server could not do this: {exc.error.message}{field}") from None
    except JobCancelled:
        raise PluginError("The job was cancelled on the server.") from None
    except ClientError as exc:
        raise PluginError(f"Lost the connection to the Paintwire server: {exc}") from None
