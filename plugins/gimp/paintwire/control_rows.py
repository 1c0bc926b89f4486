"""The job dialog's control layers: pick layers of the image that guide the job
(line art, depth, pose, a reference picture), each with a kind, a strength,
the range of steps it acts in, a preprocessor and the kind's parameters.

Kinds, preprocessors and parameters are the server's (EngineInfo.controls);
the rules (what "Add" starts from, what is sent) are paintwire.hostkit.controls,
shared with Krita. Only imported for interactive runs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402

from paintwire.hostkit import controls as kit_controls  # noqa: E402
from paintwire.hostkit.controls import ControlLayer  # noqa: E402
from paintwire.protocol.controls import MAX_CONTROL_STRENGTH, ControlKindSpec  # noqa: E402

TIPS = {
    "enabled": "Send this control layer with the job; unticked, it is kept but does not guide.",
    "layer": "The layer that guides the result, read as it is (hide it to keep it out of the picture).",
    "kind": "What the layer tells the model; the server lists the kinds it can run.",
    "strength": "How strongly the layer guides: 0 not at all, 1 as trained, up to 2 to insist.",
    "start": "From which share of the steps the layer guides (0: from the first).",
    "end": "Until which share of the steps the layer guides (1: to the last); ending early leaves details free.",
    "preprocessor": "How the server turns the layer into what the model reads; 'none' uses it as it is.",
    "remove": "Remove this control layer from the job (the layer stays in the image).",
}


def _spin(value: float, hi: float, tip: str) -> Gtk.SpinButton:
    adj = Gtk.Adjustment(value=value, lower=0.0, upper=hi, step_increment=0.05, page_increment=0.25)
    spin = Gtk.SpinButton(adjustment=adj, digits=2, numeric=True)
    spin.set_tooltip_text(tip)
    return spin


class ControlRow:
    """One control layer's widgets; ``value()`` reads it back as a ControlLayer."""

    def __init__(self, control: ControlLayer, kinds: Sequence[ControlKindSpec], layers: Sequence[str],
                 remove: Callable[["ControlRow"], None], param_form: Callable) -> None:
        self.control = control
        self.kinds = tuple(kinds)
        self._param_form = param_form
        self.widget = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        top = Gtk.Box(spacing=6)
        self.enabled = Gtk.CheckButton(active=control.enabled)
        self.enabled.set_tooltip_text(TIPS["enabled"])
        self.layer = Gtk.ComboBoxText()
        for name in list(layers) + ([control.layer] if control.layer not in layers else []):
            self.layer.append(name, name)
        self.layer.set_active_id(control.layer)
        self.layer.set_tooltip_text(TIPS["layer"])
        self.kind = Gtk.ComboBoxText()
        for spec in self.kinds:
            self.kind.append(spec.name, spec.label or spec.name)
        if kit_controls.kind_spec(self.kinds, control.kind) is None:
            self.kind.append(control.kind, f"{control.kind} (not offered)")
        self.kind.set_active_id(control.kind)
        self.kind.set_tooltip_text(TIPS["kind"])
        drop = Gtk.Button(label="Remove")
        drop.set_tooltip_text(TIPS["remove"])
        drop.connect("clicked", lambda *_: remove(self))
        for widget, grow in ((self.enabled, False), (self.layer, True), (self.kind, True), (drop, False)):
            top.pack_start(widget, grow, grow, 0)
        self.widget.pack_start(top, False, False, 0)

        weights = Gtk.Box(spacing=6)
        self.strength = _spin(control.strength, MAX_CONTROL_STRENGTH, TIPS["strength"])
        self.start = _spin(control.start, 1.0, TIPS["start"])
        self.end = _spin(control.end, 1.0, TIPS["end"])
        self.preprocessor = Gtk.ComboBoxText()
        self.preprocessor.set_tooltip_text(TIPS["preprocessor"])
        for text, widget in (("Strength", self.strength), ("Steps", self.start), ("to", self.end), ("Preprocessor", self.preprocessor)):
            weights.pack_start(Gtk.Label(label=text), False, False, 0)
            weights.pack_start(widget, widget is self.preprocessor, widget is self.preprocessor, 0)
        self.widget.pack_start(weights, False, False, 0)
        self.details = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)  # the kind's parameters and problem
        self.widget.pack_start(self.details, False, False, 0)
        self.form = None
        self._fill_kind(control)
        self.kind.connect("changed", lambda *_: self._fill_kind(replace(self.value(), preprocessor="", params={})))

    def _fill_kind(self, control: ControlLayer) -> None:
        """The preprocessor list, parameters and problem of the chosen kind."""
        spec = kit_controls.kind_spec(self.kinds, control.kind)
        self.preprocessor.remove_all()
        for child in self.details.get_children():
            self.details.remove(child)
        self.form = None
        if spec is None:
            return
        for name in spec.preprocessors:
            self.preprocessor.append(name, name)
        self.preprocessor.set_active_id(control.preprocessor or spec.default_preprocessor)
        self.widget.set_tooltip_text(spec.help)
        if spec.params:
            self.form = self._param_form(spec.params, dict(control.params))
            self.details.pack_start(self.form.widget, False, False, 0)
        if spec.problem:  # no installed model runs this kind: the server says which file to add
            problem = Gtk.Label(label=spec.problem, xalign=0.0, wrap=True)
            problem.get_style_context().add_class("dim-label")
            self.details.pack_start(problem, False, False, 0)
        self.details.show_all()

    def value(self) -> ControlLayer:
        return ControlLayer(
            layer=self.layer.get_active_id() or self.control.layer, kind=self.kind.get_active_id() or self.control.kind,
            strength=round(self.strength.get_value(), 3), start=round(self.start.get_value(), 3), end=round(self.end.get_value(), 3),
            preprocessor=self.preprocessor.get_active_id() or "", params=self.form.values() if self.form is not None else {},
            enabled=self.enabled.get_active(),
        )


class ControlSection:
    """The dialog's "Control layers" fold: rows, an Add button, and a note when the
    chosen mode or engine takes none."""

    def __init__(self, controls: Sequence[ControlLayer], layers: Sequence[str], param_form: Callable) -> None:
        self.layers = tuple(layers)
        self._param_form = param_form
        self._start = list(controls)
        self.kinds: tuple[ControlKindSpec, ...] = ()
        self.rows: list[ControlRow] = []
        self.widget = Gtk.Expander(label="Control layers")
        self.widget.set_tooltip_text("Layers of this image that guide the result: line art, a scribble, a depth or pose map, "
                                     "a reference picture. The kinds come from the server.")
        self.widget.set_expanded(bool(self._start))
        body = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        self.note = Gtk.Label(xalign=0.0, wrap=True)
        self.note.get_style_context().add_class("dim-label")
        self.box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)
        self.add = Gtk.Button(label="Add control layer")
        self.add.set_tooltip_text("Add a layer of this image as a control layer, of the kind added last.")
        self.add.connect("clicked", lambda *_: self._add())
        body.pack_start(self.note, False, False, 0)
        body.pack_start(self.box, False, False, 0)
        body.pack_start(self.add, False, False, 0)
        self.widget.add(body)

    def update(self, kinds: Sequence[ControlKindSpec], takes: bool, why: str) -> None:
        """Rebuild the rows for the chosen engine's kinds (keeping what the artist set)."""
        current = self.values() if self.rows else self._start
        self.kinds = tuple(kinds)
        for row in self.rows:
            self.box.remove(row.widget)
        self.rows = []
        for control in current:
            self._append(control)
        self.box.set_sensitive(takes)
        self.add.set_sensitive(takes and bool(self.kinds) and bool(self.layers))
        self.note.set_text(why)
        self.note.set_visible(bool(why))

    def settle(self) -> None:
        """After the dialog's show_all: the note shows only when it says something."""
        self.note.set_visible(bool(self.note.get_text()))

    def _add(self) -> None:
        if len(self.rows) >= kit_controls.MAX_CONTROLS:
            return
        previous = self.rows[-1].value() if self.rows else None
        layer = previous.layer if previous is not None else self.layers[0]
        self._append(kit_controls.new_control(self.kinds, layer, previous))

    def _append(self, control: ControlLayer) -> None:
        row = ControlRow(control, self.kinds, self.layers, self._remove, self._param_form)
        self.rows.append(row)
        self.box.pack_start(row.widget, False, False, 0)
        row.widget.show_all()

    def _remove(self, row: ControlRow) -> None:
        self.rows.remove(row)
        self.box.remove(row.widget)

    def values(self) -> list[ControlLayer]:
        return [row.value() for row in self.rows]
