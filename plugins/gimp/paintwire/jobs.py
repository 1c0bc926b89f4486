"""One run of a Paintwire procedure, from arguments to layers, without GIMP.

The GIMP side hands in a document (hostkit's Document: gimp_document.py), a
progress sink and, for interactive runs, a dialog. This module connects,
picks the mode and engine and asks the artist; the job itself (read the
document, build the request, wait for the result, write it) is hostkit's
job_flow, the same steps as Krita's.
Every failure becomes a PluginError with a sentence for the artist; nothing is
written to the document unless a complete result arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

from paintwire.hostkit import document as kit_document
from paintwire.hostkit import job_flow
from paintwire.hostkit import modes as kit_modes
from paintwire.hostkit.modes import Choice
from paintwire.hostkit.placement import Placement
from paintwire.hostkit.request import JobSettings
from paintwire.hostkit.sources import InputSource
from paintwire.hostkit.status import CONNECT_TIMEOUT, ENGINE_START_SECONDS
from paintwire.protocol import Capabilities, Client, ClientError, InputKind, JobFailed, ModeSpec, Recall

from actions import Args, PluginError, check_source, choose_engine, job_params
from settings import Connection, check_url

CLIENT_NAME = "paintwire-gimp/0.1.0"
# GIMP gathers the picture and the selection (a sketch is painted on the picture itself),
# and layers of the image as control layers.
SUPPORTED_INPUTS = (InputKind.IMAGE, InputKind.MASK, InputKind.SKETCH, InputKind.CONTROL)


# What this module reads from and writes to GIMP's image (gimp_document.GimpDocument).
Document = kit_document.Document


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
        caps = _connect(client, connection, progress)
        offered = kit_modes.offered_modes(caps, SUPPORTED_INPUTS)
        if not mode:
            if not offered:
                raise PluginError("This Paintwire server offers no modes.")
            mode = offered[0].name
        mode, choice = _first_choice(caps, mode, args, offered, dialog is not None, mode_fixed)
        if dialog is not None:
            args, caps, mode, choice = _ask(dialog, client, document, DialogRequest(mode, offered, mode_fixed, caps, choice, args))
        spec = kit_modes.find_mode(caps, choice.engine, mode)
        assert spec is not None  # choose_engine only offers engines that have it
        finished = _run_job(client, _plan(document, caps, choice, spec, args), document, check_source(args.source), connection, progress)
        return Outcome(replace(args, mode=mode), finished.written, finished.result.job, finished.placement)
    finally:
        document.end_preview()
        client.close()
        progress.end()


def _connect(client: Client, connection: Connection, progress: ProgressSink) -> Capabilities:
    """The server's capabilities, once its engines have started."""
    try:
        caps = client.connect()
    except ClientError as exc:
        raise PluginError(f"{exc} (Set the address in Filters > Paintwire > Connection.)") from None
    except JobFailed as exc:  # hello refused: bad token, incompatible version
        raise PluginError(f"The Paintwire server at {connection.url} refused the connection: {exc.error.message}") from None
    if any(e.starting for e in caps.engines):
        progress.text("Paintwire: the server is starting its engines")
        caps = _wait_until_started(client)
    return caps


def _first_choice(caps: Capabilities, mode: str, args: Args, offered: list[ModeSpec], interactive: bool,
                  mode_fixed: bool) -> tuple[str, Choice]:
    """The mode and the engine and model to start from: the arguments' when the server still has them."""
    try:
        return mode, choose_engine(caps, mode, args.engine, args.model)
    except PluginError:
        if not interactive:
            raise
    # The last-used model (or mode) is gone from the server: the dialog starts from the first one.
    if not mode_fixed and all(m.name != mode for m in offered):
        mode = offered[0].name if offered else mode
    return mode, choose_engine(caps, mode)


def _ask(dialog: Dialog, client: Client, document: Document, request: DialogRequest) -> tuple[Args, Capabilities, str, Choice]:
    """The artist's choice in the dialog: the arguments, the capabilities (a refresh may
    have brought new models), the mode and the engine and model. Raises DialogClosed."""
    latest = [request.capabilities]

    def refresh() -> Capabilities:
        latest[0] = _rescan(client)
        return latest[0]

    args = dialog(replace(request, refresh=refresh, recalls=lambda: _recalls(client), layers=tuple(document.layer_names())))
    if args is None:
        raise DialogClosed()
    mode = args.mode if (args.mode and not request.mode_fixed) else request.mode
    check_source(args.source)
    return args, latest[0], mode, choose_engine(latest[0], mode, args.engine, args.model)


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


def _plan(document: Document, caps: Capabilities, choice: Choice, mode: ModeSpec, args: Args) -> job_flow.JobPlan:
    settings = JobSettings(mode.name, choice.engine, choice.model, job_params(mode, args))
    controls = [c for c in args.controls() if c.enabled]
    try:
        # Controls asked for by the artist or a script: a mode without a control input is an error, not a silent no-op.
        return job_flow.plan_job(caps, settings, controls, document.layer_names() if controls else None, strict=True)
    except job_flow.JobNotReady as exc:
        raise PluginError(str(exc)) from None


@dataclass(frozen=True)
class _ProgressLine:
    """The job's events on GIMP's progress bar (previews go to the document)."""

    progress: ProgressSink

    def status(self, text: str) -> None:
        self.progress.text(f"Paintwire: {text}")

    def fraction(self, value: float) -> None:
        self.progress.fraction(value)

    def preview(self, event: object) -> None:
        pass


def _run_job(client: Client, plan: job_flow.JobPlan, document: Document, source: InputSource, connection: Connection,
             progress: ProgressSink) -> job_flow.Finished:
    try:
        request = job_flow.read_request(document, plan, source)
    except job_flow.JobNotReady as exc:
        raise PluginError(str(exc)) from None
    except ValueError as exc:  # the selection reached beyond its reported bounds: said rather than a crash
        raise PluginError(f"Paintwire could not read the selection: {exc}") from None
    try:
        return job_flow.send_and_write(document, client, plan, request, _ProgressLine(progress), connection.timeout)
    except job_flow.JobError as exc:
        raise PluginError(_failure(exc.outcome)) from None


def _failure(outcome: job_flow.Failed | job_flow.Cancelled) -> str:
    if isinstance(outcome, job_flow.Cancelled):
        return "The job was cancelled on the server."
    if outcome.connection_lost:
        return f"Lost the connection to the Paintwire server: {outcome.message}"
    field = f" ({outcome.field})" if outcome.field else ""
    return f"The Paintwire server could not do this: {outcome.message}{field}"
