"""The live painting scenario of the Krita host test, worked through the docker's
Live toggle and Apply button on a 2048x2048 document:

- Live on with a selection: the first frame shows in the "Paintwire live" layer
  over the selection;
- strokes painted on the active layer through Krita's API: new frames follow,
  made from states sent after the strokes;
- the strength changed while Live runs: a new frame without painting;
- Apply: the frame shown becomes a new layer, below the live layer;
- Live off: the live layer is gone, the artist's layers are as they were plus
  the applied one;
- the UI thread's time per tick, as the docker records it, and the time of the
  band reads a whole-canvas stream makes, both on the 2048x2048 document.

Each step writes what it saw to report.json; the test checks it from outside.
"""

from __future__ import annotations

import os
import statistics
import time
import zlib

from krita import InfoObject, Krita, Selection
from paintwire_krita.qt import QTimer, QApplication, QPushButton

LIVE_LAYER = "Paintwire live"
SIDE = 2048


class Live:
    """Runs on a Driver (its plumbing: step, w, configure, set_param, guard, fail, finish)."""

    def __init__(self, driver) -> None:
        self.d = driver
        self.sc = driver.sc
        self.app = Krita.instance()
        self.live = driver.docker.live  # the docker's LiveController: frames, ticks

    # -- helpers ------------------------------------------------------------------------

    def names(self) -> list:
        return [n.name() for n in self.doc.rootNode().childNodes()]

    def node(self, name: str):
        return next((n for n in self.doc.rootNode().childNodes() if n.name() == name), None)

    def checksum(self, name: str):
        node = self.node(name)
        if node is None:
            return None
        x, y, w, h = self.region
        return zlib.crc32(bytes(node.pixelData(x, y, w, h)))

    def wait(self, what: str, ready, then, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout

        def poll() -> None:
            try:
                if ready():
                    then()
                elif time.monotonic() > deadline:
                    self.d.fail(f"live: timed out waiting for {what}; status {self.d.status()!r}, layers {self.names()}")
                else:
                    QTimer.singleShot(50, poll)
            except Exception:
                self.d.crash()

        QTimer.singleShot(50, poll)

    def toggle(self):
        return self.d.w(QPushButton, "paintwire-live")

    # -- the flow -----------------------------------------------------------------------

    def start(self) -> None:
        doc = self.app.createDocument(SIDE, SIDE, "paintwire-live", "RGBA", "U8", "", 300.0)
        self.app.activeWindow().addView(doc)
        doc.setBatchmode(True)
        root = doc.rootNode()
        paint = doc.createNode("Paint", "paintlayer")
        paint.setPixelData(bytes([235, 230, 220, 255]) * (SIDE * SIDE), 0, 0, SIDE, SIDE)  # a warm white sheet
        root.addChildNode(paint, root.childNodes()[-1] if root.childNodes() else None)
        doc.setActiveNode(paint)
        self.region = list(self.sc["live_selection"])
        selection = Selection()
        selection.select(*self.region, 255)
        doc.setSelection(selection)
        doc.waitForDone()
        doc.setActiveNode(paint)  # Krita 5.2 makes the new selection mask active; the artist paints on "Paint"
        self.doc, self.paint = doc, paint
        self.before = self.names()
        self.d.configure(self.sc["live_job"])
        self.toggle().click()
        self.d.step("live-on", status=self.d.status(), checked=self.toggle().isChecked(),
                    generate_enabled=self.d.w(QPushButton, "paintwire-generate").isEnabled())
        self.wait("the first frame", lambda: self.live.frames >= 1 and self.node(LIVE_LAYER) is not None, self.first_frame)

    def first_frame(self) -> None:
        node = self.node(LIVE_LAYER)
        b = node.bounds()
        self.first = {"seq": self.live.frame.seq, "checksum": self.checksum(LIVE_LAYER), "frames": self.live.frames}
        self.d.step("live-first-frame", status=self.d.status(), bounds=[b.x(), b.y(), b.width(), b.height()], layers=self.names(),
                    seq=self.first["seq"], seed=self.live.frame.seed)
        self.strokes = 0
        self.sent_before_strokes = self.live.session.seq
        self.paint_stroke()

    def paint_stroke(self) -> None:
        """Dabs along a diagonal of the selection, one every 100 ms, on the active layer."""
        x, y, w, h = self.region
        i = self.strokes
        dab = 12
        cx, cy = x + 8 + i * (w - 32) // 10, y + 8 + i * (h - 32) // 10
        self.paint.setPixelData(bytes([30, 40, 220, 255]) * (dab * dab), cx, cy, dab, dab)  # B, G, R, A: red
        self.strokes += 1
        if self.strokes < 10:
            QTimer.singleShot(100, self.d.guard(self.paint_stroke))
            return
        self.last_stroke_seq = self.live.session.seq
        self.wait("a frame made after the strokes", lambda: self.live.frame is not None and self.live.frame.seq > self.sent_before_strokes
                  and self.live.session.seq == self.live.frame.seq, self.followed)

    def followed(self) -> None:
        self.d.step("live-followed", status=self.d.status(), first=self.first, seq=self.live.frame.seq, frames=self.live.frames,
                    checksum=self.checksum(LIVE_LAYER), states=self.live.session.seq, dropped=self.live.frame.dropped,
                    window=self.d.grab_window("live-window.png"))
        frames, seq = self.live.frames, self.live.session.seq
        self.d.set_param("strength", self.sc["live_strength"])  # while it runs
        self.wait("a frame with the new strength", lambda: self.live.frame.seq > seq and self.live.frames > frames, self.strength_changed)

    def strength_changed(self) -> None:
        QApplication.processEvents()
        self.d.grab_window("krita-window.png")  # Live on: the frame over the selection
        self.d.docker.grab().save(os.path.join(self.d.out, "krita-docker.png"))
        self.d.step("live-strength", status=self.d.status(), frames=self.live.frames, seq=self.live.frame.seq)
        before = self.names()
        self.d.w(QPushButton, "paintwire-live-apply").click()
        QApplication.processEvents()
        applied = [n for n in self.names() if n not in before]
        bounds = None
        if applied:
            b = self.node(applied[0]).bounds()
            bounds = [b.x(), b.y(), b.width(), b.height()]
        self.d.step("live-apply", status=self.d.status(), applied=applied, bounds=bounds, layers=self.names(),
                    checksum=self.checksum(applied[0]) if applied else None, frame_checksum=self.checksum(LIVE_LAYER))
        self.whole_canvas_reads()

    def whole_canvas_reads(self) -> None:
        """What a whole-canvas stream reads per tick on this document: each band as
        hostkit.live.RegionReader cuts it, read with document.read_band (timed here;
        the docker's own ticks are timed by the docker)."""
        from paintwire_krita import document  # the installed plug-in, with its vendored paintwire on sys.path

        from paintwire.hostkit.live import RegionReader
        from paintwire.protocol import Rect

        reader = RegionReader(Rect(0, 0, SIDE, SIDE))
        times = []
        while not reader.done:
            band = reader.next_band()
            start = time.perf_counter()
            data = document.read_band(self.paint, *band)
            reader.add(data)
            times.append((time.perf_counter() - start) * 1000)
        ticks = list(self.live.tick_ms)
        slowest = sorted(range(len(ticks)), key=lambda i: -ticks[i])[:5]
        self.d.step("live-ui-thread", ticks=len(ticks), tick_max=round(max(ticks), 2), tick_median=round(statistics.median(ticks), 2),
                    tick_p95=round(sorted(ticks)[int(0.95 * (len(ticks) - 1))], 2), slowest=[(i, round(ticks[i], 2)) for i in slowest],
                    frame_ms=round(max(self.live.frame_ms), 2) if self.live.frame_ms else None, whole_canvas_bands=len(times),
                    whole_canvas_band_max=round(max(times), 2), whole_canvas_band_median=round(statistics.median(times), 2))
        self.toggle().click()  # Live off
        QTimer.singleShot(300, self.d.guard(self.off))

    def off(self) -> None:
        self.d.step("live-off", status=self.d.status(), layers=self.names(), before=self.before, checked=self.toggle().isChecked(),
                    generate_enabled=self.d.w(QPushButton, "paintwire-generate").isEnabled())
        ora = os.path.join(self.d.out, "live.ora")
        self.doc.setSelection(Selection())
        ok = self.doc.exportImage(ora, InfoObject())
        self.d.step("live-export", ok=bool(ok), path=ora)
        self.d.report["ok"] = True
        self.d.finish()
