"""The in-place scenario of the Krita host test: what Krita artists expect of
the docker, worked through its widgets and its Generate action.

- human labels in the form and the Generate action with its shortcut;
- the live preview as a temporary layer on the canvas, gone after a finished
  job and after a cancelled one;
- Expand grows the canvas of the same document (then Edit > Undo, step by
  step, to see what one undo takes back);
- Upscale resizes the same document;
- the history saved with the document: saved as .kra, closed, reopened;
- the UI-thread time of a job on a 4096x4096 document with a selection and a
  sketch layer, as the docker records it.

Each step writes what it saw to report.json; the test checks it from outside.
"""

from __future__ import annotations

import os
import time

from krita import InfoObject, Krita, Selection
from paintwire_krita.qt import QTimer, QApplication, QComboBox, QPushButton, QWidget

PREVIEW_LAYER = "Paintwire preview"
SETTLE_SECONDS = 5.0
FINALS = ("Done", "Failed", "Not connected", "Cancelled", "The result")
BIG = 4096


class InPlace:
    """Runs on a Driver (its plumbing: step, w, wait_status, guard, fail, finish)."""

    def __init__(self, driver) -> None:
        self.d = driver
        self.sc = driver.sc
        self.app = Krita.instance()

    # -- helpers ------------------------------------------------------------------------

    def names(self, doc=None) -> list:
        return [n.name() for n in (doc or self.d.doc).rootNode().childNodes()]

    def bounds(self, name: str, doc=None):
        node = next((n for n in (doc or self.d.doc).rootNode().childNodes() if n.name() == name), None)
        if node is None:
            return None
        b = node.bounds()
        return [b.x(), b.y(), b.width(), b.height()]

    def size(self, doc=None) -> list:
        doc = doc or self.d.doc
        return [doc.width(), doc.height()]

    def run_job(self, job: dict, then, start=None, on_poll=None) -> None:
        """Configure ``job``, start it (the button, or ``start``), poll while it runs, call ``then(status)``."""
        self.d.configure(job)
        (start or self.w_generate().click)()
        deadline = time.monotonic() + job.get("timeout", 120)

        def poll() -> None:
            try:
                status = self.d.status()
                if on_poll is not None and on_poll(status):
                    return
                if status.startswith(FINALS) and not self.d.w(QPushButton, "paintwire-cancel").isEnabled():
                    QTimer.singleShot(200, self.d.guard(lambda: self.settled(then)))
                elif time.monotonic() > deadline:
                    self.d.fail(f"{job['name']}: timed out; status {status!r}")
                else:
                    QTimer.singleShot(20, poll)
            except Exception:
                self.d.crash()

        QTimer.singleShot(20, poll)

    def settled(self, then, deadline: float | None = None) -> None:
        """``then(status)`` once Krita has carried out the layer changes it queued (adding
        and removing layers runs as image jobs; a loaded machine may lag behind): the
        preview layer gets up to SETTLE_SECONDS to go, and the test sees whatever is left."""
        deadline = deadline if deadline is not None else time.monotonic() + SETTLE_SECONDS
        self.d.doc.waitForDone()
        if PREVIEW_LAYER in self.names() and time.monotonic() < deadline:
            QTimer.singleShot(100, self.d.guard(lambda: self.settled(then, deadline)))
            return
        then(self.d.status())

    def w_generate(self):
        return self.d.w(QPushButton, "paintwire-generate")

    def later(self, fn, ms: int = 400) -> None:
        QTimer.singleShot(ms, self.d.guard(fn))

    # -- the flow -----------------------------------------------------------------------

    def start(self) -> None:
        modes = self.d.w(QComboBox, "paintwire-mode")
        labels: dict = {}
        self.d.configure({"mode": "inpaint", "model": "diffusers/"})
        self.d.form_values(labels)
        action = self.app.action("paintwire_generate")
        self.d.step("labels", modes=[modes.itemText(i) for i in range(modes.count())], choices=labels,
                    action=action is not None, shortcut=action.shortcut().toString() if action is not None else None,
                    docker_object=hasattr(self.d.docker, "ui_times"))
        self.preview_seen: list = []

        def watch(status: str) -> bool:
            b = self.bounds(PREVIEW_LAYER)
            if b is not None and not self.preview_seen:
                self.preview_seen.append(b)
            return False

        def done(status: str) -> None:
            self.d.step("preview-done", status=status, seen=self.preview_seen, layers=self.names(), started_by_action=True)
            self.cancel_job()

        job = dict(self.sc["preview_job"], name="preview-done")
        self.run_job(job, done, start=action.trigger if action is not None else None, on_poll=watch)

    def cancel_job(self) -> None:
        seen: list = []

        def watch(status: str) -> bool:
            b = self.bounds(PREVIEW_LAYER)
            if b is not None and not seen:
                seen.append(b)
                self.d.w(QPushButton, "paintwire-cancel").click()
            return False

        def done(status: str) -> None:
            self.d.step("preview-cancel", status=status, seen=seen, layers=self.names())
            self.expand()

        self.run_job(dict(self.sc["cancel_job"], name="preview-cancel"), done, on_poll=watch)

    def expand(self) -> None:
        before = {"size": self.size(), "layers": self.names(), "original": self.bounds("Original")}
        # The visible image the expand starts from (the earlier result is part of it), for the test.
        self.d.doc.exportImage(os.path.join(self.d.out, "before-expand.ora"), InfoObject())

        def done(status: str) -> None:
            doc = self.d.doc
            ora = os.path.join(self.d.out, "expand.ora")
            doc.exportImage(ora, InfoObject())
            self.d.step("expand", status=status, before=before, size=self.size(), layers=self.names(),
                        original=self.bounds("Original"), documents=len(self.app.documents()))
            self.undo_steps = []
            self.later(self.undo)

        self.run_job(dict(self.sc["expand_job"], name="expand"), done)

    def undo(self) -> None:
        """Edit > Undo three times, recording what each step takes back."""
        if len(self.undo_steps) == 3:
            self.d.step("expand-undo", steps=self.undo_steps)
            self.redo_steps = 0
            self.later(self.redo)
            return
        self.app.action("edit_undo").trigger()

        def record() -> None:
            self.undo_steps.append({"size": self.size(), "layers": self.names()})
            self.undo()

        self.later(record, 600)

    def redo(self) -> None:
        if self.redo_steps == 3:
            self.d.step("expand-redo", size=self.size(), layers=self.names())
            self.upscale()
            return
        self.redo_steps += 1
        self.app.action("edit_redo").trigger()
        self.later(self.redo, 600)

    def upscale(self) -> None:
        before = {"size": self.size(), "layers": self.names()}

        def done(status: str) -> None:
            self.d.doc.exportImage(os.path.join(self.d.out, "upscale.ora"), InfoObject())
            self.d.step("upscale-resize", status=status, before=before, size=self.size(), layers=self.names(),
                        original=self.bounds("Original"), documents=len(self.app.documents()))
            self.save_and_reopen()

        self.run_job(dict(self.sc["upscale_job"], name="upscale-resize", resize_target="resize"), done)

    def save_and_reopen(self) -> None:
        history = self.d.w(QWidget, "paintwire-history")
        saved = {"count": history.count(), "texts": [history.item(i).text() for i in range(history.count())]}
        path = os.path.join(self.d.out, "inplace.kra")
        self.d.doc.setBatchmode(True)
        ok = self.d.doc.saveAs(path)
        self.d.doc.setModified(False)
        self.d.doc.close()
        self.d.doc = None
        QApplication.processEvents()

        def reopen() -> None:
            empty = history.count()
            doc = self.app.openDocument(path)
            self.app.activeWindow().addView(doc)
            self.d.doc = doc

            def look() -> None:
                icons = [not history.item(i).icon().isNull() for i in range(history.count())]
                self.d.step("history-reopened", saved_ok=bool(ok), before=saved, closed_count=empty, count=history.count(),
                            texts=[history.item(i).text() for i in range(history.count())], icons=icons,
                            annotations=list(doc.annotationTypes()))
                self.later(self.big_document)

            self.later(look, 1000)

        self.later(reopen, 800)

    def big_document(self) -> None:
        """A 4096x4096 document: a picture, a selection and a sketch layer; one inpaint."""
        doc = self.app.createDocument(BIG, BIG, "paintwire-big", "RGBA", "U8", "", 300.0)
        self.app.activeWindow().addView(doc)
        doc.setBatchmode(True)
        root = doc.rootNode()
        layer = doc.createNode("Original", "paintlayer")
        row = bytes((x * 7) % 256 for x in range(BIG * 4))
        layer.setPixelData(row * BIG, 0, 0, BIG, BIG)
        root.addChildNode(layer, root.childNodes()[-1] if root.childNodes() else None)
        strokes = doc.createNode("Strokes", "paintlayer")
        strokes.setPixelData(bytes([40, 200, 250, 255]) * (64 * 48), 1350, 1250, 64, 48)
        root.addChildNode(strokes, layer)
        doc.setActiveNode(layer)
        sel = Selection()
        sel.select(1000, 1200, 300, 200, 255)
        doc.setSelection(sel)
        doc.refreshProjection()
        doc.waitForDone()
        self.d.doc = doc
        self.later(self.big_job, 1000)

    def big_job(self) -> None:
        self.d.docker.ui_times.clear()
        started = time.perf_counter()
        self.d.configure(dict(self.sc["big_job"], sketch_layer="Strokes"))
        self.d.w(QPushButton, "paintwire-generate").click()
        click_ms = (time.perf_counter() - started) * 1000

        def done(status: str) -> None:
            doc = self.d.doc
            doc.waitForDone()
            # The result shows on the canvas without a full refresh: the projection has its pixels.
            result = next((n for n in doc.rootNode().childNodes() if n.name().startswith(self.sc["big_job"]["prompt"])), None)
            shown = None
            if result is not None:
                b = result.bounds()
                cx, cy = b.x() + b.width() // 2, b.y() + b.height() // 2
                shown = bytes(doc.pixelData(cx, cy, 1, 1)) == bytes(result.pixelData(cx, cy, 1, 1))
            self.d.step("ui-thread", status=status, size=self.size(), click_ms=round(click_ms, 1), result_shown=shown,
                        times={k: round(v, 1) for k, v in self.d.docker.ui_times.items()}, layers=self.names())
            self.d.grab_window("krita-window.png")
            self.d.docker.grab().save(os.path.join(self.d.out, "krita-docker.png"))
            self.d.report["ok"] = True
            self.d.finish()

        self.d.wait_status(FINALS, self.sc["big_job"].get("timeout", 120), self.d.guard(done))
