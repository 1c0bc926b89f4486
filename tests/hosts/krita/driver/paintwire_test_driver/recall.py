"""The recall steps of the Krita scenario: the test plays the server's page (it sends
a history result to this Krita over the HTTP API), the driver answers the docker's
offer the way an artist does, and reports what the docker did."""

from __future__ import annotations

import json
import time
import urllib.request
from urllib.parse import urlsplit

from paintwire_krita.qt import QTimer, QApplication, QComboBox, QMessageBox, QPushButton

BUTTONS = {"recall-apply": "paintwire-recall-apply", "recall-layer": "paintwire-recall-layer"}
FINALS = {"recall-apply": ("Settings from", "Connect"), "recall-layer": ("Opened the recalled", "Could not", "The recalled", "The server")}


def _http(server_url: str, path: str, body: dict | None = None):
    parts = urlsplit(server_url)
    request = urllib.request.Request(f"http://{parts.netloc}{path}", data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"}, method="POST" if body is not None else "GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def recall(driver, job: dict) -> None:
    """Send the newest history result to this Krita, then press the offer's button."""
    url = driver.sc["server_url"]
    if job.get("first"):
        driver.configure(job["first"])  # the panel shows something else before the recall arrives
    clients = [c for c in _http(url, "/api/clients") if c["name"].startswith("paintwire-krita")]
    if len(clients) != 1:
        raise RuntimeError(f"expected this Krita among the clients that take recalls: {clients}")
    deadline = time.monotonic() + 20
    items: list = []
    while not items and time.monotonic() < deadline:  # the history records off the event loop
        items = _http(url, "/api/history?limit=1")["items"]
        if not items:
            time.sleep(0.1)
    if not items:
        raise RuntimeError("the server's history is empty")
    record = items[0]
    before = driver.layers()
    _http(url, f"/api/history/{record['id']}/send", {"client": clients[0]["id"]})

    def find_offer() -> None:
        try:
            box = next((b for b in driver.docker.findChildren(QMessageBox, "paintwire-recall-offer") if b.isVisible()), None)
            if box is None:
                if time.monotonic() > deadline + 20:
                    driver.fail("no recall offer appeared")
                else:
                    QTimer.singleShot(100, find_offer)
                return
            offer = {"text": box.text(), "modal": box.isModal()}
            driver.step(f"{job['name']}-offer", **offer, screenshot=driver.grab_window(f"window-{job['name']}-offer.png"))
            box.findChild(QPushButton, BUTTONS[job["name"]]).click()
            QApplication.processEvents()

            def done(status: str) -> None:
                driver.step(job["name"], status=status, record=record, offer=offer, layers=driver.layers(),
                            layers_unchanged=driver.layers() == before, mode=driver.w(QComboBox, "paintwire-mode").currentData(),
                            form=driver.form_values())
                driver.next_job()

            driver.wait_status(FINALS[job["name"]], 30, driver.guard(done))
        except Exception:
            driver.crash()

    QTimer.singleShot(100, find_offer)


def image_settings(driver, job: dict) -> None:
    """"Use settings from image...": the file dialog answers with the scenario's PNG (a
    headless run cannot click through Qt's file dialog); the rest is the docker's own."""
    import sys

    docker_module = sys.modules["paintwire_krita.docker"]
    path = driver.sc["files"][job["file"]]

    class Answer:
        @staticmethod
        def getOpenFileName(*args, **kwargs):  # noqa: N802 (Qt's name)
            return path, ""

    real = docker_module.QFileDialog
    docker_module.QFileDialog = Answer
    try:
        if job.get("first"):
            driver.configure(job["first"])
        before = driver.layers()
        driver.w(QPushButton, "paintwire-image-settings").click()
        QApplication.processEvents()
    finally:
        docker_module.QFileDialog = real
    driver.step(job["name"], status=driver.status(), layers_unchanged=driver.layers() == before,
                mode=driver.w(QComboBox, "paintwire-mode").currentData(), form=driver.form_values())
    QTimer.singleShot(0, driver.guard(driver.next_job))
