# Installed as usercustomize.py in the test profile's user site-packages, so every Python that
# GIMP starts there (the plug-in included) loads it. With PW_AUTORESPOND set, GimpUi dialogs
# answer themselves once shown: job dialogs switch any "telea" choice to "ns" (an artist's
# change, to see it remembered) and press OK; procedure dialogs press OK. Test-only.
import os

if os.environ.get("PW_AUTORESPOND"):
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        gi.require_version("GimpUi", "3.0")
        gi.require_version("Gdk", "3.0")
        from gi.repository import Gdk, GimpUi, Gtk
    except Exception:  # not a GIMP Python: nothing to patch
        pass
    else:
        def _settle():
            while Gtk.events_pending():
                Gtk.main_iteration()

        def _walk(widget):
            yield widget
            if isinstance(widget, Gtk.Container):
                for child in widget.get_children():
                    yield from _walk(child)

        def _log(text):
            with open(os.path.join(os.environ["PW_JOB_DIR"], "dialogs.log"), "a", encoding="utf-8") as fh:
                fh.write(text + "\n")

        def _screenshot(dialog):
            # For people: tests/hosts/artifacts/gimp/interactive/dialog-N.png shows the real dialog.
            window = dialog.get_window()
            if window is None:
                return
            pixbuf = Gdk.pixbuf_get_from_window(window, 0, 0, window.get_width(), window.get_height())
            if pixbuf is not None:
                index = len([n for n in os.listdir(os.environ["PW_JOB_DIR"]) if n.startswith("dialog-")])
                pixbuf.savev(os.path.join(os.environ["PW_JOB_DIR"], f"dialog-{index}.png"), "png", [], [])

        def _dialog_run(self):
            _settle()
            _screenshot(self)
            labels = [w.get_label() for w in _walk(self) if isinstance(w, Gtk.Label) and w.get_label()]
            for widget in _walk(self):
                if isinstance(widget, Gtk.ComboBoxText) and widget.get_active_id() == "telea":
                    widget.set_active_id("ns")
            _settle()
            _log(f"dialog {self.get_title()!r}: {', '.join(labels)}")
            return Gtk.ResponseType.OK

        def _procedure_dialog_run(self):
            self.show_all()  # the real run() shows it
            _settle()
            _screenshot(self)
            _log(f"procedure dialog {self.get_title()!r}")
            return True

        GimpUi.Dialog.run = _dialog_run
        GimpUi.ProcedureDialog.run = _procedure_dialog_run
