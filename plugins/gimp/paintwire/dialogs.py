"""GimpUi dialogs: the job dialog built from the server's mode descriptions,
and the connection dialog. Only imported for interactive runs.

The job dialog shows the modes the connected server offers (a chooser in
"Paintwire...", fixed in the named entries), its model list, the input
choice and one widget per parameter the chosen engine's mode advertises
(paintwire.hostkit.form decides which), rarely touched ones folded. Choosing
another mode or a model of another engine rebuilds the form, keeping the
values of parameters of the same name.
"""

from __future__ import annotations

from typing import Any, Callable

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import GimpUi, GLib, Gtk  # noqa: E402

from paintwire.hostkit import controls as kit_controls  # noqa: E402
from paintwire.hostkit import form as kit_form  # noqa: E402
from paintwire.hostkit import modes as kit_modes  # noqa: E402
from paintwire.hostkit.recall import recollect, settings_in_image  # noqa: E402
from paintwire.hostkit.request import PROMPT, reads_document  # noqa: E402
from paintwire.hostkit.sources import InputSource  # noqa: E402
from paintwire.protocol import ModeSpec  # noqa: E402

import form  # noqa: E402
from actions import Args, args_from_params  # noqa: E402
from control_rows import ControlSection  # noqa: E402
from jobs import DialogRequest  # noqa: E402

PLUG_IN_BINARY = "paintwire"
RECALL_POLL_MS = 500  # how often an open dialog looks for settings sent from the server's history


class ParamForm:
    """Widgets for one mode's parameters; ``values()`` reads them back by name."""

    def __init__(self, mode: ModeSpec | None, values: dict[str, Any], labels: Gtk.SizeGroup | None = None, specs=None) -> None:
        # ``specs`` instead of a mode: any parameter list (a control kind's).
        self.fields = kit_form.param_fields(specs, values) if specs is not None else kit_form.fields(mode, values)
        self._readers: dict[str, Callable[[], Any]] = {}
        self.widget = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)
        grids: dict[str, Gtk.Grid] = {}
        rows: dict[str, int] = {}
        for field in self.fields:
            if field.kind == kit_form.FieldKind.PROMPT:
                self.widget.pack_start(self._prompt(field), False, False, 0)
                continue
            if field.group not in grids:
                grids[field.group], rows[field.group] = self._grid(), 0
                if field.advanced:  # one fold per group, in the order the fields come
                    expander = Gtk.Expander(label=field.group_title)
                    expander.add(grids[field.group])
                    self.widget.pack_start(expander, False, False, 0)
                else:
                    self.widget.pack_start(grids[field.group], False, False, 0)
            grid = grids[field.group]
            label = Gtk.Label(label=field.label, xalign=0.0)
            label.set_tooltip_text(field.help)
            if labels is not None and not field.advanced:
                labels.add_widget(label)  # one label column with the dialog's Mode, Model and Input rows
            widget = self._widget(field)
            widget.set_tooltip_text(field.help)
            widget.set_hexpand(True)
            grid.attach(label, 0, rows[field.group], 1, 1)
            grid.attach(widget, 1, rows[field.group], 1, 1)
            rows[field.group] += 1

    @staticmethod
    def _grid() -> Gtk.Grid:
        grid = Gtk.Grid(column_spacing=12, row_spacing=6)
        return grid

    def _prompt(self, field: kit_form.Field) -> Gtk.Widget:
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=2)
        box.pack_start(Gtk.Label(label=field.label, xalign=0.0), False, False, 0)
        view = Gtk.TextView(wrap_mode=Gtk.WrapMode.WORD_CHAR, accepts_tab=False)
        view.get_buffer().set_text(str(field.value or ""))
        view.set_tooltip_text(field.help)
        scroll = Gtk.ScrolledWindow(min_content_height=60 if field.name == PROMPT else 36)
        scroll.set_shadow_type(Gtk.ShadowType.IN)
        scroll.add(view)
        box.pack_start(scroll, True, True, 0)

        def read() -> str:
            buf = view.get_buffer()
            return buf.get_text(buf.get_start_iter(), buf.get_end_iter(), False)

        self._readers[field.name] = read
        return box

    def _widget(self, field: kit_form.Field) -> Gtk.Widget:
        if field.kind in ("int", "seed", "float"):
            adj = Gtk.Adjustment(value=float(field.value), lower=field.minimum, upper=field.maximum,
                                 step_increment=field.step, page_increment=field.step * 10)
            spin = Gtk.SpinButton(adjustment=adj, digits=field.digits, numeric=True)
            self._readers[field.name] = lambda: kit_form.coerce(field, spin.get_value())
            if field.kind != "seed":
                return spin
            box = Gtk.Box(spacing=4)
            box.pack_start(spin, True, True, 0)
            random = Gtk.Button(label="Random")
            random.set_tooltip_text("-1: the server picks a seed and the layer name reports it")
            random.connect("clicked", lambda *_: spin.set_value(-1))
            box.pack_start(random, False, False, 0)
            return box
        if field.kind == "bool":
            check = Gtk.CheckButton(active=bool(field.value))
            self._readers[field.name] = lambda: check.get_active()
            return check
        if field.kind == "choice":
            combo = Gtk.ComboBoxText()
            for value, text in field.choices:
                combo.append(value, text)
            combo.set_active_id(str(field.value))
            self._readers[field.name] = lambda: combo.get_active_id() or field.value
            return combo
        entry = Gtk.Entry(text=str(field.value or ""))
        self._readers[field.name] = lambda: entry.get_text()
        return entry

    def values(self) -> dict[str, Any]:
        by_name = {f.name: f for f in self.fields}
        return {name: kit_form.coerce(by_name[name], read()) for name, read in self._readers.items()}


def job_dialog(procedure, has_drawable: bool) -> Callable[[DialogRequest], "Args | None"]:
    """The dialog callback jobs.run calls once the server's capabilities are known."""

    def show(request: DialogRequest) -> Args | None:
        GimpUi.init(PLUG_IN_BINARY)
        return JobDialog(request, has_drawable).run()

    return show


def controls_note(mode: ModeSpec, kinds, has_layers: bool) -> str:
    """Why the control-layer section is off for ``mode`` ("" when it is on)."""
    if not kinds:
        return "This model's engine takes no control layers."
    if not kit_controls.accepts_controls(mode):
        return f"{mode.label} takes no control layers."
    if not has_layers:
        return "The image has no layers to use."
    return ""


class JobDialog:
    """The job dialog: the mode and model choosers, the input, the parameter form of the
    chosen mode (rebuilt when either changes), the control layers, and settings recalled
    from an image or from the server's history."""

    def __init__(self, request: DialogRequest, has_drawable: bool) -> None:
        self.request = request
        self.has_drawable = has_drawable
        self.caps = request.capabilities  # a Refresh replaces them
        self.choices: list[kit_modes.Choice] = []
        self.updating = False  # the model list is being refilled: no rebuild per entry
        self.form: ParamForm | None = None
        self.mode: ModeSpec | None = None
        self.recalled: dict[str, Any] = {}  # recalled values that the next rebuild puts in the form
        label = kit_modes.mode_label(request.capabilities, request.mode)
        self.dialog = GimpUi.Dialog(title="Paintwire" if not request.mode_fixed else f"Paintwire: {label}", role=PLUG_IN_BINARY)
        self.dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        self.dialog.add_button("_OK", Gtk.ResponseType.OK)
        self.dialog.set_default_response(Gtk.ResponseType.OK)
        content = self.dialog.get_content_area()
        content.set_spacing(8)
        content.set_border_width(12)
        self.labels = Gtk.SizeGroup(mode=Gtk.SizeGroupMode.HORIZONTAL)
        content.pack_start(self._choosers(), False, False, 0)
        content.pack_start(self.unusable, False, False, 0)
        content.pack_start(self._recall_row(), False, False, 0)
        self.holder = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        content.pack_start(self.holder, True, True, 0)
        self.controls = ControlSection(kit_controls.stored_controls(request.args.controls_json), request.layers,
                                       lambda specs, values: ParamForm(None, values, specs=specs))
        content.pack_start(self.controls.widget, False, False, 0)
        self.modes.connect("changed", self.fill_models)
        self.models.connect("changed", self.rebuild)
        self.refresh.connect("clicked", self.refresh_models)
        self.from_image.connect("clicked", self.settings_from_image)

    # -- layout -----------------------------------------------------------------------------

    def _choosers(self) -> Gtk.Grid:
        """Mode, Model (with Refresh) and Input; and the line naming models that cannot be used."""
        request = self.request
        self.modes = Gtk.ComboBoxText()
        for spec in request.modes:
            self.modes.append(spec.name, spec.label)
        self.modes.set_active_id(request.mode)
        self.modes.set_sensitive(not request.mode_fixed)
        self.models = Gtk.ComboBoxText()
        self.sources = Gtk.ComboBoxText()
        for source in InputSource:
            self.sources.append(source.value, source.label)
        start_source = InputSource.parse(request.args.source) if self.has_drawable else InputSource.VISIBLE
        self.sources.set_active_id(start_source.value)
        self.sources.set_sensitive(self.has_drawable)
        self.refresh = Gtk.Button(label="Refresh")
        self.refresh.set_tooltip_text("Have the server look at its model folders again (a model was just added)")
        self.refresh.set_sensitive(request.refresh is not None)
        model_row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        model_row.pack_start(self.models, True, True, 0)
        model_row.pack_start(self.refresh, False, False, 0)
        self.unusable = Gtk.Label(xalign=0.0, wrap=True)  # models found but not loadable, with their reasons
        self.unusable.get_style_context().add_class("dim-label")
        top = Gtk.Grid(column_spacing=12, row_spacing=6)
        for row, (text, widget) in enumerate((("Mode", self.modes), ("Model", model_row), ("Input", self.sources))):
            row_label = Gtk.Label(label=text, xalign=0.0)
            self.labels.add_widget(row_label)
            widget.set_hexpand(True)
            top.attach(row_label, 0, row, 1, 1)
            top.attach(widget, 1, row, 1, 1)
        return top

    def _recall_row(self) -> Gtk.Box:
        """"Settings from image..." and the note saying what was recalled."""
        row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        self.from_image = Gtk.Button(label="Settings from image\u2026")
        self.from_image.set_tooltip_text("Fill the form with the settings saved in a PNG: one made by Paintwire, the Stable Diffusion WebUI, Forge or SwarmUI")
        row.pack_start(self.from_image, False, False, 0)
        self.recall_note = Gtk.Label(xalign=0.0, wrap=True)  # what was recalled, and what the server could not take
        self.recall_note.get_style_context().add_class("dim-label")
        row.pack_start(self.recall_note, True, True, 0)
        return row

    # -- the choices and the form -----------------------------------------------------------

    def mode_name(self) -> str:
        return self.modes.get_active_id() or self.request.mode

    def chosen(self) -> kit_modes.Choice:
        key = self.models.get_active_id()
        return next((c for c in self.choices if c.key == key), self.choices[0])

    def fill_models(self, *_: Any) -> None:
        previous = self.models.get_active_id() or self.request.initial.key
        self.choices = self.request.choices(self.mode_name(), self.caps)
        self.updating = True
        self.models.remove_all()
        for choice in self.choices:
            self.models.append(choice.key, choice.label)
        self.models.set_active_id(kit_modes.keep_choice(self.choices, previous))
        self.updating = False
        self.rebuild()

    def rebuild(self, *_: Any) -> None:
        """The form of the chosen mode and engine, keeping the values of parameters of the same name."""
        if self.updating:
            return
        choice = self.chosen()
        mode = kit_modes.find_mode(self.caps, choice.engine, self.mode_name())
        assert mode is not None
        values = self.form.values() if self.form is not None else form.stored_values(mode, self.request.args)
        values.update(self.recalled)  # settings just recalled win over what the form had
        self.recalled = {}
        for child in self.holder.get_children():
            self.holder.remove(child)
        self.form, self.mode = ParamForm(mode, values, self.labels), mode
        self.sources.set_sensitive(self.has_drawable and reads_document(mode))  # Generate reads no pixels
        self.holder.pack_start(self.form.widget, True, True, 0)
        mode_help = Gtk.Label(label=mode.help, xalign=0.0, wrap=True)
        mode_help.get_style_context().add_class("dim-label")
        self.holder.pack_start(mode_help, False, False, 0)
        self.holder.show_all()
        kinds = kit_controls.control_kinds(self.caps, choice.engine)
        why = controls_note(mode, kinds, bool(self.request.layers))
        self.controls.update(kinds, kit_controls.accepts_controls(mode) and bool(kinds), why)

    def show_unusable(self) -> None:
        lines = [f"{m.label or m.name} cannot be used: {m.problem}" for m in kit_modes.unusable_models(self.caps)]
        self.unusable.set_text("\n".join(lines))
        self.unusable.set_visible(bool(lines))

    def refresh_models(self, *_: Any) -> None:
        try:
            self.caps = self.request.refresh()
        except Exception as exc:  # shown in the dialog, which stays usable
            self.unusable.set_text(str(exc))
            self.unusable.set_visible(True)
            return
        self.fill_models()
        self.show_unusable()

    # -- recalled settings ------------------------------------------------------------------

    def apply_saved(self, saved: dict, where: str) -> None:
        if self.request.mode_fixed:
            saved = {**saved, "mode": self.request.mode}  # this entry runs one mode: take what fits it
        got = recollect(saved, self.caps)
        if got.settings is None:
            self.recall_note.set_text(" ".join(got.notes))
            return
        self.recalled = dict(got.settings.params)
        if self.mode_name() != got.settings.mode:
            self.modes.set_active_id(got.settings.mode)  # its model list, then the form with the recalled values
        else:
            self.rebuild()
        key = kit_modes.Choice(got.settings.engine, got.settings.model, "").key
        if self.models.get_active_id() != key and any(c.key == key for c in self.choices):
            self.recalled = dict(got.settings.params)
            self.models.set_active_id(key)  # rebuilds the form again, for that engine
        self.recall_note.set_text(f"Settings from {where}: {got.summary}." + "".join(f" {n}" for n in got.notes))

    def settings_from_image(self, *_: Any) -> None:
        path = self._choose_png()
        if not path:
            return
        try:
            with open(path, "rb") as f:
                found = settings_in_image(f.read())
        except (OSError, ValueError) as exc:
            self.recall_note.set_text(str(exc))
            return
        if found is None:
            self.recall_note.set_text("This image carries no settings (neither Paintwire's nor the WebUI's nor SwarmUI's).")
            return
        self.apply_saved(found.settings, "the image")

    def _choose_png(self) -> str | None:
        chooser = Gtk.FileChooserDialog(title="Settings from image", parent=self.dialog, action=Gtk.FileChooserAction.OPEN)
        chooser.add_buttons("_Cancel", Gtk.ResponseType.CANCEL, "_Open", Gtk.ResponseType.OK)
        png = Gtk.FileFilter()
        png.set_name("PNG images")
        png.add_pattern("*.png")
        png.add_pattern("*.PNG")
        chooser.add_filter(png)
        try:
            return chooser.get_filename() if chooser.run() == Gtk.ResponseType.OK else None
        finally:
            chooser.destroy()

    def poll_recalls(self) -> bool:
        for recall in self.request.recalls() if self.request.recalls else ():
            self.apply_saved(dict(recall.settings), f"history result {recall.id}")
        return True  # keep looking while the dialog is open

    # -- running ----------------------------------------------------------------------------

    def run(self) -> Args | None:
        """Show the dialog until OK (the arguments to run with) or Cancel (None)."""
        self.fill_models()
        self.dialog.show_all()
        self.show_unusable()
        poller = GLib.timeout_add(RECALL_POLL_MS, self.poll_recalls) if self.request.recalls else None
        self.controls.settle()
        try:
            if self.dialog.run() != Gtk.ResponseType.OK:
                return None
            return self.values()
        finally:
            if poller is not None:
                GLib.source_remove(poller)
            self.dialog.destroy()

    def values(self) -> Args:
        """The arguments the dialog shows now."""
        assert self.mode is not None and self.form is not None
        taken = self.controls.values() if kit_controls.accepts_controls(self.mode) else []
        return args_from_params(self.request.args, self.mode, self.form.values(), self.chosen(), self.sources.get_active_id() or "visible", taken)


def connection_dialog(procedure, config) -> bool:
    """GIMP's own dialog for the Connection procedure's arguments. True on OK."""
    GimpUi.init(PLUG_IN_BINARY)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Paintwire: Connection")
    dialog.fill(None)
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()
