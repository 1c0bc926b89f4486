"""The docker's list of control layers: one row per control, each naming a
Krita layer, a kind, a strength and the range of steps it acts in, with its
preprocessor and the kind's parameters below; "Add current layer" and a
preview of what the model will read.

Kinds, preprocessors and parameters are the server's (EngineInfo.controls):
the rows are built from them, the labels and tooltips are theirs. The rows
report every change to the controller, which keeps the list (saved in the
document) and rebuilds the rows when a kind changes. objectNames start with
``paintwire-control-`` and end with the row's index, for tests and scripts.
"""

from __future__ import annotations

from typing import Any, Callable

from paintwire.hostkit.controls import ControlLayer, kind_spec
from paintwire.protocol.controls import MAX_CONTROL_STRENGTH, ControlKindSpec

from .qt import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPixmap,
    QPushButton,
    QToolButton,
    Qt,
    QVBoxLayout,
    QWidget,
)
from .widgets import ParamForm

PREVIEW_SIDE = 256
MISSING = " (gone)"  # after a control's layer that is no longer in the document

TIPS = {
    "enabled": "Send this control layer with the job; unticked, it stays in the list but does not guide.",
    "layer": "The Krita layer that guides the result. It is read as it is, hidden or not: hide it to keep it out of the picture.",
    "kind": "What the layer tells the model (line art, depth, pose, a reference picture, ...); the server lists the kinds it can run.",
    "strength": "How strongly the layer guides the result: 0 not at all, 1 as trained, up to 2 to insist.",
    "start": "From which share of the steps the layer guides (0: from the first step).",
    "end": "Until which share of the steps the layer guides (1: to the last step); ending early leaves the details free.",
    "preprocessor": "How the server turns the layer into what the model reads; 'none' uses the layer as it is (a map you made).",
    "preview": "Show what the model will read from this layer (the preprocessed image), here in the docker.",
    "remove": "Remove this control layer from the list (the Krita layer stays).",
    "add": "Add the current layer as a control layer, of the kind added last.",
}


class ControlRow(QFrame):
    """One control layer's widgets; every edit goes to ``changed(index, **values)``."""

    def __init__(
        self, index: int, control: ControlLayer, kinds: tuple[ControlKindSpec, ...], layers: list[str],
        changed: Callable[..., None], remove: Callable[[int], None], preview: Callable[[int], None],
    ) -> None:
        super().__init__()
        self.index = index
        self.params = dict(control.params)
        self.setObjectName(f"paintwire-control-{index}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        spec = kind_spec(kinds, control.kind)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)

        top = QHBoxLayout()
        enabled = self._named(QCheckBox(), "enabled")
        enabled.setChecked(control.enabled)
        enabled.toggled.connect(lambda on: changed(index, enabled=bool(on)))
        layer = self._named(QComboBox(), "layer")
        for path in layers:
            layer.addItem(path, path)
        if control.layer not in layers:
            layer.addItem(control.layer + MISSING, control.layer)
        layer.setCurrentIndex(max(0, layer.findData(control.layer)))
        layer.currentIndexChanged.connect(lambda _: changed(index, layer=layer.currentData()))
        kind = self._named(QComboBox(), "kind")
        for k in kinds:
            kind.addItem(k.label or k.name, k.name)
            kind.setItemData(kind.count() - 1, k.problem or k.help, Qt.ItemDataRole.ToolTipRole)
        if spec is None:
            kind.addItem(f"{control.kind} (not offered)", control.kind)
        kind.setCurrentIndex(max(0, kind.findData(control.kind)))
        kind.currentIndexChanged.connect(lambda _: changed(index, kind=kind.currentData()))
        drop = self._named(QToolButton(), "remove")
        drop.setText("\u2715")
        drop.clicked.connect(lambda: remove(index))
        top.addWidget(enabled)
        top.addWidget(layer, 2)
        top.addWidget(kind, 1)
        top.addWidget(drop)
        col.addLayout(top)

        form = QFormLayout()
        col.addLayout(form)
        strength = self._spin("strength", control.strength, 0.0, MAX_CONTROL_STRENGTH)
        start = self._spin("start", control.start, 0.0, 1.0)
        end = self._spin("end", control.end, 0.0, 1.0)
        strength.valueChanged.connect(lambda v: changed(index, strength=round(v, 3)))
        start.valueChanged.connect(lambda v: changed(index, start=round(v, 3)))
        end.valueChanged.connect(lambda v: changed(index, end=round(v, 3)))
        show = self._named(QPushButton("Preview"), "preview")
        show.clicked.connect(lambda: preview(index))
        strength_row = QHBoxLayout()
        strength_row.addWidget(strength, 1)
        strength_row.addWidget(show)
        steps = QHBoxLayout()
        steps.addWidget(start)
        steps.addWidget(QLabel("to"))
        steps.addWidget(end)
        form.addRow("Strength", strength_row)
        form.addRow("Steps", steps)
        if spec is None:
            return
        self.setToolTip(spec.help)
        pre = self._named(QComboBox(), "preprocessor")
        for name in spec.preprocessors:
            pre.addItem(name, name)
        pre.setCurrentIndex(max(0, pre.findData(control.preprocessor or spec.default_preprocessor)))
        pre.currentIndexChanged.connect(lambda _: changed(index, preprocessor=pre.currentData()))
        form.addRow("Preprocessor", pre)
        if spec.params:

            def param_changed(name: str, value: Any) -> None:
                self.params[name] = value
                changed(index, params=dict(self.params))

            params = ParamForm(param_changed, prefix=f"paintwire-control-param-{index}-")
            params.build_specs(spec.params, lambda name: self.params.get(name))
            col.addWidget(params)
        if spec.problem:  # no installed model runs this kind: the server says which file to add
            problem = QLabel(spec.problem)
            problem.setObjectName(f"paintwire-control-problem-{index}")
            problem.setWordWrap(True)
            problem.setStyleSheet("color: #d04040;")
            col.addWidget(problem)

    def _named(self, widget: Any, what: str) -> Any:
        widget.setObjectName(f"paintwire-control-{what}-{self.index}")
        widget.setToolTip(TIPS[what])
        return widget

    def _spin(self, what: str, value: float, lo: float, hi: float) -> QDoubleSpinBox:
        spin = self._named(QDoubleSpinBox(), what)
        spin.setRange(lo, hi)
        spin.setDecimals(2)
        spin.setSingleStep(0.05)
        spin.setValue(value)
        return spin


class ControlList(QWidget):
    """The rows, the Add button, a note when the mode takes no controls, and the preview."""

    def __init__(self, controller: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("paintwire-controls")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        self.note = QLabel()
        self.note.setObjectName("paintwire-control-note")
        self.note.setWordWrap(True)
        col.addWidget(self.note)
        self.rows = QVBoxLayout()
        col.addLayout(self.rows)
        self.add_button = QPushButton("Add current layer")
        self.add_button.setObjectName("paintwire-control-add")
        self.add_button.setToolTip(TIPS["add"])
        self.add_button.clicked.connect(controller.add_control)
        col.addWidget(self.add_button)
        self.preview = QLabel()
        self.preview.setObjectName("paintwire-control-preview-image")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setToolTip("What the model reads from the control layer, as the server preprocessed it.")
        self.caption = QLabel()
        self.caption.setObjectName("paintwire-control-preview-caption")
        self.caption.setWordWrap(True)
        col.addWidget(self.preview)
        col.addWidget(self.caption)
        self._retired: list[QWidget] = []
        self.show_preview(None, "")

    def build(self, controls: list[ControlLayer], kinds: tuple[ControlKindSpec, ...], layers: list[str], takes: bool, why: str) -> None:
        """Rebuild the rows. Old rows leave the tree now and are deleted by Qt later:
        a rebuild can come from a signal of a widget inside one of them."""
        self._retired = []
        while self.rows.count():
            widget = self.rows.takeAt(0).widget()
            if widget is not None:
                widget.setParent(None)
                widget.deleteLater()
                self._retired.append(widget)  # alive until the next rebuild
        for index, control in enumerate(controls):
            row = ControlRow(index, control, kinds, layers, self.controller.change_control, self.controller.remove_control,
                             self.controller.preview_control)
            row.setEnabled(takes)
            self.rows.addWidget(row)
        self.add_button.setEnabled(bool(kinds))
        self.note.setText(why)
        self.note.setVisible(bool(why))

    def show_preview(self, image: Any, caption: str) -> None:
        if image is None:
            self.preview.clear()
            self.preview.setVisible(False)
            self.caption.setText("")
            self.caption.setVisible(False)
            return
        pixmap = QPixmap.fromImage(image)
        self.preview.setPixmap(pixmap.scaled(PREVIEW_SIDE, PREVIEW_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation))
        self.preview.setVisible(True)
        self.caption.setText(caption)
        self.caption.setVisible(True)
