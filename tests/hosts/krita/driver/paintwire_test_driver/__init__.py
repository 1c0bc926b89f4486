"""Drives the Paintwire docker inside a real Krita, for the host test.

Installed only into the throw-away profile of tests/hosts/test_krita_host.py,
next to the packaged plug-in. It reads a scenario (JSON, path in
PAINTWIRE_KRITA_SCENARIO), builds a document, then works the docker's own
widgets the way an artist would: types the server URL, presses Connect,
picks the mode and model, sets parameters, presses Generate, and waits for
the status line. It writes what it saw to report.json, takes screenshots,
exports the document as OpenRaster for the test to check from outside, and
quits Krita. Every step is driven by QTimer so Krita's event loop (and so
the docker's worker signals) keeps running.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import threading
import time
import traceback

from krita import InfoObject, Krita, Selection
from paintwire_krita.qt import Qt, QTimer, QApplication, QComboBox, QDockWidget, QLabel, QProgressBar, QPushButton, QScrollArea, QToolButton, QWidget

SCENARIO = os.environ.get("PAINTWIRE_KRITA_SCENARIO")
LINE_BGRA = [30, 30, 30, 255]  # dark strokes of a control layer on a big document
POLL_MS = 100


def _log(*args) -> None:
    print("[paintwire-test-driver]", *args, file=sys.stderr, flush=True)


class Driver:
    def __init__(self, scenario: dict) -> None:
        self.sc = scenario
        self.out = scenario["out_dir"]
        self.report: dict = {"steps": [], "ok": False}
        self.doc = None
        self.docker = None
        self.t0 = time.monotonic()

    # -- plumbing -----------------------------------------------------------------------

    def step(self, name: str, **info) -> None:
        info.update(name=name, t=round(time.monotonic() - self.t0, 2))
        self.report["steps"].append(info)
        _log(json.dumps(info))
        self.save_report()

    def save_report(self) -> None:
        with open(os.path.join(self.out, "report.json"), "w", encoding="utf-8") as f:
            json.dump(self.report, f, indent=1)

    def w(self, cls, name: str):
        widget = self.docker.findChild(cls, name)
        if widget is None:
            raise RuntimeError(f"the docker has no {cls.__name__} named {name!r}")
        return widget

    def status(self) -> str:
        return self.w(QLabel, "paintwire-status").text()

    def wait_status(self, prefixes: tuple, timeout: float, then) -> None:
        deadline = time.monotonic() + timeout

        def poll() -> None:
            try:
                text = self.status()
                if text.startswith(prefixes):
                    then(text)
                elif time.monotonic() > deadline:
                    self.fail(f"timed out waiting for status {prefixes}; status is {text!r}")
                else:
                    QTimer.singleShot(POLL_MS, poll)
            except Exception:
                self.crash()

        QTimer.singleShot(POLL_MS, poll)

    def guard(self, fn):
        def run(*args):
            try:
                fn(*args)
            except Exception:
                self.crash()

        return run

    def crash(self) -> None:
        self.fail(traceback.format_exc())

    def fail(self, why: str) -> None:
        self.report["error"] = why
        _log("FAILED:", why)
        self.finish()

    def finish(self) -> None:
        self.save_report()
        for doc in Krita.instance().documents():
            doc.setModified(False)
        # trigger() from a timer: calling it here would keep the GIL through the C++ quit path.
        QTimer.singleShot(0, Krita.instance().action("file_quit").trigger)

    # -- the scenario -------------------------------------------------------------------

    def start(self) -> None:
        app = Krita.instance()
        app.setBatchmode(True)
        self.docker = next((d for d in app.dockers() if d.objectName() == "paintwire_docker"), None)
        if self.docker is None:
            raise RuntimeError(f"no Paintwire docker; dockers: {[d.objectName() for d in app.dockers()]}")
        # Lay the window out before there is a document: Krita 5.1 can deadlock when a canvas
        # resize (and its zoom change) meets the progress report of a new image's first update.
        self.arrange_window()
        QTimer.singleShot(500, self.guard(self.start_document))

    def start_document(self) -> None:
        app = Krita.instance()
        sc = self.sc
        width, height = sc["width"], sc["height"]
        doc = app.createDocument(width, height, "paintwire-host-test", "RGBA", "U8", "", 300.0)
        app.activeWindow().addView(doc)
        doc.setBatchmode(True)
        root = doc.rootNode()
        with open(sc["input"], "rb") as f:
            pixels = f.read()
        original = doc.createNode("Original", "paintlayer")
        original.setPixelData(pixels, 0, 0, width, height)
        root.addChildNode(original, root.childNodes()[-1] if root.childNodes() else None)
        empty = doc.createNode("Empty mask", "paintlayer")
        root.addChildNode(empty, original)
        if sc.get("strokes"):
            # Colour strokes for an inpaint sketch, hidden until a job shows them.
            sx, sy, sw, sh = sc["strokes"]
            strokes = doc.createNode("Strokes", "paintlayer")
            strokes.setPixelData(bytes([40, 200, 250, 255]) * (sw * sh), sx, sy, sw, sh)
            strokes.setVisible(False)
            root.addChildNode(strokes, empty)
        for extra in sc.get("extra_layers") or ():
            # Layers for control layers: painted rectangles, hidden as an artist keeps them.
            node = doc.createNode(extra["name"], "paintlayer")
            for x, y, w, h in extra["rects"]:
                node.setPixelData(bytes(extra["bgra"]) * (w * h), x, y, w, h)
            node.setVisible(extra.get("visible", False))
            root.addChildNode(node, root.childNodes()[-1])
        doc.setActiveNode(original)
        self.make_selection(doc, "selection.l8")
        doc.waitForDone()
        self.doc = doc
        self.step("document", layers=self.layers())
        self.step("docker", title=self.docker.windowTitle(), status=self.status(), krita=app.version())

        # A server that is not there: the docker must say so, and stay usable.
        self.w(QWidget, "paintwire-url").setText(sc["dead_url"])
        self.w(QPushButton, "paintwire-connect").click()
        self.wait_status(("Not connected",), 20, self.guard(self.after_dead))

    def after_dead(self, text: str) -> None:
        self.step("dead-server", status=text, generate_enabled=self.w(QPushButton, "paintwire-generate").isEnabled())
        self.w(QWidget, "paintwire-url").setText(self.sc["server_url"])
        self.w(QPushButton, "paintwire-connect").click()
        self.wait_status(("Connected",), 20, self.guard(self.after_connect))

    def after_connect(self, text: str) -> None:
        modes = self.w(QComboBox, "paintwire-mode")
        self.step("connected", status=text, modes=[modes.itemData(i) for i in range(modes.count())])
        if self.sc.get("flow") == "inplace":
            from .inplace import InPlace

            self.inplace = InPlace(self)
            self.inplace.start()
            return
        if self.sc.get("flow") == "live":
            from .live import Live

            self.live = Live(self)
            self.live.start()
            return
        self.jobs = list(self.sc["jobs"])
        self.next_job()

    def next_job(self) -> None:
        if not self.jobs:
            QTimer.singleShot(300, self.guard(self.screenshot_and_export))
            return
        job = self.jobs.pop(0)
        if job.get("action") in ("recall", "image-settings"):
            from .recall import image_settings, recall

            (recall if job["action"] == "recall" else image_settings)(self, job)
            return
        if job.get("action") == "controls":
            self.add_controls(job)
            return
        if job.get("action") == "control_preview":
            self.control_preview(job)
            return
        if job.get("action") == "big_control":
            self.big_control(job)
            return
        if job.get("action"):
            self.history_action(job)
            return
        if job.get("show_layer"):
            node = self.doc.nodeByName(job["show_layer"])
            node.setVisible(True)
            self.doc.refreshProjection()
            self.doc.waitForDone()
        key = self.configure(job)
        before = self.layers()
        self.step("job-start", job=job["name"], model=key, form=self.form_values())
        self.w(QPushButton, "paintwire-generate").click()

        def done(status: str) -> None:
            history = self.w(QWidget, "paintwire-history")
            preview = self.w(QLabel, "paintwire-preview").pixmap()
            self.step(job["name"], status=status, layers=self.layers(), layers_unchanged=self.layers() == before,
                      history=history.count(), preview=preview is not None and not preview.isNull(),
                      cancel_enabled=self.w(QPushButton, "paintwire-cancel").isEnabled(),
                      screenshots=[self.grab_docker(f"docker-after-{job['name']}.png"), self.grab_window(f"window-after-{job['name']}.png")])
            self.next_job()

        finals = ("Done", "Failed", "Not connected", "Cancelled", "The result")
        if job.get("cancel"):
            # Press Cancel once the server reports the first step of the running job.
            progress = self.w(QProgressBar, "paintwire-progress")
            deadline = time.monotonic() + job.get("timeout", 60)

            def poll() -> None:
                try:
                    if progress.maximum() > 1 and progress.value() >= 1:
                        self.step(f"{job['name']}-cancel-pressed", status=self.status(), progress=[progress.value(), progress.maximum()])
                        self.w(QPushButton, "paintwire-cancel").click()
                        self.wait_status(finals, job.get("timeout", 60), self.guard(done))
                    elif self.status().startswith(finals) or time.monotonic() > deadline:
                        self.fail(f"the job ended before it could be cancelled: {self.status()!r}")
                    else:
                        QTimer.singleShot(20, poll)
                except Exception:
                    self.crash()

            QTimer.singleShot(20, poll)
            return
        self.wait_status(finals, job.get("timeout", 60), self.guard(done))

    def screenshot_and_export(self) -> None:
        QApplication.processEvents()
        shots = {"window": self.grab_window("krita-window.png")}
        path = os.path.join(self.out, "krita-docker.png")
        self.docker.grab().save(path)
        shots["docker"] = path
        shots["docker-full"] = self.grab_docker("krita-docker-full.png")
        ora = os.path.join(self.out, "result.ora")
        ok = self.doc.exportImage(ora, InfoObject())
        self.step("export", ok=bool(ok), path=ora, shots=shots)
        self.depths = list(self.sc.get("depth_checks", []))
        self.next_depth()

    def next_depth(self) -> None:
        """Documents of other colour depths: the same inpaint, or a clear refusal."""
        if not self.depths:
            self.report["ok"] = True
            self.finish()
            return
        depth = self.depths.pop(0)
        app = Krita.instance()
        sc = self.sc
        width, height = sc["width"], sc["height"]
        doc = app.createDocument(width, height, f"paintwire-{depth}", "RGBA", depth, "", 300.0)
        app.activeWindow().addView(doc)
        doc.setBatchmode(True)
        root = doc.rootNode()
        original = doc.createNode("Original", "paintlayer")
        if depth == "U16":
            with open(sc["input"], "rb") as f:
                eight = f.read()
            wide = bytearray(len(eight) * 2)
            wide[0::2], wide[1::2] = eight, eight  # v * 257, little-endian
            original.setPixelData(bytes(wide), 0, 0, width, height)
        root.addChildNode(original, root.childNodes()[-1] if root.childNodes() else None)
        doc.setActiveNode(original)
        self.make_selection(doc, f"selection-{depth}.l8")
        before = [(n.name(), n.type()) for n in root.childNodes()]
        self.configure(sc["depth_job"])
        self.w(QPushButton, "paintwire-generate").click()

        def done(status: str) -> None:
            nodes = root.childNodes()
            info = {"status": status, "layers_unchanged": [(n.name(), n.type()) for n in nodes] == before}
            new = [n for n in nodes if n.name().startswith("Inpaint")]
            if new:
                b = new[0].bounds()
                info["new_layer"] = {"name": new[0].name(), "bounds": [b.x(), b.y(), b.width(), b.height()]}
                path = os.path.join(self.out, f"{depth}-layer.raw")
                with open(path, "wb") as f:
                    f.write(bytes(new[0].pixelData(b.x(), b.y(), b.width(), b.height())))
            self.step(f"depth-{depth}", **info)
            self.next_depth()

        self.wait_status(("Done", "Failed", "Not connected", "This document", "The result"), 30, self.guard(done))

    def make_selection(self, doc, dump: str) -> None:
        """Select the scenario's rectangle, feathered as it says, the way the
        rectangle tool and Select > Feather Selection do; keep a copy of the
        selection's bytes for the test to build its expected request from."""
        x, y, w, h = self.sc["selection"]
        sel = Selection()
        sel.select(x, y, w, h, 255)
        if self.sc.get("feather"):
            sel.feather(self.sc["feather"])
        doc.setSelection(sel)
        doc.refreshProjection()
        doc.waitForDone()
        with open(os.path.join(self.out, dump), "wb") as f:
            f.write(bytes(doc.selection().pixelData(0, 0, doc.width(), doc.height())))

    def grab_window(self, name: str) -> str | None:
        """Krita's main window as the X server shows it, as a PNG."""
        screen = QApplication.primaryScreen()
        if screen is None:
            return None
        path = os.path.join(self.out, name)
        screen.grabWindow(Krita.instance().activeWindow().qwindow().winId()).save(path)
        return path

    def grab_docker(self, name: str) -> str | None:
        """The docker's whole content, past the scroll area's fold, as a PNG."""
        scroll = self.docker.findChild(QScrollArea)
        if scroll is None or scroll.widget() is None:
            return None
        path = os.path.join(self.out, name)
        scroll.widget().grab().save(path)
        return path

    def configure(self, job: dict) -> str:
        """Set mode, model, prompt, parameters and layer choices in the docker, as an artist would."""
        modes = self.w(QComboBox, "paintwire-mode")
        index = modes.findData(job["mode"])
        if index < 0:
            raise RuntimeError(f"mode {job['mode']} not offered: {[modes.itemData(i) for i in range(modes.count())]}")
        modes.setCurrentIndex(index)
        models = self.w(QComboBox, "paintwire-model")
        keys = [models.itemData(i) for i in range(models.count())]
        key = next((k for k in keys if k.startswith(job["model"])), None)
        if key is None:
            raise RuntimeError(f"no model {job['model']!r} for {job['mode']}: {keys}")
        models.setCurrentIndex(models.findData(key))
        if "prompt" in job:
            self.w(QWidget, "paintwire-prompt").setPlainText(job["prompt"])
        for name, value in job.get("params", {}).items():
            self.set_param(name, value)
        if job.get("resize_target"):
            combo = self.w(QComboBox, "paintwire-resize-target")
            combo.setCurrentIndex(combo.findData(job["resize_target"]))
        self.w(QToolButton, "paintwire-layers-refresh").click()
        for combo_name, value in (("paintwire-mask-layer", job.get("mask_layer")), ("paintwire-sketch-layer", job.get("sketch_layer"))):
            combo = self.w(QComboBox, combo_name)
            combo.setCurrentIndex(max(0, combo.findText(value)) if value else 0)
        return key

    def add_controls(self, job: dict) -> None:
        """Pick each layer in Krita, press "Add current layer", then set the row's kind,
        strength and steps in its widgets, as an artist does."""
        self.configure(job)
        before = self.layers()
        for index, want in enumerate(job["controls"]):
            self.doc.setActiveNode(self.doc.nodeByName(want["layer"]))
            QApplication.processEvents()
            self.w(QPushButton, "paintwire-control-add").click()
            QApplication.processEvents()
            kind = self.w(QComboBox, f"paintwire-control-kind-{index}")
            kinds = [kind.itemData(i) for i in range(kind.count())]
            if want["kind"] not in kinds:
                raise RuntimeError(f"the server offers no control kind {want['kind']!r}: {kinds}")
            kind.setCurrentIndex(kind.findData(want["kind"]))  # rebuilds the rows
            QApplication.processEvents()
            for what in ("strength", "start", "end"):
                if what in want:
                    self.w(QWidget, f"paintwire-control-{what}-{index}").setValue(want[what])
        QApplication.processEvents()
        kinds = self.w(QComboBox, "paintwire-control-kind-0")
        self.step(job["name"], status=self.status(), controls=[c.to_dict() for c in self.docker.state.controls],
                  kinds=[kinds.itemData(i) for i in range(kinds.count())], layers_unchanged=self.layers() == before,
                  annotations=list(self.doc.annotationTypes()))
        QTimer.singleShot(0, self.guard(self.next_job))

    def big_control(self, job: dict) -> None:
        """Krita's UI thread for a job on a big document, without and then with a control
        layer (read on the UI thread like the picture): the same inpaint twice."""
        app, side = Krita.instance(), job["side"]
        doc = app.createDocument(side, side, "paintwire-big-control", "RGBA", "U8", "", 300.0)
        app.activeWindow().addView(doc)
        doc.setBatchmode(True)
        root = doc.rootNode()
        original = doc.createNode("Original", "paintlayer")
        original.setPixelData(bytes((x * 7) % 256 for x in range(side * 4)) * side, 0, 0, side, side)
        root.addChildNode(original, None)
        lines = doc.createNode("Lines", "paintlayer")
        lines.setPixelData(bytes(LINE_BGRA) * (400 * 6), job["selection"][0], job["selection"][1] + 50, 400, 6)
        lines.setVisible(False)
        root.addChildNode(lines, original)
        doc.setActiveNode(original)
        sel = Selection()
        sel.select(*job["selection"], 255)
        doc.setSelection(sel)
        doc.refreshProjection()
        doc.waitForDone()
        first, self.doc = self.doc, doc
        times = {}

        def run(name: str, then) -> None:
            self.docker.ui_times.clear()
            self.configure(job)
            controls = len([c for c in self.docker.state.controls if c.enabled])
            self.w(QPushButton, "paintwire-generate").click()

            def done(status: str) -> None:
                times[name] = {"status": status, "controls": controls, **{k: round(v, 1) for k, v in self.docker.ui_times.items()}}
                then()

            self.wait_status(("Done", "Failed", "Not connected", "The result"), job.get("timeout", 150), self.guard(done))

        def with_control() -> None:
            doc.setActiveNode(lines)
            self.w(QPushButton, "paintwire-control-add").click()
            kind = self.w(QComboBox, "paintwire-control-kind-0")
            kind.setCurrentIndex(kind.findData(job["kind"]))
            QApplication.processEvents()
            run("control", finished)

        def finished() -> None:
            self.step(job["name"], size=[doc.width(), doc.height()], times=times, controls=len(self.docker.state.controls))
            self.doc = first  # the scenario's document is the one exported
            self.next_job()

        run("plain", with_control)

    def control_preview(self, job: dict) -> None:
        """Press a control's Preview and wait for the image the server preprocessed."""
        before = self.layers()
        self.w(QPushButton, f"paintwire-control-preview-{job.get('index', 0)}").click()
        caption = self.w(QLabel, "paintwire-control-preview-caption")
        deadline = time.monotonic() + job.get("timeout", 60)

        def poll() -> None:
            try:
                failed = self.status().startswith(("Failed", "Not connected"))
                if caption.text() or failed or time.monotonic() > deadline:
                    pixmap = self.w(QLabel, "paintwire-control-preview-image").pixmap()
                    shown = pixmap is not None and not pixmap.isNull()
                    self.step(job["name"], status=self.status(), caption=caption.text(), shown=shown,
                              size=[pixmap.width(), pixmap.height()] if shown else None, layers_unchanged=self.layers() == before,
                              documents=len(Krita.instance().documents()),
                              screenshots=[self.grab_docker(f"docker-after-{job['name']}.png")])
                    self.next_job()
                else:
                    QTimer.singleShot(POLL_MS, poll)
            except Exception:
                self.crash()

        QTimer.singleShot(POLL_MS, poll)

    def history_action(self, job: dict) -> None:
        """Select the newest history entry and press one of its buttons."""
        history = self.w(QWidget, "paintwire-history")
        history.setCurrentRow(0)
        button = {"apply": "paintwire-history-apply", "rerun": "paintwire-history-rerun"}[job["action"]]
        before = self.layers()
        self.w(QPushButton, button).click()
        QApplication.processEvents()
        self.step(job["name"], status=self.status(), layers=self.layers(), layers_unchanged=self.layers() == before,
                  mode=self.w(QComboBox, "paintwire-mode").currentData(), form=self.form_values())
        QTimer.singleShot(0, self.guard(self.next_job))

    # -- helpers ------------------------------------------------------------------------

    def arrange_window(self) -> None:
        """Maximise Krita and give the docker the right-hand column (with the
        layer list), so that the screenshots show it whole."""
        window = Krita.instance().activeWindow().qwindow()
        # No window manager under Xvfb, so "maximise" by hand.
        size = window.screen().availableGeometry() if window.screen() is not None else None
        window.setGeometry(0, 0, size.width() if size else 1600, size.height() if size else 1000)
        area = window.dockWidgetArea(self.docker)
        keep = {"paintwire_docker", "KisLayerBox"}
        for dock in window.findChildren(QDockWidget):
            if dock.objectName() not in keep and window.dockWidgetArea(dock) == area and dock.isVisible():
                dock.setVisible(False)
        self.docker.setVisible(True)
        self.docker.raise_()
        layers = next((d for d in window.findChildren(QDockWidget) if d.objectName() == "KisLayerBox"), None)
        if layers is not None and window.dockWidgetArea(layers) == area:
            window.resizeDocks([layers, self.docker], [220, 760], Qt.Orientation.Vertical)
        window.resizeDocks([self.docker], [420], Qt.Orientation.Horizontal)

    def set_param(self, name: str, value) -> None:
        editor = self.docker.findChild(QWidget, f"paintwire-param-{name}")
        if editor is None:
            raise RuntimeError(f"the form has no parameter {name!r}")
        if isinstance(editor, QComboBox):
            editor.setCurrentIndex(editor.findData(str(value)))
        elif hasattr(editor, "setChecked"):
            editor.setChecked(bool(value))
        elif hasattr(editor, "setValue"):
            editor.setValue(value)
        else:
            editor.setText(str(value))

    def form_values(self, labels: dict | None = None) -> dict:
        """The form's values; ``labels`` (when given) gets each combo box's item texts."""
        out = {}
        labels = {} if labels is None else labels
        for editor in self.docker.findChildren(QWidget):
            name = editor.objectName()
            if not name.startswith("paintwire-param-"):
                continue
            key = name[len("paintwire-param-"):]
            if isinstance(editor, QComboBox):
                out[key] = editor.currentData()
                labels[key] = [editor.itemText(i) for i in range(editor.count())]
            elif hasattr(editor, "isChecked"):
                out[key] = editor.isChecked()
            elif hasattr(editor, "value"):
                out[key] = editor.value()
        return out

    def layers(self) -> list:
        out = []

        def walk(node, depth):
            for child in node.childNodes():
                b = child.bounds()
                out.append({"name": child.name(), "type": child.type(), "depth": depth, "visible": child.visible(),
                            "bounds": [b.x(), b.y(), b.width(), b.height()]})
                walk(child, depth + 1)

        walk(self.doc.rootNode(), 0)
        return out


def _install() -> None:
    with open(SCENARIO, encoding="utf-8") as f:
        scenario = json.load(f)
    limit = float(scenario.get("timeout", 120))

    def excepthook(kind, value, tb) -> None:
        # An unhandled exception would open Krita's modal dialog and hang a headless run.
        traceback.print_exception(kind, value, tb)
        os._exit(4)

    sys.excepthook = excepthook

    def watchdog() -> None:
        time.sleep(limit)
        _log(f"watchdog: still running after {limit} s; exiting")
        os._exit(3)

    threading.Thread(target=watchdog, name="paintwire-test-watchdog", daemon=True).start()
    # A hang that holds the GIL stops the watchdog too; faulthandler's C thread still
    # prints where every Python thread stands, for the log.
    faulthandler.dump_traceback_later(max(5.0, limit - 20), exit=False)
    driver = Driver(scenario)
    notifier = Krita.instance().notifier()
    notifier.setActive(True)
    notifier.windowCreated.connect(lambda: QTimer.singleShot(1500, driver.guard(driver.start)))
    _install.driver = driver  # keep a reference for the life of Krita


if SCENARIO:
    _install()
