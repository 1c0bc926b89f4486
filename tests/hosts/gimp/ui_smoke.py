# Runs with the chroot's Python and GIMP's GObject libraries under Xvfb (no GIMP process):
# builds every dialog the plug-in would show for the capabilities in $PW_JOB_DIR/spec.json
# and reads the values back, so the GTK code runs for real. Writes $PW_JOB_DIR/report.json.
import json
import os
import sys
import traceback

JOB = os.environ["PW_JOB_DIR"]
PLUGIN = os.environ["PW_PLUGIN_DIR"]
sys.path[:0] = [os.path.join(PLUGIN, "vendor")]
import paintwire.protocol  # noqa: E402,F401  (before the plug-in folder: its paintwire.py would shadow the package)

sys.path.append(PLUGIN)
report = {"forms": {}, "dialogs": {}, "error": None}
try:
    import gi

    gi.require_version("Gtk", "3.0")
    gi.require_version("Gdk", "3.0")
    from gi.repository import Gdk, GimpUi, Gtk

    from paintwire.hostkit import form as kit_form
    from paintwire.hostkit import modes as kit_modes
    from paintwire.protocol import Capabilities

    import actions
    import dialogs
    import jobs

    spec = json.load(open(os.path.join(JOB, "spec.json"), encoding="utf-8"))

    def settle():
        while Gtk.events_pending():
            Gtk.main_iteration()

    for index, caps_wire in enumerate(spec["capabilities"]):
        caps = Capabilities.from_wire(caps_wire)
        for engine in caps.engines:
            for mode in engine.modes:
                window = Gtk.Window()
                param_form = dialogs.ParamForm(mode, {})
                window.add(param_form.widget)
                window.show_all()
                settle()
                want = {f.name: f.value for f in kit_form.fields(mode, {})}
                report["forms"][f"{engine.name}/{mode.name}"] = {"got": param_form.values(), "want": want}
                window.destroy()

        # The whole job dialog, as an interactive run builds it; OK is "pressed" once it is shown.
        GimpUi.init = lambda name: True  # no GIMP process to talk to here
        def answer(dialog):
            settle()
            window = dialog.get_window()  # a picture of each dialog, for people
            pixbuf = Gdk.pixbuf_get_from_window(window, 0, 0, window.get_width(), window.get_height())
            name = dialog.get_title().split(": ")[-1].split(" ")[0].lower()
            pixbuf.savev(os.path.join(JOB, f"dialog-{index}-{name}.png"), "png", [], [])
            return Gtk.ResponseType.OK

        GimpUi.Dialog.run = answer
        # One dialog per mode the server offers, as "Paintwire..." shows it with that mode chosen.
        offered = kit_modes.offered_modes(caps, jobs.SUPPORTED_INPUTS)
        for mode in offered:
            choices = kit_modes.model_choices(caps, mode.name)
            args = actions.Args(params_json=json.dumps(spec.get("stored", {}).get(mode.name, {})),
                                controls_json=json.dumps(spec.get("stored_controls", {}).get(mode.name, [])))
            request = jobs.DialogRequest(mode.name, offered, False, caps, choices[0], args, layers=tuple(spec.get("layers", ())))
            result = dialogs.job_dialog(None, True)(request)
            report["dialogs"][f"{index}/{mode.name}"] = result.to_values() if result else None
except Exception:
    report["error"] = traceback.format_exc()
with open(os.path.join(JOB, "report.json"), "w", encoding="utf-8") as fh:
    json.dump(report, fh, indent=2)
