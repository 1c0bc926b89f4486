"""The Paintwire docker: connection, mode, prompt, the server's parameters,
Generate / Cancel, progress with a live preview, and the history.

The panel builds its controls from the capabilities the server sends, so a
new engine, mode or parameter shows up here without a new plug-in. Widgets
that a script or test may drive carry objectNames starting with
``paintwire-``.
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from paintwire.protocol import Progress, Queued, Started
from paintwire.protocol import workflow as wf

from . import document
from .pixels import PreparedPreview
from .qt import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QIcon,
    QImage,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPixmap,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSize,
    QToolButton,
    Qt,
    QVBoxLayout,
    QWidget,
)
from .state import (
    INPUT_SOURCES, OUTPUT_FORMAT, RESIZE_TARGETS, DocumentHistory, PanelSettings, PanelState, Target, TargetKind, describe_error,
    result_target,
)
from .widgets import ParamForm
from .worker import Worker

DOCKER_ID = "paintwire_docker"
SETTINGS_GROUP = "paintwire"
NO_LAYER = "(none)"
# The Generate action: Krita lists it under Settings > Configure Krita > Keyboard
# Shortcuts, where the artist can change it. Its default shortcut is in
# paintwire_krita.action (free in Krita 5.1 and 5.2: Ctrl+Shift+G is Quick Clipping Group).
GENERATE_ACTION = "paintwire_generate"
GENERATE_SHORTCUT = "Ctrl+Shift+Return"


def _read_setting(name: str, default: str = "") -> str:
    return Krita.instance().readSetting(SETTINGS_GROUP, name, default)


def _write_setting(name: str, value: str) -> None:
    Krita.instance().writeSetting(SETTINGS_GROUP, name, value)


class PaintwireDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Paintwire")
        self.state = PanelState(PanelSettings.from_json(_read_setting("settings")))
        # Each open document's history, loaded from the document when first shown.
        self._histories: list[tuple[object, DocumentHistory]] = []
        self._history_doc = None
        self._thumbnails: dict[int, bytes] = {}  # ticket number -> PNG, until the result is recorded
        self.canvas_preview = document.CanvasPreview()
        # Longest time (ms) each UI-thread handler took, for the host test to report.
        self.ui_times: dict[str, float] = {}
        self.worker = Worker(self)
        self.worker.connected.connect(self._on_connected)
        self.worker.disconnected.connect(self._on_disconnected)
        self.worker.job_event.connect(self._on_job_event)
        self.worker.job_done.connect(self._on_job_done)
        self.worker.job_failed.connect(self._on_job_failed)
        self.worker.job_cancelled.connect(self._on_job_cancelled)
        self.worker.job_thumbnail.connect(self._on_job_thumbnail)
        self._updating = False
        self._build_ui()
        self._refresh_controls()
        from . import VENDOR_PROBLEM

        if VENDOR_PROBLEM:
            self._set_status(VENDOR_PROBLEM, error=True)

    # -- layout -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        root = QWidget()
        scroll.setWidget(root)
        self.setWidget(scroll)
        col = QVBoxLayout(root)

        conn = QGroupBox("Server")
        form = QFormLayout(conn)
        self.url_edit = QLineEdit(self.state.settings.url)
        self.url_edit.setObjectName("paintwire-url")
        self.url_edit.setToolTip("The server's websocket address, e.g. ws://127.0.0.1:7878/ws")
        self.token_edit = QLineEdit(self.state.settings.token)
        self.token_edit.setObjectName("paintwire-token")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("only for a server on another machine")
        self.connect_button = QPushButton("Connect")
        self.connect_button.setObjectName("paintwire-connect")
        self.connect_button.clicked.connect(self._connect_clicked)
        self.status_label = QLabel("Not connected.")
        self.status_label.setObjectName("paintwire-status")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("URL", self.url_edit)
        form.addRow("Token", self.token_edit)
        form.addRow(self.connect_button)
        form.addRow(self.status_label)
        col.addWidget(conn)

        job = QGroupBox("Job")
        job_layout = QVBoxLayout(job)
        form = QFormLayout()
        job_layout.addLayout(form)
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("paintwire-mode")
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("paintwire-model")
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setObjectName("paintwire-prompt")
        self.prompt_edit.setPlaceholderText("Describe what to make")
        self.prompt_edit.setFixedHeight(60)
        self.prompt_edit.textChanged.connect(lambda: self._value_changed(wf.PROMPT, self.prompt_edit.toPlainText()))
        self.negative_edit = QPlainTextEdit()
        self.negative_edit.setObjectName("paintwire-negative-prompt")
        self.negative_edit.setPlaceholderText("What to avoid")
        self.negative_edit.setFixedHeight(40)
        self.negative_edit.textChanged.connect(lambda: self._value_changed(wf.NEGATIVE_PROMPT, self.negative_edit.toPlainText()))
        self.input_combo = QComboBox()
        self.input_combo.setObjectName("paintwire-input")
        for key, label in INPUT_SOURCES:
            self.input_combo.addItem(label, key)
        self.input_combo.setCurrentIndex(max(0, self.input_combo.findData(self.state.settings.input_source)))
        self.input_combo.currentIndexChanged.connect(self._input_changed)
        self.resize_combo = QComboBox()
        self.resize_combo.setObjectName("paintwire-resize-target")
        self.resize_combo.setToolTip("Where a bigger picture (an upscale) goes: this document, scaled to the new size, or a new document.")
        for key, label in RESIZE_TARGETS:
            self.resize_combo.addItem(label, key)
        self.resize_combo.setCurrentIndex(max(0, self.resize_combo.findData(self.state.settings.resize_target)))
        self.resize_combo.currentIndexChanged.connect(self._resize_target_changed)
        self.mask_combo = QComboBox()
        self.mask_combo.setObjectName("paintwire-mask-layer")
        self.mask_combo.setToolTip("Use a layer as the mask instead of the selection: its painted (or white) pixels are regenerated.")
        self.sketch_combo = QComboBox()
        self.sketch_combo.setObjectName("paintwire-sketch-layer")
        self.sketch_combo.setToolTip("Inpaint sketch: the strokes of this layer are added to the mask (they are part of the visible image).")
        layers_refresh = QToolButton()
        layers_refresh.setObjectName("paintwire-layers-refresh")
        layers_refresh.setText("\u21bb")
        layers_refresh.setToolTip("Reload the layer lists")
        layers_refresh.clicked.connect(self._refresh_layers)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Model", self.model_combo)
        # The prompts sit in a box of their own: hidden rows of a QFormLayout still take space.
        self.prompt_box = QWidget()
        prompts = QFormLayout(self.prompt_box)
        prompts.setContentsMargins(0, 0, 0, 0)
        self.prompt_label = QLabel("Prompt")
        self.negative_label = QLabel("Negative")
        prompts.addRow(self.prompt_label, self.prompt_edit)
        prompts.addRow(self.negative_label, self.negative_edit)
        job_layout.addWidget(self.prompt_box)
        form = QFormLayout()
        job_layout.addLayout(form)
        form.addRow("Input", self.input_combo)
        self.resize_label = QLabel("Result")
        form.addRow(self.resize_label, self.resize_combo)
        mask_row = QHBoxLayout()
        mask_row.addWidget(self.mask_combo, 1)
        mask_row.addWidget(layers_refresh)
        form.addRow("Mask layer", mask_row)
        form.addRow("Sketch layer", self.sketch_combo)
        col.addWidget(job)

        params = QGroupBox("Settings")
        params.setToolTip("These controls come from the server: each engine and mode brings its own.")
        params_layout = QVBoxLayout(params)
        self.form = ParamForm(self._value_changed)
        self.form.setObjectName("paintwire-params")
        params_layout.addWidget(self.form)
        col.addWidget(params)

        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("paintwire-generate")
        self.generate_button.setToolTip(f"Run the job ({GENERATE_SHORTCUT}; change it in Settings > Configure Krita > Keyboard Shortcuts).")
        self.generate_button.clicked.connect(self._generate_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("paintwire-cancel")
        self.cancel_button.clicked.connect(self._cancel_clicked)
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        col.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setObjectName("paintwire-progress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        col.addWidget(self.progress)
        self.preview_label = QLabel()
        self.preview_label.setObjectName("paintwire-preview")
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumHeight(0)
        self.preview_label.setToolTip("The job's progress; it also shows on the canvas as a temporary layer, removed when the job ends.")
        col.addWidget(self.preview_label)

        hist = QGroupBox("History")
        hl = QVBoxLayout(hist)
        self.history_list = QListWidget()
        self.history_list.setObjectName("paintwire-history")
        self.history_list.setMaximumHeight(220)
        self.history_list.setIconSize(QSize(48, 48))
        self.history_list.setToolTip("This document's results; saved in the .kra, so they are here again when you reopen it.")
        self.history_list.currentRowChanged.connect(lambda _: self._refresh_buttons())
        hl.addWidget(self.history_list)
        hb = QHBoxLayout()
        self.apply_button = QPushButton("Apply again")
        self.apply_button.setObjectName("paintwire-history-apply")
        self.apply_button.setToolTip("Add this result's layers to the current document again.")
        self.apply_button.clicked.connect(self._apply_history)
        self.rerun_button = QPushButton("Use settings")
        self.rerun_button.setObjectName("paintwire-history-rerun")
        self.rerun_button.setToolTip("Put this result's settings and seed back into the panel, to run it again or vary it.")
        self.rerun_button.clicked.connect(self._rerun_history)
        hb.addWidget(self.apply_button)
        hb.addWidget(self.rerun_button)
        hl.addLayout(hb)
        col.addWidget(hist)
        col.addStretch(1)
        self._fill_history()

    # -- state -> widgets ----------------------------------------------------------------

    def _refresh_controls(self) -> None:
        """Rebuild mode, model and parameter widgets from the state."""
        self._updating = True
        try:
            st = self.state
            self.mode_combo.clear()
            for m in st.modes():
                self.mode_combo.addItem(m.label, m.key)
                self.mode_combo.setItemData(self.mode_combo.count() - 1, m.help, Qt.ItemDataRole.ToolTipRole)
            self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(st.settings.ui_mode)))
            self.model_combo.clear()
            for c in st.choices():
                self.model_combo.addItem(c.label, c.key)
            self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(st.settings.choice)))
            mode = st.current_mode()
            names = {p.name for p in mode.params} if mode else set()
            self.prompt_box.setVisible(bool(names & set(wf.PROMPT_PARAMS)))
            for name, label, edit in ((wf.PROMPT, self.prompt_label, self.prompt_edit), (wf.NEGATIVE_PROMPT, self.negative_label, self.negative_edit)):
                shown = name in names
                label.setVisible(shown)
                edit.setVisible(shown)
                if shown and edit.toPlainText() != (st.value(name) or ""):
                    edit.setPlainText(st.value(name) or "")
            uses_mask = bool(mode and mode.mask_allowed)
            self.mask_combo.setEnabled(uses_mask)
            self.sketch_combo.setEnabled(uses_mask)
            resizes = st.settings.ui_mode == "upscale"
            self.resize_label.setVisible(resizes)
            self.resize_combo.setVisible(resizes)
            self.form.build(mode.params if mode else (), st.value, skip=wf.PROMPT_PARAMS)
        finally:
            self._updating = False
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        st = self.state
        self.generate_button.setEnabled(st.connected and not st.busy and st.current_mode() is not None)
        self.cancel_button.setEnabled(st.busy)
        self.connect_button.setText("Reconnect" if st.connected else "Connect")
        has = self.history_list.currentRow() >= 0
        self.apply_button.setEnabled(has)
        self.rerun_button.setEnabled(has and st.connected)

    def _refresh_layers(self) -> None:
        doc = document.active_document()
        paths = [p for p, _ in document.paint_layers(doc)]
        for combo in (self.mask_combo, self.sketch_combo):
            current = combo.currentText()
            combo.clear()
            combo.addItem(NO_LAYER)
            combo.addItems(paths)
            combo.setCurrentIndex(max(0, combo.findText(current)))

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d04040;" if error else "")

    def _fill_history(self) -> None:
        self.history_list.clear()
        stored = self.state.history
        for entry in stored.history.entries:
            item = QListWidgetItem(entry.summary)
            png = stored.thumbnail(entry)
            if png:
                item.setIcon(QIcon(QPixmap.fromImage(QImage.fromData(png, "PNG"))))
            item.setToolTip("\n".join(f"{k}: {v}" for k, v in entry.settings.params.items()))
            self.history_list.addItem(item)

    def _history_of(self, doc) -> DocumentHistory:
        """``doc``'s history: kept in memory while it is open, else read from the document."""
        self._histories = [(d, h) for d, h in self._histories if document.is_open(d)]
        for d, h in self._histories:
            if d == doc:
                return h
        h = DocumentHistory.from_bytes(document.load_history(doc)) if doc is not None else DocumentHistory()
        if doc is not None:
            self._histories.append((doc, h))
        return h

    def _show_history_of(self, doc) -> None:
        if doc is not None and self._history_doc is not None and doc == self._history_doc:
            return
        self._history_doc = doc
        self.state.history = self._history_of(doc)
        self._fill_history()
        self._refresh_buttons()

    def _save(self) -> None:
        _write_setting("settings", self.state.settings.to_json())

    @contextmanager
    def _timed(self, name: str):
        """Record the longest time a UI-thread handler took (ms), for the host test."""
        start = time.perf_counter()
        try:
            yield
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.ui_times[name] = max(self.ui_times.get(name, 0.0), ms)

    # -- widgets -> state ----------------------------------------------------------------

    def _mode_changed(self, _: int) -> None:
        if self._updating or self.mode_combo.currentData() is None:
            return
        self.state.set_mode(self.mode_combo.currentData())
        self._refresh_controls()
        self._save()

    def _model_changed(self, _: int) -> None:
        if self._updating or self.model_combo.currentData() is None:
            return
        self.state.set_choice(self.model_combo.currentData())
        self._refresh_controls()
        self._save()

    def _input_changed(self, _: int) -> None:
        self.state.settings.input_source = self.input_combo.currentData()
        self._save()

    def _resize_target_changed(self, _: int) -> None:
        self.state.settings.resize_target = self.resize_combo.currentData()
        self._save()

    def _value_changed(self, name: str, value) -> None:
        if not self._updating:
            self.state.set_value(name, value)

    # -- connection ----------------------------------------------------------------------

    def _connect_clicked(self) -> None:
        self.state.settings.url = self.url_edit.text().strip()
        self.state.settings.token = self.token_edit.text().strip()
        self._save()
        self.state.set_capabilities(None)
        self._set_status(f"Connecting to {self.state.settings.url} \u2026")
        self.connect_button.setEnabled(False)
        self.worker.connect_to(self.state.settings.url, self.state.settings.token)

    def _on_connected(self, caps, server: str) -> None:
        self.connect_button.setEnabled(True)
        self.state.set_capabilities(caps, server)
        modes = ", ".join(m.label for m in self.state.modes()) or "none"
        self._set_status(f"Connected to {server or 'server'} at {self.state.settings.url}. Modes: {modes}.")
        self._refresh_controls()
        self._refresh_layers()

    def _on_disconnected(self, reason: str) -> None:
        self.connect_button.setEnabled(True)
        was_busy = self.state.busy
        if was_busy:
            self.state.finish_job(None)
            self._end_progress()
        self.state.set_capabilities(None)
        self._set_status(describe_error(reason, False) if reason else "Disconnected.", error=bool(reason))
        self._refresh_controls()

    # -- jobs ----------------------------------------------------------------------------

    def generate(self) -> None:
        """Generate, as the button and the Generate action (with its shortcut) do."""
        if self.generate_button.isEnabled():
            self._generate_clicked()

    def _generate_clicked(self) -> None:
        with self._timed("generate"):
            self._generate()

    def _generate(self) -> None:
        try:
            doc = document.active_document()
            settings = self.state.job_settings()
            mask_layer = self.mask_combo.currentText() if self.mask_combo.isEnabled() else NO_LAYER
            sketch_layer = self.sketch_combo.currentText() if self.sketch_combo.isEnabled() else NO_LAYER
            with self._timed("generate.read"):
                raw = document.read_snapshot(
                    doc, self.state.settings.input_source,
                    mask_layer if mask_layer != NO_LAYER else None, sketch_layer if sketch_layer != NO_LAYER else None,
                )
            caps = self.state.capabilities
            # Built in the worker thread: converting and checking the pixels is no work for Krita's UI thread.
            request = lambda: wf.build_request(raw.finish(), caps, settings, OUTPUT_FORMAT)  # noqa: E731
        except (document.DocumentError, ValueError) as exc:  # what the artist can fix: said as it is
            self._set_status(str(exc), error=True)
            return
        except Exception as exc:  # never let a surprise reach Krita's error dialog
            self._set_status(f"Cannot start: {exc}", error=True)
            traceback.print_exc()
            return
        ticket = self.state.start_job(settings, doc, (raw.width, raw.height))
        self._save()
        self.progress.setRange(0, 0)  # busy until the server reports steps
        self.preview_label.clear()
        self._set_status("Sending the job \u2026")
        self._refresh_buttons()
        self.worker.submit(ticket.number, request)

    def _cancel_clicked(self) -> None:
        if self.state.busy:
            self.state.ticket.cancel_requested = True
            self._set_status("Cancelling \u2026")
            self.worker.cancel()

    def _current(self, number: int) -> bool:
        return self.state.ticket is not None and self.state.ticket.number == number

    def _on_job_event(self, number: int, event) -> None:
        with self._timed(f"event-{type(event).__name__}"):
            self._job_event(number, event)

    def _job_event(self, number: int, event) -> None:
        if not self._current(number):
            return
        if isinstance(event, Queued):
            self.state.ticket.job_id = event.job
            self._set_status("Waiting: next in the queue." if event.position == 0 else f"Waiting: {event.position} job(s) ahead.")
        elif isinstance(event, Started):
            self._set_status("Working \u2026")
        elif isinstance(event, Progress):
            if event.total > 0:
                self.progress.setRange(0, event.total)
                self.progress.setValue(event.step)
                self.progress.setFormat("%v / %m")
            self._set_status(f"{event.stage or 'Working'}: {event.step}/{event.total}")
        elif isinstance(event, PreparedPreview):
            self._show_preview(event)

    def _show_preview(self, preview: PreparedPreview) -> None:
        if preview.small is not None:
            self.preview_label.setPixmap(QPixmap.fromImage(preview.small))
        if preview.bgra is not None and self.state.ticket is not None:
            try:
                with self._timed("preview.canvas-first" if not self.canvas_preview.showing else "preview.canvas"):
                        self.canvas_preview.show(self.state.ticket.document, preview.bgra, preview.x, preview.y, preview.width, preview.height)
            except Exception:  # the canvas preview is a nicety; the job goes on
                traceback.print_exc()

    def _on_job_thumbnail(self, number: int, png: bytes) -> None:
        if self._current(number):
            self._thumbnails[number] = png

    def _on_job_done(self, number: int, result) -> None:
        with self._timed("done"):
            self._job_done(number, result)

    def _job_done(self, number: int, result) -> None:
        if not self._current(number):
            return
        ticket, placement = self.state.finish_job(result)
        self._end_progress()
        history = self._history_of(ticket.document) if document.is_open(ticket.document) else self.state.history
        try:
            if not document.is_open(ticket.document):
                raise document.DocumentError("The document of this job was closed; the result is kept in the history.")
            target = result_target(ticket.settings, result, ticket.document_size, self.state.settings.resize_target)
            title = f"{ticket.document.name() or 'Untitled'} ({wf.UI_MODE_BY_KEY[ticket.settings.ui_mode].label})"
            with self._timed("done.write"):
                document.write_placement(ticket.document, placement, target, title)
            names = ", ".join(l.name for l in placement.layers)
            self._set_status(f"Done: {names} added {_TARGET_WORDS[target.kind]}.")
        except Exception as exc:
            self._set_status(f"The result could not be added: {exc}", error=True)
            traceback.print_exc()
        with self._timed("done.history"):
            self.state.record(ticket, result, placement, history, self._thumbnails.pop(number, b""))
            if document.is_open(ticket.document):
                document.save_history(ticket.document, history.to_bytes())
            self._fill_history()
        self._save()
        self._refresh_buttons()

    def _on_job_failed(self, number: int, message: str) -> None:
        if not self._current(number):
            return
        self.state.finish_job(None)
        self._end_progress()
        self._set_status(describe_error(message, True), error=True)
        self._refresh_buttons()

    def _on_job_cancelled(self, number: int) -> None:
        if not self._current(number):
            return
        self.state.finish_job(None)
        self._end_progress()
        self._set_status("Cancelled; the document was not changed.")
        self._refresh_buttons()

    def _end_progress(self) -> None:
        # Whatever ended the job, its preview leaves the canvas before anything else is written.
        try:
            with self._timed("preview.clear"):
                self.canvas_preview.clear()
        except Exception:
            traceback.print_exc()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")

    # -- history -------------------------------------------------------------------------

    def _selected_entry(self):
        row = self.history_list.currentRow()
        entries = self.state.history.history
        return entries[row] if 0 <= row < len(entries) else None

    def _apply_history(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        if entry.result is None:
            self._set_status("The pixels of this result are from an earlier session; use its settings to make it again.", error=True)
            return
        doc = document.active_document()
        try:
            document.check_supported(doc)
            size = (doc.width(), doc.height())
            placement = wf.place_result(entry.result, size, wf.prompt_of(entry.settings.params))
            target = result_target(entry.settings, entry.result, size, self.state.settings.resize_target)
            if target.kind is TargetKind.GROW:  # this canvas did not grow with it: apply as a new document
                target = Target(TargetKind.NEW_DOCUMENT)
            document.write_placement(doc, placement, target, f"{doc.name()} (history)")
            self._set_status("Added the result again.")
        except Exception as exc:
            self._set_status(f"Could not add the result: {exc}", error=True)

    def _rerun_history(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        self.state.apply_job_settings(entry.rerun_settings(0))
        self._refresh_controls()
        self._save()
        self._set_status("Settings restored; press Generate to run them again.")

    # -- Krita ---------------------------------------------------------------------------

    def canvasChanged(self, canvas) -> None:
        self._refresh_layers()
        self._show_history_of(document.active_document())


_TARGET_WORDS = {
    TargetKind.LAYERS: "as new layer(s)",
    TargetKind.GROW: "on the grown canvas",
    TargetKind.RESIZE: "to the resized document",
    TargetKind.NEW_DOCUMENT: "as a new document",
}


class GenerateAction(Extension):
    """Tools > Scripts > Generate with Paintwire, with a keyboard shortcut: what
    the docker's Generate button does, without reaching for the docker."""

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        action = window.createAction(GENERATE_ACTION, "Generate with Paintwire", "tools/scripts")
        action.triggered.connect(_generate_in_docker)


def _generate_in_docker() -> None:
    docker = next((d for d in Krita.instance().dockers() if d.objectName() == DOCKER_ID), None)
    if docker is not None:
        docker.generate()


def register() -> None:
    app = Krita.instance()
    app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, PaintwireDocker))
    app.addExtension(GenerateAction(app))
