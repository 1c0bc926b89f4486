"""One run of a Paintwire procedure, from arguments to layers, without GIMP.

The GIMP side hands in a document (reads the snapshot, writes the placement),
a progress sink and, for interactive runs, a dialog; this module does the rest
in the same order every time: connect, pick the mode and engine, ask the
artist, read the document, build the request, wait for the result, write it.
Every failure becomes a PluginError with a sentence for the artist; nothing is
written to the document unless a complete result arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

from paintwire.hostkit import controls as kit_controls
from paintwire.hostkit import modes as kit_modes
from paintwire.hostkit.controls import ControlLayer
from paintwire.hostkit.modes import Choice
from paintwire.hostkit.placement import Placement, place_result
from paintwire.hostkit.request import JobSettings, build_request, prompt_of, read_area, reads_document
from paintwire.hostkit.snapshot import Snapshot
from paintwire.hostkit.sources import InputSource
from paintwire.hostkit.status import CONNECT_TIMEOUT, ENGINE_START_SECONDS, event_text, progress_fraction
from paintwire.protocol import (
    Capabilities, Client, ClientError, ImagePayload, InputKind, JobCancelled, JobFailed, ModeSpec, Preview, ProtocolError,
    Recall,
)
from paintwire.protocol.rect import Rect
from paintwire.protocol.messages import JobEvent

from actions import Args, PluginError, check_source, choose_engine, job_params
from settings import Connection, check_url

CLIENT_NAME = "paintwire-gimp/0.1.0"
# GIMP gathers the picture and the selection (a sketch is painted on the picture itself),
# and layers of the image as control layers.
SUPPORTED_INPUTS = (InputKind.IMAGE, InputKind.MASK, InputKind.SKETCH, InputKind.CONTROL)


class Document(Protocol):
    def size(self) -> tuple[int, int]: ...

    def selection_bounds(self) -> Rect | None:
        """The canvas rectangle holding the selection, or None when nothing is selected."""

    def snapshot(self, source: InputSource, area: Rect | None = None) -> Snapshot:
        """The document's pixels and selection, where ``area`` says (None: the whole canvas)."""

    def write(self, placement: Placement) -> Any: ...

    def layer_names(self) -> list[str]: ...

    def layer_image(self, control: ControlLayer, region: Rect) -> ImagePayload:
        """A control layer's pixels in ``region`` of the canvas."""

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
    """What an interactive dialog needs to show its form. ``modes`` are those the
    server offers; the artist may switch among them unless ``mode_fixed``."""

    mode: str
    modes: list[ModeSpec]
    mode_fixed: bool
    capabilities: Capabilities
    initial: Choice
    args: Args
    # Asks the server to look at its model folders again; returns the new capabilities.
    refresh: Callable[[], Capabilities] | None = None
    # The recalls sent to this dialog from the server's history since the last call (never waits).
    recalls: Callable[[], list[Recall]] | None = None
    layers: tuple[str, ...] = ()  # the image's layer names, for the control-layer pickers

    def choices(self, mode: str, caps: Capabilities | None = None) -> list[Choice]:
        return kit_modes.model_choices(caps or self.capabilities, mode)


# A dialog returns the arguments to run with (their ``mode`` set), or None when the artist cancelled.
Dialog = Callable[[DialogRequest], "Args | None"]


@dataclass(frozen=True)
class Outcome:
    args: Args  # the arguments that ran (to save as the procedure's last values)
    written: Any  # what Document.write returned
    job_id: str
    placement: Placement


class DialogClosed(Exception):
    """The artist closed the dialog: not an error."""


def run(
    mode: str,
    args: Args,
    connection: Connection,
    document: Document,
    progress: ProgressSink,
    dialog: Dialog | None = None,
    client_factory: Callable[..., Client] = Client,
    mode_fixed: bool = True,
) -> Outcome:
    """Run ``mode`` (a server mode name; empty: the first the server offers) on
    ``document``. With ``mode_fixed`` false the dialog may switch modes.
    Raises PluginError or DialogClosed."""
    problem = check_url(connection.url)
    if problem:
        raise PluginError(problem)
    check_source(args.source)
    client = client_factory(connection.url, name=CLIENT_NAME, token=connection.token_or_none, timeout=CONNECT_TIMEOUT)
    if dialog is not None:
        client.recall = True  # an open dialog takes settings sent to it from the server's history
    client.updates = True  # a server that has just started says when its slow engines are ready
    try:
        progress.start("Paintwire: connecting")
        caps = _connect(client, connection)
        if any(e.starting for e in caps.engines):
            progress.text("Paintwire: the server is starting its engines")
            caps = _wait_until_started(client)
        offered = kit_modes.offered_modes(caps, SUPPORTED_INPUTS)
        if not mode:
            if not offered:
                raise PluginError("This Paintwire server offers no modes.")
            mode = offered[0].name
        try:
            choice = choose_engine(caps, mode, args.engine, args.model)
        except PluginError:
            if dialog is None:
                raise
            # The last-used model (or mode) is gone from the server: the dialog starts from the first one.
            if not mode_fixed and all(m.name != mode for m in offered):
                mode = offered[0].name if offered else mode
            choice = choose_engine(caps, mode)
        if dialog is not None:
            latest = [caps]

            def refresh() -> Capabilities:
                latest[0] = _rescan(client)
                return latest[0]

            new_args = dialog(DialogRequest(mode, offered, mode_fixed, caps, choice, args, refresh=refresh,
                                            recalls=lambda: _recalls(client), layers=tuple(document.layer_names())))
            if new_args is None:
                raise DialogClosed()
            args = new_args
            caps = latest[0]  # a refresh in the dialog may have brought new models
            mode = args.mode if (args.mode and not mode_fixed) else mode
            check_source(args.source)
            choice = choose_engine(caps, mode, args.engine, args.model)
        spec = kit_modes.find_mode(caps, choice.engine, mode)
        assert spec is not None  # choose_engine only offers engines that have it
        request = _request(document, caps, choice, spec, args)
        progress.text("Paintwire: sending")
        result = _wait(client, request, connection, progress, document)
        document.end_preview()
        placement = place_result(result, document.size(), prompt_of(request.params), spec.placement)
        written = document.write(placement)
        return Outcome(replace(args, mode=mode), written, result.job, placement)
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


def _wait_until_started(client: Client) -> Capabilities:
    try:
        return client.wait_until_started(ENGINE_START_SECONDS)
    except ClientError as exc:
        raise PluginError(str(exc)) from None


def _recalls(client: Client) -> list[Recall]:
    try:
        return [m for m in client.poll() if isinstance(m, Recall)]
    except ClientError:
        return []  # a lost connection shows when the job is sent


def _rescan(client: Client) -> Capabilities:
    try:
        return client.rescan()
    except (ClientError, JobFailed) as exc:
        raise PluginError(f"The Paintwire server could not refresh its models: {exc}") from None


def _request(document: Document, caps: Capabilities, choice: Choice, mode: ModeSpec, args: Args):
    params = job_params(mode, args)
    settings = JobSettings(mode.name, choice.engine, choice.model, params)
    kinds = kit_controls.control_kinds(caps, choice.engine)
    controls = [c for c in args.controls() if c.enabled]
    if controls:  # asked for by the artist or a script: a mode without a control input is an error, not a silent no-op
        try:
            kit_controls.check_for_script(mode, kinds, controls, document.layer_names())
        except ValueError as exc:
            raise PluginError(str(exc)) from None
    try:
        if reads_document(mode):
            # Read only what the job reads (the mode's crop rule around the selection).
            width, height = document.size()
            area = read_area(caps, settings, width, height, document.selection_bounds())
            snapshot = document.snapshot(check_source(args.source), None if area == Rect(0, 0, width, height) else area)
        else:
            snapshot = Snapshot.blank(*document.size())  # Generate sends no pixels, only the canvas size
        request = build_request(snapshot, caps, settings)
        # Control layers: the same part of the canvas as the picture.
        return kit_controls.with_controls(request, kinds, controls, document.layer_image, document.size())
    except ProtocolError as exc:
        raise PluginError(exc.message) from None
    except ValueError as exc:  # the selection reached beyond its reported bounds: say so rather than crash
        raise PluginError(f"Paintwire could not read the selection: {exc}") from None


def _wait(client: Client, request, connection: Connection, progress: ProgressSink, document: Document):
    def on_event(event: JobEvent) -> None:
        text = event_text(event)
        if text:
            progress.text(f"Paintwire: {text}")
        fraction = progress_fraction(event)
        if fraction is not None:
            progress.fraction(fraction)
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
