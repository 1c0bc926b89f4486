"""The Paintwire docker: connection, mode, prompt, the server's parameters,
Generate / Cancel, progress with a live preview, and the history.

The panel builds its controls from the capabilities the server sends, so a
new engine, mode or parameter shows up here without a new plug-in. Widgets
that a script or test may drive carry objectNames starting with
``paintwire-``.
"""

from __future__ import annotations

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from paintwire.hostkit import modes as kit_modes
from paintwire.hostkit.live import TICK_MS
from paintwire.hostkit.request import NEGATIVE_PROMPT, PROMPT, PROMPT_PARAMS
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import InputKind, PlacementKind, Preview

from . import document
from .control_list import ControlList
from .controller import Controller
from .live import LiveController
from .imaging import PreparedPreview, to_qimage
from .qt import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QIcon,
    QImage,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPixmap,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSize,
    QTimer,
    QToolButton,
    Qt,
    QVBoxLayout,
    QWidget,
)
from .state import RESIZE_TARGETS, PanelSettings, PanelState
from .widgets import ParamForm
from .worker import Worker

DOCKER_ID = "paintwire_docker"
SETTINGS_GROUP = "paintwire"
PREVIEW_SIDE = 256
PROGRESS_STEPS = 1000
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
        # The history is each document's own, saved in it (controller.document_changed).
        self.state = PanelState(PanelSettings.from_json(_read_setting("settings")))
        self.worker = Worker(self)
        self.controller = Controller(self.state, document, self.worker, self, self._save)
        self.worker.connected.connect(self._on_connected)
        self.worker.capabilities_changed.connect(self.controller.capabilities_changed)
        self.worker.notice.connect(self._set_status)
        self.worker.disconnected.connect(self._on_disconnected)
        self.worker.job_event.connect(self.controller.on_event)
        self.worker.job_done.connect(self.controller.on_done)
        self.worker.job_failed.connect(self.controller.on_failed)
        self.worker.job_cancelled.connect(self.controller.on_cancelled)
        self.worker.job_thumbnail.connect(self.controller.on_thumbnail)
        self.worker.recalled.connect(self.controller.recall_received)
        self.worker.recalled_image.connect(self.controller.open_recalled)
        self._recall_box: QMessageBox | None = None
        self.live = LiveController(self.state, document, self.worker, self)
        self.worker.live_event.connect(self.live.on_event)
        self.live_timer = QTimer(self)
        self.live_timer.setInterval(TICK_MS)
        self.live_timer.timeout.connect(self.live.tick)
        self.worker.preprocessed.connect(self.controller.on_preprocessed)
        self.worker.preprocess_failed.connect(self.controller.on_preprocess_failed)
        # Longest time (ms) each step took on Krita's UI thread (the host test reports them).
        self.ui_times = self.controller.ui_times
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
        col.addWidget(self._server_box())
        col.addWidget(self._job_box())
        col.addWidget(self._params_box())
        col.addWidget(self._controls_box())
        col.addLayout(self._run_buttons())
        col.addLayout(self._live_buttons())
        col.addWidget(self._progress_bar())
        col.addWidget(self._preview())
        col.addWidget(self._history_box())
        col.addStretch(1)
        self._fill_history()

    def _server_box(self) -> QGroupBox:
        """URL, token, Connect and the status line."""
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
        return conn

    def _job_box(self) -> QGroupBox:
        """Mode, model, prompts, and where the input comes from and the result goes."""
        job = QGroupBox("Job")
        job_layout = QVBoxLayout(job)
        job_layout.addLayout(self._choices_form())
        job_layout.addWidget(self._prompts())
        job_layout.addLayout(self._inputs_form())
        return job

    def _choices_form(self) -> QFormLayout:
        """The server's modes and the models that can run the chosen one."""
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("paintwire-mode")
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("paintwire-model")
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.models_refresh = QToolButton()
        self.models_refresh.setObjectName("paintwire-models-refresh")
        self.models_refresh.setText("\u21bb")
        self.models_refresh.setToolTip("Refresh: have the server look at its model folders again (a model was just added)")
        self.models_refresh.clicked.connect(self._refresh_models)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.models_refresh)
        form = QFormLayout()
        form.addRow("Mode", self.mode_combo)
        form.addRow("Model", model_row)
        return form

    def _prompts(self) -> QWidget:
        """Prompt and negative prompt, in a box of their own: hidden rows of a QFormLayout still take space."""
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setObjectName("paintwire-prompt")
        self.prompt_edit.setPlaceholderText("Describe what to make")
        self.prompt_edit.setFixedHeight(60)
        self.prompt_edit.textChanged.connect(lambda: self._value_changed(PROMPT, self.prompt_edit.toPlainText()))
        self.negative_edit = QPlainTextEdit()
        self.negative_edit.setObjectName("paintwire-negative-prompt")
        self.negative_edit.setPlaceholderText("What to avoid")
        self.negative_edit.setFixedHeight(40)
        self.negative_edit.textChanged.connect(lambda: self._value_changed(NEGATIVE_PROMPT, self.negative_edit.toPlainText()))
        self.prompt_box = QWidget()
        prompts = QFormLayout(self.prompt_box)
        prompts.setContentsMargins(0, 0, 0, 0)
        self.prompt_label = QLabel("Prompt")
        self.negative_label = QLabel("Negative")
        prompts.addRow(self.prompt_label, self.prompt_edit)
        prompts.addRow(self.negative_label, self.negative_edit)
        return self.prompt_box

    def _inputs_form(self) -> QFormLayout:
        """The input source, the resized result's target, and the mask and sketch layers."""
        self.input_combo = QComboBox()
        self.input_combo.setObjectName("paintwire-input")
        for source in InputSource:
            self.input_combo.addItem(source.label, source.value)
        self.input_combo.setCurrentIndex(max(0, self.input_combo.findData(self.state.settings.input_source)))
        self.input_combo.currentIndexChanged.connect(self._input_changed)
        self.resize_combo = QComboBox()
        self.resize_combo.setObjectName("paintwire-resize-target")
        self.resize_combo.setToolTip("Where a picture of a new size (an upscale) goes: this document, scaled to it, or a new document.")
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
        mask_row = QHBoxLayout()
        mask_row.addWidget(self.mask_combo, 1)
        mask_row.addWidget(layers_refresh)
        form = QFormLayout()
        form.addRow("Input", self.input_combo)
        self.resize_label = QLabel("Result")
        form.addRow(self.resize_label, self.resize_combo)
        form.addRow("Mask layer", mask_row)
        form.addRow("Sketch layer", self.sketch_combo)
        return form

    def _params_box(self) -> QGroupBox:
        """The server's parameters of the mode (widgets.ParamForm)."""
        params = QGroupBox("Settings")
        params.setToolTip("These controls come from the server: each engine and mode brings its own.")
        params_layout = QVBoxLayout(params)
        self.form = ParamForm(self._value_changed)
        self.form.setObjectName("paintwire-params")
        params_layout.addWidget(self.form)
        return params

    def _controls_box(self) -> QGroupBox:
        """The control layers (control_list.ControlList)."""
        controls = QGroupBox("Control layers")
        controls.setToolTip(
            "Layers that guide the result: line art, a scribble, a depth or pose map, a reference picture. "
            "The kinds come from the server; the list is saved in the document."
        )
        self.control_list = ControlList(self.controller)
        QVBoxLayout(controls).addWidget(self.control_list)
        return controls

    def _run_buttons(self) -> QHBoxLayout:
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
        return buttons

    def _live_buttons(self) -> QHBoxLayout:
        live_row = QHBoxLayout()
        self.live_button = QPushButton("Live")
        self.live_button.setObjectName("paintwire-live")
        self.live_button.setCheckable(True)
        self.live_button.setToolTip(
            "Live painting: while on, the picture follows what you paint on the active layer (in the selection, or the whole "
            "canvas), shown in a 'Paintwire live' layer on top. Prompt, strength and seed can change while it runs; a "
            "few-step model or the LCM sampler makes it fast. Turning it off removes the live layer.")
        self.live_button.toggled.connect(self._live_toggled)
        self.live_apply_button = QPushButton("Apply")
        self.live_apply_button.setObjectName("paintwire-live-apply")
        self.live_apply_button.setToolTip("Copy the live frame shown into a new layer (Live goes on).")
        self.live_apply_button.clicked.connect(lambda: self.live.apply())
        live_row.addWidget(self.live_button, 2)
        live_row.addWidget(self.live_apply_button, 1)
        return live_row

    def _progress_bar(self) -> QProgressBar:
        self.progress = QProgressBar()
        self.progress.setObjectName("paintwire-progress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        return self.progress

    def _preview(self) -> QLabel:
        self.preview_label = QLabel()
        self.preview_label.setObjectName("paintwire-preview")
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumHeight(0)
        self.preview_label.setToolTip("The job's progress; it also shows on the canvas as a temporary layer, removed when the job ends.")
        return self.preview_label

    def _history_box(self) -> QGroupBox:
        """This document's results, "Apply again", "Use settings" and settings from an image."""
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
        self.apply_button.clicked.connect(lambda: self.controller.apply_history(self.history_list.currentRow()))
        self.rerun_button = QPushButton("Use settings")
        self.rerun_button.setObjectName("paintwire-history-rerun")
        self.rerun_button.setToolTip("Put this result's settings and seed back into the panel, to run it again or vary it.")
        self.rerun_button.clicked.connect(lambda: self.controller.rerun_history(self.history_list.currentRow()))
        hb.addWidget(self.apply_button)
        hb.addWidget(self.rerun_button)
        hl.addLayout(hb)
        self.image_settings_button = QPushButton("Use settings from image\u2026")
        self.image_settings_button.setObjectName("paintwire-image-settings")
        self.image_settings_button.setToolTip(
            "Put the settings saved in a PNG into the panel: one made by Paintwire, the Stable Diffusion WebUI, Forge or SwarmUI."
        )
        self.image_settings_button.clicked.connect(self._image_settings_clicked)
        hl.addWidget(self.image_settings_button)
        return hist

    # -- state -> widgets ----------------------------------------------------------------

    def _refresh_controls(self) -> None:
        """Rebuild mode, model and parameter widgets from the state."""
        self._updating = True
        try:
            st = self.state
            self.mode_combo.clear()
            for m in st.modes():
                self.mode_combo.addItem(m.label, m.name)
                self.mode_combo.setItemData(self.mode_combo.count() - 1, m.help, Qt.ItemDataRole.ToolTipRole)
            self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(st.settings.mode)))
            self.model_combo.clear()
            for c in st.choices():
                self.model_combo.addItem(c.label, c.key)
            for m in kit_modes.unusable_models(st.capabilities):
                # Listed with the reason, never offered: a disabled entry the painter can hover.
                self.model_combo.addItem(f"{m.label or m.name} (cannot be used)", None)
                self.model_combo.setItemData(self.model_combo.count() - 1, m.problem, Qt.ItemDataRole.ToolTipRole)
                self.model_combo.model().item(self.model_combo.count() - 1).setEnabled(False)
            self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(st.settings.choice)))
            mode = st.current_mode()
            names = {p.name for p in mode.params} if mode else set()
            self.prompt_box.setVisible(bool(names & set(PROMPT_PARAMS)))
            for name, label, edit in ((PROMPT, self.prompt_label, self.prompt_edit), (NEGATIVE_PROMPT, self.negative_label, self.negative_edit)):
                shown = name in names
                label.setVisible(shown)
                edit.setVisible(shown)
                if shown and edit.toPlainText() != (st.value(name) or ""):
                    edit.setPlainText(st.value(name) or "")
            # The layer choosers follow the inputs the server says the mode reads.
            self.input_combo.setEnabled(bool(mode and mode.input(InputKind.IMAGE)))
            self.mask_combo.setEnabled(bool(mode and mode.input(InputKind.MASK)))
            self.sketch_combo.setEnabled(bool(mode and mode.input(InputKind.SKETCH)))
            resizes = bool(mode and mode.placement is PlacementKind.RESIZE)
            self.resize_label.setVisible(resizes)
            self.resize_combo.setVisible(resizes)
            self.form.build(mode, st.value, skip=PROMPT_PARAMS)
            self._fill_controls()
        finally:
            self._updating = False
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        st = self.state
        live = self.live.on
        self.generate_button.setEnabled(st.connected and not st.busy and not live and st.current_mode() is not None)
        self.live_button.setEnabled(live or (st.connected and not st.busy and st.current_mode() is not None))
        self.live_apply_button.setEnabled(live and self.live.frame is not None)
        # The stream's engine, mode and model are fixed while it runs; its parameters are not.
        self.mode_combo.setEnabled(not live)
        self.model_combo.setEnabled(not live)
        self.models_refresh.setEnabled(st.connected and not st.busy)
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
        self._fill_controls()

    def _fill_controls(self) -> None:
        st = self.state
        kinds, mode = st.control_kinds(), st.current_mode()
        if not st.connected:
            why = "Connect to see the kinds of control layer the server offers."
        elif not kinds:
            why = "This model's engine takes no control layers."
        elif not st.takes_controls():
            why = f"{mode.label if mode else 'This mode'} takes no control layers; the list is kept for the modes that do."
        else:
            why = ""
        paths = document.layer_paths(document.active_document())
        self.control_list.build(st.controls, kinds, paths, st.takes_controls(), why)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d04040;" if error else "")

    def _fill_history(self) -> None:
        self.history_list.clear()
        for entry in self.state.history.entries:
            item = QListWidgetItem(entry.summary)
            png = self.state.thumbnails.get(entry.job_id)
            if png:
                item.setIcon(QIcon(QPixmap.fromImage(QImage.fromData(png, "PNG"))))
            item.setToolTip("\n".join(f"{k}: {v}" for k, v in entry.settings.params.items()))
            self.history_list.addItem(item)

    def _save(self) -> None:
        _write_setting("settings", self.state.settings.to_json())

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
        self.controller.connected(caps, server)
        self._refresh_layers()

    def _refresh_models(self) -> None:
        self._set_status("Looking for new models \u2026")
        self.worker.rescan()

    def _on_disconnected(self, reason: str) -> None:
        self.connect_button.setEnabled(True)
        if self.live.on:
            self.live.stop("Live stopped: the connection closed.")
        self.controller.disconnected(reason)

    # -- recall -------------------------------------------------------------------------

    def _image_settings_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use settings from image", "", "PNG images (*.png);;All files (*)")
        if not path:
            return
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            self._set_status(f"Cannot read {path}: {exc.strerror}.", error=True)
            return
        self.controller.use_image_settings(data)

    def offer_recall(self, recall, summary: str) -> None:
        """A result sent here from the server's history: ask, without blocking Krita,
        whether to apply its settings or open its image as a layer."""
        if self._recall_box is not None:
            self._recall_box.close()
        box = QMessageBox(self)
        box.setObjectName("paintwire-recall-offer")
        box.setWindowTitle("Paintwire")
        box.setText(f"Result {recall.id} from the server's history: {summary}")
        apply = box.addButton("Apply settings", QMessageBox.ButtonRole.AcceptRole)
        apply.setObjectName("paintwire-recall-apply")
        layer = box.addButton("Open as layer", QMessageBox.ButtonRole.ActionRole)
        layer.setObjectName("paintwire-recall-layer")
        box.addButton("Dismiss", QMessageBox.ButtonRole.RejectRole)
        box.setWindowModality(Qt.WindowModality.NonModal)

        def clicked(button) -> None:
            if button is apply:
                self.controller.apply_recall(recall)
            elif button is layer:
                self._set_status("Fetching the recalled image \u2026")
                self.worker.fetch_recalled(recall)

        box.buttonClicked.connect(clicked)

        def closed(_: int) -> None:
            if self._recall_box is box:
                self._recall_box = None
            box.deleteLater()  # answered offers do not pile up under the docker

        box.finished.connect(closed)
        self._recall_box = box
        box.show()

    # -- jobs (controller.py does the work; these are the widgets' ends) -------------------

    def generate(self) -> None:
        """Generate, as the button and the Generate action (with its shortcut) do."""
        if self.generate_button.isEnabled():
            self._generate_clicked()

    def _generate_clicked(self) -> None:
        with self.controller.timed("generate"):
            self._generate()

    def _generate(self) -> None:
        mask_layer = self.mask_combo.currentText() if self.mask_combo.isEnabled() else NO_LAYER
        sketch_layer = self.sketch_combo.currentText() if self.sketch_combo.isEnabled() else NO_LAYER
        if self.controller.generate(
            mask_layer if mask_layer != NO_LAYER else None, sketch_layer if sketch_layer != NO_LAYER else None
        ):
            self.preview_label.clear()

    def _cancel_clicked(self) -> None:
        self.controller.cancel()

    def _live_toggled(self, on: bool) -> None:
        if on == self.live.on:
            return
        if self.live.toggle(on) and on:
            self.live_timer.start()

    # -- live.LiveView ---------------------------------------------------------------------

    def live_changed(self, on: bool) -> None:
        if not on:
            self.live_timer.stop()
        if self.live_button.isChecked() != on:
            self.live_button.blockSignals(True)
            self.live_button.setChecked(on)
            self.live_button.blockSignals(False)
        self._refresh_buttons()

    # -- controller.View -----------------------------------------------------------------

    def show_status(self, text: str, error: bool = False) -> None:
        self._set_status(text, error)

    def show_progress(self, fraction: float | None) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)  # busy until the server reports steps
            return
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(round(fraction * PROGRESS_STEPS))
        self.progress.setFormat("%p%")

    def show_preview(self, event: PreparedPreview | Preview) -> None:
        if isinstance(event, PreparedPreview):  # made small in the worker thread
            if event.small is not None:
                self.preview_label.setPixmap(QPixmap.fromImage(event.small))
            return
        image = to_qimage(event.image)
        if image is not None:
            self.preview_label.setPixmap(QPixmap.fromImage(image).scaled(
                PREVIEW_SIDE, PREVIEW_SIDE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def show_control_preview(self, image, caption: str) -> None:
        self.control_list.show_preview(image, caption)

    def job_ended(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")

    def refresh(self) -> None:
        self._refresh_controls()
        self._fill_history()

    # -- Krita ---------------------------------------------------------------------------

    def canvasChanged(self, canvas) -> None:
        self._refresh_layers()
        self.controller.document_changed(document.active_document())


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


def _dock_right():
    # Krita 6's Qt 6 bindings have scoped enums only (DockPosition.DockRight); Krita 5's
    # sip bindings may lack the scope.
    positions = getattr(DockWidgetFactoryBase, "DockPosition", DockWidgetFactoryBase)
    return positions.DockRight


def register() -> None:
    app = Krita.instance()
    app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, _dock_right(), PaintwireDocker))
    app.addExtension(GenerateAction(app))
