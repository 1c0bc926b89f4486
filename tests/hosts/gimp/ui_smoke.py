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
            args = actions.Args(params_json=json.dumps(spec.get("stored", {}).get(mode.name, {})))
            request = jobs.DialogRequest(mode.name, offered, False, caps, choices[0], args)
            result = dialogs.job_dialog(None, True)(request)
            report["dialogs"][f"{index}/{mode.name}"] = result.to_values() if result else None

        # A recall from the server's history reaches the open "Paintwire..." dialog: its
        # settings (another mode among them) fill the form before OK is pressed.
        if spec.get("recall") and index == spec["recall"]["capabilities"]:
            import time

            from paintwire.protocol import Recall

            sent = [Recall(7, spec["recall"]["settings"], "/api/history/7/image")]

            def answer_later(dialog):
                deadline = time.monotonic() + 2.0  # the dialog looks for recalls twice a second
                while time.monotonic() < deadline:
                    settle()
                    time.sleep(0.02)
                return Gtk.ResponseType.OK

            GimpUi.Dialog.run = answer_later
            first = offered[0]
            request = jobs.DialogRequest(first.name, offered, False, caps, kit_modes.model_choices(caps, first.name)[0], actions.Args(),
                                         recalls=lambda: [sent.pop()] if sent else [])
            result = dialogs.job_dialog(None, True)(request)
            report["recall"] = result.to_values() if result else None

            # "Settings from image...": the button, with GTK's file chooser answering the saved PNG.
            import base64

            with open(os.path.join(JOB, "saved.png"), "wb") as fh:
                fh.write(base64.b64decode(spec["recall"]["png"]))
            class Chooser:
                def __init__(self, **kwargs):
                    pass

                add_buttons = add_filter = destroy = lambda self, *a: None

                def run(self):
                    return Gtk.ResponseType.OK

                def get_filename(self):
                    return os.path.join(JOB, "saved.png")

            dialogs.Gtk.FileChooserDialog = Chooser

            def press_from_image(dialog):
                def buttons(widget):
                    if isinstance(widget, Gtk.Button) and (widget.get_label() or "").startswith("Settings from image"):
                        yield widget
                    if isinstance(widget, Gtk.Container):
                        for child in widget.get_children():
                            yield from buttons(child)

                settle()
                next(buttons(dialog)).clicked()
                settle()
                return Gtk.ResponseType.OK

            GimpUi.Dialog.run = press_from_image
            request = jobs.DialogRequest(first.name, offered, False, caps, kit_modes.model_choices(caps, first.name)[0], actions.Args())
            result = dialogs.job_dialog(None, True)(request)
            report["from_image"] = result.to_values() if result else None
except Exception:
    report["error"] = traceback.format_exc()
with open(os.path.join(JOB, "report.json"), "w", encoding="utf-8") as fh:
    json.dump(report, fh, indent=2)
