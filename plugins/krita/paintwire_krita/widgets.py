"""A settings form built from the server's ParamSpecs.

int and float become spin boxes (a slider beside them when the range is
short enough to drag), seed a wide spin box with a dice button, bool a check
box, choice a combo box (showing human labels, keeping the values), string a
line edit; every widget's tooltip is the ParamSpec's help. Basic parameters
come first; those of another group ("advanced", "soft", ...) go behind a fold
per group. Each widget's objectName is ``paintwire-param-<name>`` so that
tests and scripts can find it.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from paintwire.protocol import ParamSpec, ParamType
from paintwire.protocol.params import MAX_SEED

from .qt import (
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

INT32_MAX = 2**31 - 1
SLIDER_STEPS = 1000  # resolution of a float slider
MAX_SLIDER_RANGE = 200  # an int range wider than this gets no slider: it would jump too far per pixel
# Titles of the folds for ParamSpec groups other than "basic"; unknown groups get their name.
GROUP_TITLES = {"advanced": "Advanced", "soft": "Soft inpainting settings"}


def object_name(param: str) -> str:
    return f"paintwire-param-{param}"


def choice_label(spec: ParamSpec, value: str) -> str:
    """What the artist reads for a choice: the server's label when it gives one,
    else the value in words ("whole_picture" -> "Whole picture")."""
    label = spec.choice_label(value) if hasattr(spec, "choice_label") else value
    if label != value:
        return label
    words = value.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else value


class ParamField:
    """One parameter's widget(s), with get/set in the parameter's own type."""

    def __init__(self, spec: ParamSpec, on_change: Callable[[str, Any], None]) -> None:
        self.spec = spec
        self._on_change = on_change
        self._quiet = False
        self.widget, self.editor = self._build()
        self.editor.setObjectName(object_name(spec.name))
        for w in (self.widget, self.editor):
            w.setToolTip(spec.help)

    def _changed(self, *_: Any) -> None:
        if not self._quiet:
            self._on_change(self.spec.name, self.value())

    def _build(self) -> tuple[QWidget, QWidget]:
        s = self.spec
        if s.type is ParamType.BOOL:
            box = QCheckBox()
            box.toggled.connect(self._changed)
            return box, box
        if s.type is ParamType.CHOICE:
            combo = QComboBox()
            for value in s.choices:
                combo.addItem(choice_label(s, value), value)
            combo.currentIndexChanged.connect(self._changed)
            return combo, combo
        if s.type is ParamType.STRING:
            edit = QLineEdit()
            edit.textChanged.connect(self._changed)
            return edit, edit
        if s.type is ParamType.SEED:
            # QSpinBox stops at 2**31 - 1; seeds go to 2**32 - 1.
            spin = QDoubleSpinBox()
            spin.setDecimals(0)
            spin.setRange(-1, MAX_SEED)
            spin.setSpecialValueText("random")
            spin.valueChanged.connect(self._changed)
            dice = QToolButton()
            dice.setText("New")
            dice.setToolTip("Pick a new seed now, so the result can be made again.")
            dice.clicked.connect(lambda: spin.setValue(random.randint(0, MAX_SEED)))
            return _row(spin, dice), spin
        if s.type is ParamType.INT:
            spin = QSpinBox()
            lo = int(s.minimum) if s.minimum is not None else -INT32_MAX
            hi = int(s.maximum) if s.maximum is not None else INT32_MAX
            spin.setRange(max(lo, -INT32_MAX), min(hi, INT32_MAX))
            spin.valueChanged.connect(self._changed)
            if s.minimum is not None and s.maximum is not None and hi - lo <= MAX_SLIDER_RANGE:
                slider = QSlider(Qt.Orientation.Horizontal)
                slider.setRange(lo, hi)
                slider.valueChanged.connect(spin.setValue)
                spin.valueChanged.connect(slider.setValue)
                return _row(slider, spin), spin
            return spin, spin
        spin = QDoubleSpinBox()
        lo = float(s.minimum) if s.minimum is not None else -1e9
        hi = float(s.maximum) if s.maximum is not None else 1e9
        spin.setRange(lo, hi)
        span = hi - lo
        spin.setDecimals(2 if span > 1.5 else 3)
        spin.setSingleStep(0.05 if span <= 2 else 0.5)
        spin.valueChanged.connect(self._changed)
        if s.minimum is not None and s.maximum is not None:
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, SLIDER_STEPS)
            slider.valueChanged.connect(lambda v: spin.setValue(lo + span * v / SLIDER_STEPS))
            spin.valueChanged.connect(lambda v: _set_quietly(slider, round((v - lo) / span * SLIDER_STEPS) if span else 0))
            return _row(slider, spin), spin
        return spin, spin

    def value(self) -> Any:
        e, t = self.editor, self.spec.type
        if t is ParamType.BOOL:
            return e.isChecked()
        if t is ParamType.CHOICE:
            return e.currentData()
        if t is ParamType.STRING:
            return e.text()
        if t in (ParamType.SEED, ParamType.INT):
            return int(e.value())
        return float(e.value())

    def set_value(self, value: Any) -> None:
        if value is None:
            return
        self._quiet = True
        try:
            e, t = self.editor, self.spec.type
            if t is ParamType.BOOL:
                e.setChecked(bool(value))
            elif t is ParamType.CHOICE:
                index = e.findData(str(value))
                if index >= 0:
                    e.setCurrentIndex(index)
            elif t is ParamType.STRING:
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


def _set_quietly(slider: QSlider, value: int) -> None:
    slider.blockSignals(True)
    slider.setValue(value)
    slider.blockSignals(False)


class ParamForm(QWidget):
    """The form for one mode's parameters; rebuilt whenever the mode changes."""

    def __init__(self, on_change: Callable[[str, Any], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._on_change = on_change
        self.fields: dict[str, ParamField] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._body: QWidget | None = None

    def build(self, specs: Sequence[ParamSpec], values: Callable[[str], Any], skip: Sequence[str] = ()) -> None:
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
        for spec in specs:
            if spec.name in skip:
                continue
            if spec.group not in forms:
                forms[spec.group] = self._fold(outer, spec.group)
            field = ParamField(spec, self._on_change)
            field.set_value(values(spec.name))
            self.fields[spec.name] = field
            forms[spec.group].addRow(spec.label, field.widget)
        self._body = body
        self._layout.addWidget(body)

    @staticmethod
    def _fold(outer: QVBoxLayout, group: str) -> QFormLayout:
        """A folded box for a group of rarely touched parameters."""
        fold = QGroupBox(GROUP_TITLES.get(group, group.replace("_", " ").capitalize()))
        fold.setObjectName(f"paintwire-group-{group}")
        fold.setCheckable(True)
        fold.setChecked(False)
        inner = QWidget()
        form = QFormLayout(inner)
        QVBoxLayout(fold).addWidget(inner)
        fold.toggled.connect(inner.setVisible)
        inner.setVisible(False)
        outer.addWidget(fold)
        return form

    def set_values(self, values: Callable[[str], Any]) -> None:
        for name, field in self.fields.items():
            field.set_value(values(name))
