"""A settings form built from the server's ParamSpecs, through the form model
shared with GIMP (paintwire.hostkit.form: kinds, ranges, steps, choice
labels, folds, order; for a mode, as the server lays it out).

int and float become spin boxes (a slider beside them when the form model
says the range is short enough to drag), seed a wide spin box with a dice
button, bool a check box, choice a combo box showing the choices' labels,
string a line edit; every widget's tooltip is the ParamSpec's help.
Parameters of a group other than "basic" ("advanced", "soft", ...) go behind
a fold per group. Each widget's objectName is ``paintwire-param-<name>`` so
that tests and scripts can find it.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from .qt import (
    Qt,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from paintwire.hostkit.form import Field, FieldKind, fields, param_fields
from paintwire.protocol import ModeSpec, ParamSpec

SLIDER_STEPS = 1000  # resolution of a float slider
PARAM_PREFIX = "paintwire-param-"


def object_name(param: str, prefix: str = PARAM_PREFIX) -> str:
    return f"{prefix}{param}"


class ParamField:
    """One parameter's widget(s), with get/set in the parameter's own type."""

    def __init__(self, field: Field, on_change: Callable[[str, Any], None], prefix: str = PARAM_PREFIX) -> None:
        self.field = field
        self._on_change = on_change
        self._quiet = False
        self.widget, self.editor = self._build()
        self.editor.setObjectName(object_name(field.name, prefix))
        for w in (self.widget, self.editor):
            w.setToolTip(field.help)

    def _changed(self, *_: Any) -> None:
        if not self._quiet:
            self._on_change(self.field.name, self.value())

    def _build(self) -> tuple[QWidget, QWidget]:
        f = self.field
        if f.kind == FieldKind.BOOL:
            box = QCheckBox()
            box.toggled.connect(self._changed)
            return box, box
        if f.kind == FieldKind.CHOICE:
            combo = QComboBox()
            for value, label in f.choices:
                combo.addItem(label, value)
            combo.currentIndexChanged.connect(self._changed)
            return combo, combo
        if f.kind in (FieldKind.STRING, FieldKind.PROMPT):
            edit = QLineEdit()
            edit.textChanged.connect(self._changed)
            return edit, edit
        if f.kind == FieldKind.SEED:
            # QSpinBox stops at 2**31 - 1; seeds go to 2**32 - 1.
            spin = QDoubleSpinBox()
            spin.setDecimals(0)
            spin.setRange(f.minimum, f.maximum)
            spin.setSpecialValueText("random")
            spin.valueChanged.connect(self._changed)
            dice = QToolButton()
            dice.setText("New")
            dice.setToolTip("Pick a new seed now, so the result can be made again.")
            dice.clicked.connect(lambda: spin.setValue(random.randint(0, int(f.maximum))))
            return _row(spin, dice), spin
        if f.kind == FieldKind.INT:
            spin = QSpinBox()
            lo, hi = int(f.minimum), int(f.maximum)
            spin.setRange(lo, hi)
            spin.valueChanged.connect(self._changed)
            if f.slider:
                slider = QSlider(Qt.Orientation.Horizontal)
                slider.setRange(lo, hi)
                slider.valueChanged.connect(spin.setValue)
                spin.valueChanged.connect(slider.setValue)
                return _row(slider, spin), spin
            return spin, spin
        spin = QDoubleSpinBox()
        lo, hi = f.minimum, f.maximum
        spin.setRange(lo, hi)
        spin.setDecimals(max(f.digits, 2))
        spin.setSingleStep(f.step)
        spin.valueChanged.connect(self._changed)
        if f.slider:
            span = hi - lo
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, SLIDER_STEPS)
            slider.valueChanged.connect(lambda v: spin.setValue(lo + span * v / SLIDER_STEPS))
            spin.valueChanged.connect(lambda v: _set_quietly(slider, round((v - lo) / span * SLIDER_STEPS) if span else 0))
            return _row(slider, spin), spin
        return spin, spin

    def value(self) -> Any:
        e, k = self.editor, self.field.kind
        if k == FieldKind.BOOL:
            return e.isChecked()
        if k == FieldKind.CHOICE:
            return e.currentData()
        if k in (FieldKind.STRING, FieldKind.PROMPT):
            return e.text()
        if k in (FieldKind.SEED, FieldKind.INT):
            return int(e.value())
        return float(e.value())

    def set_value(self, value: Any) -> None:
        if value is None:
            return
        self._quiet = True
        try:
            e, k = self.editor, self.field.kind
            if k == FieldKind.BOOL:
                e.setChecked(bool(value))
            elif k == FieldKind.CHOICE:
                index = e.findData(str(value))
                if index >= 0:
                    e.setCurrentIndex(index)
            elif k in (FieldKind.STRING, FieldKind.PROMPT):
                e.setText(str(value))
            else:
                e.setValue(value)
        finally:
            self._quiet = False


def _row(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    return holder


def _open_section(outer: QVBoxLayout) -> QFormLayout:
    form = QFormLayout()
    outer.addLayout(form)
    return form


def _set_quietly(slider: QSlider, value: int) -> None:
    slider.blockSignals(True)
    slider.setValue(value)
    slider.blockSignals(False)


class ParamForm(QWidget):
    """The form for one mode's parameters; rebuilt whenever the mode changes."""

    def __init__(self, on_change: Callable[[str, Any], None], parent: QWidget | None = None, prefix: str = PARAM_PREFIX) -> None:
        super().__init__(parent)
        self._on_change = on_change
        self._prefix = prefix  # of the editors' objectNames: a control layer's form has its own
        self.fields: dict[str, ParamField] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._body: QWidget | None = None

    def build(self, mode: ModeSpec | None, values: Callable[[str], Any], skip: Sequence[str] = ()) -> None:
        """The form for ``mode`` as the server lays it out (ModeSpec.form)."""
        specs = mode.params if mode else ()
        self._build_fields(fields(mode, {s.name: values(s.name) for s in specs}) if mode else [], skip)

    def build_specs(self, specs: Sequence[ParamSpec], values: Callable[[str], Any], skip: Sequence[str] = ()) -> None:
        """The form for any list of parameters (a control kind's)."""
        self._build_fields(param_fields(specs, {spec.name: values(spec.name) for spec in specs}), skip)

    def _build_fields(self, form: Sequence[Field], skip: Sequence[str]) -> None:
        if self._body is not None:
            self._layout.removeWidget(self._body)
            # Out of the widget tree at once (deleteLater waits for the event loop),
            # so that findChild by objectName sees only the current form.
            self._body.setParent(None)
            self._body.deleteLater()
        self.fields = {}
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(0, 0, 0, 0)
        forms = {"basic": QFormLayout()}
        outer.addLayout(forms["basic"])
        for field in form:
            if field.name in skip:
                continue
            if field.group not in forms:
                forms[field.group] = self._fold(outer, field) if field.folded else _open_section(outer)
            widget = ParamField(field, self._on_change, self._prefix)
            widget.set_value(field.value)
            self.fields[field.name] = widget
            forms[field.group].addRow(field.label, widget.widget)
        self._body = body
        self._layout.addWidget(body)

    @staticmethod
    def _fold(outer: QVBoxLayout, field: Field) -> QFormLayout:
        """A folded box for a group of rarely touched parameters."""
        fold = QGroupBox(field.group_title)
        fold.setObjectName(f"paintwire-group-{field.group}")
        fold.setCheckable(True)
        fold.setChecked(False)
        inner = QWidget()
        form = QFormLayout(inner)
        QVBoxLayout(fold).addWidget(inner)
        fold.toggled.connect(inner.setVisible)
        inner.setVisible(False)
        outer.addWidget(fold)
        return form
