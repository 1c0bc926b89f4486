"""The docker's jobs, without Qt: Generate, the job's events, its result
written into the right document, Cancel, the history's "apply again" and
"use settings", and settings recalled from the server's history or from an
image's metadata.

The job's steps are hostkit's job_flow, as in GIMP (plan, read only what the
job reads, request, events, placement, history); what is Krita's is the
threading: the document is read on the UI thread, the request is built and
sent in the worker thread, the result written back on the UI thread. It talks
to three small protocols instead of to Krita and Qt: ``Documents``
(document.py: read a snapshot, write a placement), ``Transport`` (worker.py:
submit, cancel) and ``View`` (the docker's widgets: status line, progress,
preview, lists). Tests drive it with
stand-ins for all three (tests/unit/test_krita_controller.py).
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol

from paintwire.hostkit import controls as kit_controls
from paintwire.hostkit import job_flow
from paintwire.hostkit import modes as kit_modes
from paintwire.hostkit.document import where_placed
from paintwire.hostkit.placement import Placement, place_result
from paintwire.hostkit.recall import into_document, recollect, settings_in_image
from paintwire.hostkit.request import prompt_of
from paintwire.hostkit.status import SENDING, describe_error
from paintwire.protocol import Capabilities, JobRequest, Preview, PixelFormat, PlacementKind, Queued, Recall, Result
from paintwire.protocol.rect import Rect
from paintwire.protocol.messages import JobEvent

from .state import PanelState, controls_from_bytes, controls_to_bytes, history_from_bytes, history_to_bytes

# Krita hands out 8-bit RGBA as B, G, R, A: asking for results in the same
# order means the plug-in writes them as they come.
OUTPUT_FORMAT = PixelFormat.BGRA8


class Documents(Protocol):
    """What the controller needs from Krita's documents (document.py provides it)."""

    DocumentError: type[Exception]

    def active_document(self) -> Any: ...

    def is_open(self, doc: Any) -> bool: ...

    def size(self, doc: Any) -> tuple[int, int]: ...

    def title(self, doc: Any, what: str) -> str: ...

    def check_supported(self, doc: Any) -> str: ...

    def read_snapshot(self, doc: Any, input_source: str, mask_layer: str | None = None, sketch_layer: str | None = None,
                      area_for: Callable[[Rect | None], Rect] | None = None) -> Any:
        """Krita's raw reads (UI thread), of the part of the canvas ``area_for`` gives for what is
        selected; the returned object's ``finish()`` makes the Snapshot (worker thread)."""

    def write_placement(self, doc: Any, placement: Placement, title: str = ..., resize_target: str = ...) -> Any: ...

    def show_preview(self, doc: Any, preview: Any) -> None:
        """Show a preview (worker-prepared) on the canvas: a temporary layer."""

    def end_preview(self) -> None:
        """Remove the canvas preview, whatever ended the job."""

    def load_history(self, doc: Any) -> bytes | None: ...

    def save_history(self, doc: Any, data: bytes) -> None: ...

    def layer_paths(self, doc: Any) -> list[str]: ...

    def current_layer_path(self, doc: Any) -> str | None: ...

    def read_layers(self, doc: Any, paths: list[str], area: Any = None) -> Any:
        """Krita's raw reads of control layers in ``area`` (a Rect; None: the canvas) on the UI
        thread; ``payload(path, region)`` converts one (worker thread)."""

    def load_controls(self, doc: Any) -> bytes | None: ...

    def save_controls(self, doc: Any, data: bytes) -> None: ...


class Transport(Protocol):
    """The connection (worker.py's Worker): it reports back through the controller's on_* methods."""

    def submit(self, number: int, request: JobRequest | Callable[[], JobRequest]) -> None: ...

    def cancel(self) -> None: ...

    def preprocess(self, engine: str, control: Callable[[], Any]) -> None:
        """Ask for the preprocessed image of one control (built in the worker thread);
        the answer comes back through on_preprocessed or on_preprocess_failed."""


class View(Protocol):
    """What the docker shows."""

    def show_status(self, text: str, error: bool = False) -> None: ...

    def show_progress(self, fraction: float | None) -> None: ...  # None: busy, no figure yet

    def show_preview(self, event: Preview) -> None: ...

    def job_ended(self) -> None: ...  # progress and preview back to rest

    def refresh(self) -> None: ...  # state changed: controls, buttons, history list

    def offer_recall(self, recall: Recall, summary: str) -> None: ...  # without blocking: apply settings, open as layer, or dismiss
    def show_control_preview(self, image: Any, caption: str) -> None: ...  # None: clear it


class _JobShown:
    """A job's events in the docker (hostkit's JobSink): status line, progress, previews."""

    def __init__(self, controller: "Controller") -> None:
        self.controller = controller

    def status(self, text: str) -> None:
        self.controller.view.show_status(text)

    def fraction(self, value: float) -> None:
        self.controller.view.show_progress(value)

    def preview(self, event: Any) -> None:
        """A Preview, or one the worker prepared for the canvas."""
        controller = self.controller
        controller.view.show_preview(event)
        try:
            with controller.timed("preview.canvas"):
                controller.documents.show_preview(controller.state.ticket.document, event)
        except Exception:  # the canvas preview is a nicety; the job goes on
            traceback.print_exc()


class Controller:
    """One docker's jobs. Every method runs on Krita's UI thread; none waits on the network."""

    def __init__(self, state: PanelState, documents: Documents, transport: Transport, view: View, save: Callable[[], None]) -> None:
        self.state = state
        self.documents = documents
        self.transport = transport
        self.view = view
        self.save = save
        # Each open document's history and thumbnails, read from the document when first shown.
        self._histories: list[tuple[Any, Any, dict]] = []
        self._thumbnails: dict[int, bytes] = {}  # ticket number -> PNG, until the result is recorded
        # Longest time (ms) each step took on the UI thread, for the host test to report.
        self.ui_times: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.ui_times[name] = max(self.ui_times.get(name, 0.0), ms)

    # -- connection ----------------------------------------------------------------------

    def connected(self, caps: Capabilities, server: str) -> None:
        self.state.set_capabilities(caps, server)
        modes = ", ".join(m.label for m in self.state.modes()) or "none"
        # What the server lacks (no model installed), instead of modes that can only fail.
        lacking = "".join(f" {notice}" for notice in kit_modes.engine_notices(caps))
        devices = "; ".join(e.device.summary() for e in caps.engines if e.device)  # "RTX 3060, fp16, 10.8 of 12.0 GiB free"
        device = f" Device: {devices}." if devices else ""
        self.view.show_status(f"Connected to {server or 'server'} at {self.state.settings.url}. Modes: {modes}.{device}{lacking}")
        self.view.refresh()

    def capabilities_changed(self, caps: Capabilities) -> None:
        """The server's models or engines changed (pushed, or after Refresh): new lists, no
        reconnect. An engine that was still starting when the docker connected arrives this way."""
        previous = self.state.capabilities
        before = {m.name for m in previous.models} if previous else set()
        started = kit_modes.engines_started(previous, caps) if previous is not None else []
        self.state.set_capabilities(caps, self.state.server_name)
        self.view.refresh()
        if self.state.busy:
            return
        if started:
            modes = ", ".join(m.label for m in self.state.modes()) or "none"
            self.view.show_status(f"{', '.join(e.label for e in started)} ready. Modes: {modes}.")
            return
        added = len({m.name for m in caps.models} - before)
        self.view.show_status(f"Models: {len(caps.models)}" + (f", {added} new." if added else ", nothing new."))

    def disconnected(self, reason: str) -> None:
        if self.state.busy:
            self.state.finish_job(None)
            self._end_job()
        self.state.set_capabilities(None)
        self.view.show_status(describe_error(reason, False) if reason else "Disconnected.", error=bool(reason))
        self.view.refresh()

    # -- jobs ----------------------------------------------------------------------------

    def generate(self, mask_layer: str | None = None, sketch_layer: str | None = None) -> bool:
        """Read the active document and send the job. False (with the reason on the
        status line) when it cannot start."""
        try:
            doc = self.documents.active_document()
            settings = self.state.job_settings()
            caps = self.state.capabilities
            assert caps is not None  # job_settings needs a server
            plan = job_flow.plan_job(caps, settings, self.state.controls, self.documents.layer_paths(doc))
            size = self.documents.size(doc)
            with self.timed("generate.read"):
                # Only what the job reads: the mode's crop rule around what is selected.
                raw = self.documents.read_snapshot(doc, self.state.settings.input_source, mask_layer, sketch_layer,
                                                   area_for=lambda selected: plan.read_area(size, selected))
                # Control layers: the same part of the canvas as the picture.
                layers = self.documents.read_layers(doc, plan.control_layers, raw.area) if plan.controls else None

            def request() -> JobRequest:
                # Built in the worker thread: converting and checking the pixels is no work for Krita's UI thread.
                return plan.request(raw.finish(), lambda c, region: layers.payload(c.layer, region), OUTPUT_FORMAT)
            ticket = self.state.start_job(settings, doc, (raw.width, raw.height))
        except (self.documents.DocumentError, ValueError) as exc:  # what the artist can fix: said as it is
            self.view.show_status(str(exc), error=True)
            return False
        except Exception as exc:  # never let a surprise reach Krita's error dialog
            self.view.show_status(f"Cannot start: {exc}", error=True)
            traceback.print_exc()
            return False
        self.save()
        self.view.show_progress(None)
        self.view.show_status(SENDING)
        self.view.refresh()
        self.transport.submit(ticket.number, request)
        return True

    def cancel(self) -> None:
        if self.state.ticket is not None:
            self.state.ticket.cancel_requested = True
            self.view.show_status("Cancelling \u2026")
            self.transport.cancel()

    def _current(self, number: int) -> bool:
        return self.state.ticket is not None and self.state.ticket.number == number

    def on_event(self, number: int, event: JobEvent) -> None:
        if not self._current(number):
            return
        assert self.state.ticket is not None
        if isinstance(event, Queued):
            self.state.ticket.job_id = event.job
        job_flow.report(event, _JobShown(self))

    def on_done(self, number: int, result: Result) -> None:
        if not self._current(number):
            return
        ticket, placement = self.state.finish_job(result)
        assert placement is not None
        self._end_job()
        resize_target = self.state.settings.resize_target
        try:
            if not self.documents.is_open(ticket.document):
                raise self.documents.DocumentError("The document of this job was closed; the result is kept in the history.")
            with self.timed("done.write"):
                self.documents.write_placement(ticket.document, placement, self.documents.title(ticket.document, ticket.mode.label), resize_target)
            names = ", ".join(l.name for l in placement.layers)
            where = where_placed(placement, ticket.document_size, resize_target == PlacementKind.RESIZE.value)
            self.view.show_status(f"Done: {names} added {where}.")
        except Exception as exc:
            self.view.show_status(f"The result could not be added: {exc}", error=True)
            if not isinstance(exc, self.documents.DocumentError):
                traceback.print_exc()
        with self.timed("done.history"):
            self._record(ticket, result, placement, self._thumbnails.pop(number, b""))
        self.save()
        self.view.refresh()

    def on_thumbnail(self, number: int, png: bytes) -> None:
        if self._current(number):
            self._thumbnails[number] = png

    def _end_job(self) -> None:
        """Whatever ended the job: its preview leaves the canvas before anything else is written."""
        try:
            with self.timed("preview.clear"):
                self.documents.end_preview()
        except Exception:
            traceback.print_exc()
        self.view.job_ended()

    def _record(self, ticket: Any, result: Result, placement: Placement, thumbnail: bytes) -> None:
        """Add the job to its document's history, and store that history in the document."""
        doc = ticket.document
        if not self.documents.is_open(doc):
            self.state.record(ticket, result, placement, thumbnail)
            return
        active = self.state.history, self.state.thumbnails
        self.state.show_history(*self._history_of(doc))
        self.state.record(ticket, result, placement, thumbnail)
        self._remember(doc, self.state.history, self.state.thumbnails)
        self.documents.save_history(doc, history_to_bytes(self.state.history, self.state.thumbnails))
        if self._shown is not None and not (self._shown == doc):
            self.state.show_history(*active)

    # -- each document's history -------------------------------------------------------

    _shown: Any = None

    def _history_of(self, doc: Any) -> tuple[Any, dict]:
        self._histories = [entry for entry in self._histories if self.documents.is_open(entry[0])]
        for d, history, thumbnails in self._histories:
            if d == doc:
                return history, thumbnails
        history, thumbnails = history_from_bytes(self.documents.load_history(doc))
        self._histories.append((doc, history, thumbnails))
        return history, thumbnails

    def _remember(self, doc: Any, history: Any, thumbnails: dict) -> None:
        self._histories = [entry for entry in self._histories if not entry[0] == doc] + [(doc, history, thumbnails)]

    def document_changed(self, doc: Any) -> None:
        """The active document changed: show its history and control layers (from the .kra when it was saved with them)."""
        if doc is not None and self._shown is not None and doc == self._shown:
            return
        self._shown = doc
        if doc is None:
            from paintwire.hostkit.history import History

            self.state.show_history(History(), {})
            self.state.controls = []
        else:
            self.state.show_history(*self._history_of(doc))
            self.state.controls = controls_from_bytes(self.documents.load_controls(doc))
        self.view.show_control_preview(None, "")
        self.view.refresh()

    # -- control layers (the active document's; saved in it) ------------------------------

    def add_control(self) -> None:
        """Add the active layer as a control layer, of the kind added last (or the first offered)."""
        try:
            doc = self.documents.active_document()
            path = self.documents.current_layer_path(doc)
            if path is None:
                raise ValueError("Select a paint layer to use as a control layer.")
            control = self.state.add_control(path)
        except (self.documents.DocumentError, ValueError) as exc:
            self.view.show_status(str(exc), error=True)
            return
        self._controls_changed(doc)
        self.view.show_status(f"Control layer added: {control.layer} as {control.kind}.")

    def remove_control(self, index: int) -> None:
        self.state.remove_control(index)
        self.view.show_control_preview(None, "")
        self._controls_changed(self._shown)

    def change_control(self, index: int, **changes: Any) -> None:
        """One value of a control changed in the docker. A new kind rebuilds the row."""
        if not 0 <= index < len(self.state.controls):
            return
        kind_before = self.state.controls[index].kind
        self.state.change_control(index, **changes)
        self._controls_changed(self._shown, rebuild=self.state.controls[index].kind != kind_before)

    def _controls_changed(self, doc: Any, rebuild: bool = True) -> None:
        if doc is not None and self.documents.is_open(doc):
            try:
                self.documents.save_controls(doc, controls_to_bytes(self.state.controls))
            except Exception:  # keeping the list in the document is a nicety; the panel has it
                traceback.print_exc()
        if rebuild:
            self.view.refresh()

    def preview_control(self, index: int) -> None:
        """Ask the server for the image its model would read from control ``index``, shown in the docker."""
        if not 0 <= index < len(self.state.controls):
            return
        control = self.state.controls[index]
        try:
            choice = self.state.current_choice()
            if choice is None:
                raise ValueError("Connect to a server first.")
            if self.state.busy:
                raise ValueError("The preview is made between jobs; wait for this one or cancel it.")
            doc = self.documents.active_document()
            kinds = self.state.control_kinds()
            problem = kit_controls.control_problem(control, kinds, self.documents.layer_paths(doc))
            if problem:
                raise ValueError(problem)
            spec = kit_controls.kind_spec(kinds, control.kind)
            assert spec is not None  # control_problem said so
            with self.timed("control.read"):
                layers = self.documents.read_layers(doc, [control.layer])
        except (self.documents.DocumentError, ValueError) as exc:
            self.view.show_status(str(exc), error=True)
            return
        self.view.show_status(f"Preprocessing {control.layer} \u2026")
        self.transport.preprocess(choice.engine, lambda: kit_controls.control_input(control, spec, layers.payload(control.layer)))
        self._preview_caption = f"{control.layer}: {spec.label or spec.name}, {control.preprocessor or spec.default_preprocessor}"

    _preview_caption = ""

    def on_preprocessed(self, image: Any) -> None:
        self.view.show_control_preview(image, self._preview_caption)
        self.view.show_status(f"Preview of {self._preview_caption}.")

    def on_preprocess_failed(self, message: str) -> None:
        self.view.show_control_preview(None, "")
        self.view.show_status(describe_error(message, True), error=True)

    def on_failed(self, number: int, message: str) -> None:
        if not self._current(number):
            return
        self.state.finish_job(None)
        self._end_job()
        self.view.show_status(describe_error(message, True), error=True)
        self.view.refresh()

    def on_cancelled(self, number: int) -> None:
        if not self._current(number):
            return
        self.state.finish_job(None)
        self._end_job()
        self.view.show_status("Cancelled; the document was not changed.")
        self.view.refresh()

    # -- history -------------------------------------------------------------------------

    def apply_history(self, row: int) -> None:
        """Add result ``row`` of the history to the active document again."""
        if not 0 <= row < len(self.state.history):
            return
        entry = self.state.history[row]
        if entry.result is None:
            self.view.show_status("The pixels of this result are from an earlier session; use its settings to make it again.", error=True)
            return
        # As new layers when the sizes match, else as a new document (this canvas did not grow with it).
        self._add_to_active(lambda size: place_result(entry.result, size, prompt_of(entry.settings.params)),
                            "Added the result again.", "Could not add the result")

    def rerun_history(self, row: int) -> None:
        """Put the settings (and seed) of history ``row`` back into the panel."""
        if not 0 <= row < len(self.state.history):
            return
        self.state.apply_job_settings(self.state.history[row].rerun_settings(0))
        self.save()
        self.view.refresh()
        self.view.show_status("Settings restored; press Generate to run them again.")

    # -- recall: settings from the server's history or from an image ---------------------

    _SOURCES = {"paintwire": "Paintwire's", "webui": "the WebUI's", "swarmui": "SwarmUI's"}

    def recall_received(self, recall: Recall) -> None:
        """Settings sent to this docker from the server's history: offered, never applied unasked."""
        self.view.offer_recall(recall, recollect(recall.settings, self.state.capabilities).summary)

    def apply_recall(self, recall: Recall) -> bool:
        return self._apply_saved(recall.settings, f"history result {recall.id}", parent=recall.id)

    def use_image_settings(self, data: bytes) -> bool:
        """"Use settings from image...": the settings saved in a PNG into the panel."""
        try:
            found = settings_in_image(data)
        except ValueError as exc:
            self.view.show_status(str(exc), error=True)
            return False
        if found is None:
            self.view.show_status("This image carries no settings (neither Paintwire's nor the WebUI's nor SwarmUI's).", error=True)
            return False
        return self._apply_saved(found.settings, f"the image ({self._SOURCES.get(found.source, found.source)} metadata)")

    def _apply_saved(self, saved: Any, where: str, parent: int | None = None) -> bool:
        got = recollect(saved, self.state.capabilities, parent)
        if got.settings is None:
            self.view.show_status(" ".join(got.notes), error=True)
            return False
        self.state.apply_job_settings(got.settings)
        self.save()
        self.view.refresh()
        notes = "".join(f" {n}" for n in got.notes)
        self.view.show_status(f"Settings from {where}: {got.summary}.{notes} Press Generate to run them.")
        return True

    def open_recalled(self, result: Result) -> None:
        """The recalled image (fetched by the worker) as a new layer of the active document."""
        self._add_to_active(lambda size: place_result(into_document(result, size), size),
                            "Opened the recalled image.", "Could not open the recalled image")

    def _add_to_active(self, place: Callable[[tuple[int, int]], Placement], done: str, failed: str) -> None:
        """A result from before (the history, a recall) written into the active document:
        as new layers, or a new document when it is of another size."""
        try:
            doc = self.documents.active_document()
            self.documents.check_supported(doc)
            self.documents.write_placement(doc, place(self.documents.size(doc)), self.documents.title(doc, "history"), "new_document")
            self.view.show_status(done)
        except Exception as exc:
            self.view.show_status(f"{failed}: {exc}", error=True)
