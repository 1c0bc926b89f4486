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

from paintwire.hostkit import form as kit_form  # noqa: E402
from paintwire.hostkit import modes as kit_modes  # noqa: E402
from paintwire.hostkit.recall import recollect, settings_in_image  # noqa: E402
from paintwire.hostkit.request import PROMPT, reads_document  # noqa: E402
from paintwire.hostkit.sources import InputSource  # noqa: E402
from paintwire.protocol import ModeSpec  # noqa: E402

import form  # noqa: E402
from actions import Args, args_from_params  # noqa: E402
from jobs import DialogRequest  # noqa: E402

PLUG_IN_BINARY = "paintwire"
RECALL_POLL_MS = 500  # how often an open dialog looks for settings sent from the server's history


class ParamForm:
    """Widgets for one mode's parameters; ``values()`` reads them back by name."""

    def __init__(self, mode: ModeSpec, values: dict[str, Any], labels: Gtk.SizeGroup | None = None) -> None:
        self.fields = kit_form.fields(mode, values)
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
        label = kit_modes.mode_label(request.capabilities, request.mode)
        dialog = GimpUi.Dialog(title="Paintwire" if not request.mode_fixed else f"Paintwire: {label}", role=PLUG_IN_BINARY)
        dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        dialog.add_button("_OK", Gtk.ResponseType.OK)
        dialog.set_default_response(Gtk.ResponseType.OK)
        content = dialog.get_content_area()
        content.set_spacing(8)
        content.set_border_width(12)

        top = Gtk.Grid(column_spacing=12, row_spacing=6)
        labels = Gtk.SizeGroup(mode=Gtk.SizeGroupMode.HORIZONTAL)
        modes = Gtk.ComboBoxText()
        for spec in request.modes:
            modes.append(spec.name, spec.label)
        modes.set_active_id(request.mode)
        modes.set_sensitive(not request.mode_fixed)
        models = Gtk.ComboBoxText()
        sources = Gtk.ComboBoxText()
        for source in InputSource:
            sources.append(source.value, source.label)
        start_source = InputSource.parse(request.args.source) if has_drawable else InputSource.VISIBLE
        sources.set_active_id(start_source.value)
        sources.set_sensitive(has_drawable)
        refresh = Gtk.Button(label="Refresh")
        refresh.set_tooltip_text("Have the server look at its model folders again (a model was just added)")
        refresh.set_sensitive(request.refresh is not None)
        model_row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        model_row.pack_start(models, True, True, 0)
        model_row.pack_start(refresh, False, False, 0)
        unusable = Gtk.Label(xalign=0.0, wrap=True)  # models found but not loadable, with their reasons
        unusable.get_style_context().add_class("dim-label")
        for row, (text, widget) in enumerate((("Mode", modes), ("Model", model_row), ("Input", sources))):
            row_label = Gtk.Label(label=text, xalign=0.0)
            labels.add_widget(row_label)
            widget.set_hexpand(True)
            top.attach(row_label, 0, row, 1, 1)
            top.attach(widget, 1, row, 1, 1)
        content.pack_start(top, False, False, 0)
        content.pack_start(unusable, False, False, 0)

        recall_row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        from_image = Gtk.Button(label="Settings from image\u2026")
        from_image.set_tooltip_text("Fill the form with the settings saved in a PNG: one made by Paintwire, the Stable Diffusion WebUI, Forge or SwarmUI")
        recall_row.pack_start(from_image, False, False, 0)
        recall_note = Gtk.Label(xalign=0.0, wrap=True)  # what was recalled, and what the server could not take
        recall_note.get_style_context().add_class("dim-label")
        recall_row.pack_start(recall_note, True, True, 0)
        content.pack_start(recall_row, False, False, 0)

        holder = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        content.pack_start(holder, True, True, 0)
        state: dict[str, Any] = {"choices": [], "updating": False, "caps": request.capabilities}

        def mode_name() -> str:
            return modes.get_active_id() or request.mode

        def chosen() -> kit_modes.Choice:
            key = models.get_active_id()
            return next((c for c in state["choices"] if c.key == key), state["choices"][0])

        def fill_models(*_: Any) -> None:
            previous = models.get_active_id() or request.initial.key
            state["choices"] = request.choices(mode_name(), state["caps"])
            state["updating"] = True
            models.remove_all()
            for choice in state["choices"]:
                models.append(choice.key, choice.label)
            models.set_active_id(kit_modes.keep_choice(state["choices"], previous))
            state["updating"] = False
            rebuild()

        def rebuild(*_: Any) -> None:
            if state["updating"]:
                return
            choice = chosen()
            mode = kit_modes.find_mode(state["caps"], choice.engine, mode_name())
            assert mode is not None
            values = state["form"].values() if "form" in state else form.stored_values(mode, request.args)
            values.update(state.pop("recalled", {}))  # settings just recalled win over what the form had
            for child in holder.get_children():
                holder.remove(child)
            state["form"], state["mode"] = ParamForm(mode, values, labels), mode
            sources.set_sensitive(has_drawable and reads_document(mode))  # Generate reads no pixels
            holder.pack_start(state["form"].widget, True, True, 0)
            mode_help = Gtk.Label(label=mode.help, xalign=0.0, wrap=True)
            mode_help.get_style_context().add_class("dim-label")
            holder.pack_start(mode_help, False, False, 0)
            holder.show_all()

        def show_unusable() -> None:
            lines = [f"{m.label or m.name} cannot be used: {m.problem}" for m in kit_modes.unusable_models(state["caps"])]
            unusable.set_text("\n".join(lines))
            unusable.set_visible(bool(lines))

        def refresh_models(*_: Any) -> None:
            try:
                state["caps"] = request.refresh()
            except Exception as exc:  # shown in the dialog, which stays usable
                unusable.set_text(str(exc))
                unusable.set_visible(True)
                return
            fill_models()
            show_unusable()

        def apply_saved(saved: dict, where: str) -> None:
            if request.mode_fixed:
                saved = {**saved, "mode": request.mode}  # this entry runs one mode: take what fits it
            got = recollect(saved, state["caps"])
            if got.settings is None:
                recall_note.set_text(" ".join(got.notes))
                return
            state["recalled"] = dict(got.settings.params)
            if mode_name() != got.settings.mode:
                modes.set_active_id(got.settings.mode)  # its model list, then the form with the recalled values
            else:
                rebuild()
            key = kit_modes.Choice(got.settings.engine, got.settings.model, "").key
            if models.get_active_id() != key and any(c.key == key for c in state["choices"]):
                state["recalled"] = dict(got.settings.params)
                models.set_active_id(key)  # rebuilds the form again, for that engine
            recall_note.set_text(f"Settings from {where}: {got.summary}." + "".join(f" {n}" for n in got.notes))

        def settings_from_image(*_: Any) -> None:
            chooser = Gtk.FileChooserDialog(title="Settings from image", parent=dialog, action=Gtk.FileChooserAction.OPEN)
            chooser.add_buttons("_Cancel", Gtk.ResponseType.CANCEL, "_Open", Gtk.ResponseType.OK)
            png = Gtk.FileFilter()
            png.set_name("PNG images")
            png.add_pattern("*.png")
            png.add_pattern("*.PNG")
            chooser.add_filter(png)
            try:
                path = chooser.get_filename() if chooser.run() == Gtk.ResponseType.OK else None
            finally:
                chooser.destroy()
            if not path:
                return
            try:
                with open(path, "rb") as f:
                    found = settings_in_image(f.read())
            except (OSError, ValueError) as exc:
                recall_note.set_text(str(exc))
                return
            if found is None:
                recall_note.set_text("This image carries no settings (neither Paintwire's nor the WebUI's nor SwarmUI's).")
                return
            apply_saved(found.settings, "the image")

        def poll_recalls() -> bool:
            for recall in request.recalls() if request.recalls else ():
                apply_saved(dict(recall.settings), f"history result {recall.id}")
            return True  # keep looking while the dialog is open

        modes.connect("changed", fill_models)
        models.connect("changed", rebuild)
        refresh.connect("clicked", refresh_models)
        from_image.connect("clicked", settings_from_image)
        fill_models()
        dialog.show_all()
        show_unusable()
        poller = GLib.timeout_add(RECALL_POLL_MS, poll_recalls) if request.recalls else None
        try:
            if dialog.run() != Gtk.ResponseType.OK:
                return None
            return args_from_params(request.args, state["mode"], state["form"].values(), chosen(), sources.get_active_id() or "visible")
        finally:
            if poller is not None:
                GLib.source_remove(poller)
            dialog.destroy()

    return show


def connection_dialog(procedure, config) -> bool:
    """GIMP's own dialog for the Connection procedure's arguments. True on OK."""
    GimpUi.init(PLUG_IN_BINARY)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Paintwire: Connection")
    dialog.fill(None)
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()
