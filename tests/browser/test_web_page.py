"""The server's web page in a real headless chromium, against a real server with
tiny models: the canvas client, the queue and its cancel rule, the models view,
and the origin rule. One browser and one server for the module; each test opens
its own page. The page's Content-Security-Policy stays on: waits use function
expressions, never strings the page would have to eval."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "integration"))

from server_process import ServerProcess, start_server_process  # noqa: E402
from helpers import scene  # noqa: E402

pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow

TINY = "tiny-sd15"
WAIT_MS = 60_000  # a loaded two-core machine is slow; nothing here asserts a time


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[ServerProcess]:
    from fixtures.tiny_models import build_tiny_sd15

    root = tmp_path_factory.mktemp("web")
    models = root / "models"
    build_tiny_sd15(models / TINY)
    server = start_server_process(engines=["classical", "diffusers"], model_dirs=[str(models)], previews_per_second=20.0)
    yield server
    server.stop()


@pytest.fixture
def page(browser: Any, web_server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(WAIT_MS)
    page.goto(web_server.http + "/")
    page.wait_for_selector("#connection.ok")
    yield page
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture(scope="module")
def picture_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pictures") / "scene.png"
    Image.fromarray(scene(200, 150)).save(path)
    return path


def view(page: Any, name: str) -> None:
    page.click(f"nav button[data-view={name}]")
    page.wait_for_selector(f"#view-{name}:not([hidden])")


def paint(page: Any, x0: float, y0: float, x1: float, y1: float) -> None:
    """A brush stroke over the picture, in fractions of its displayed size."""
    box = page.locator("#canvas-mask").bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y0)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * y1, steps=6)
    page.mouse.up()


def run_job(page: Any) -> None:
    page.evaluate("() => { delete document.body.dataset.lastJob; }")
    page.click("#canvas-run")


def last_job(page: Any) -> str:
    page.wait_for_selector("body[data-last-job]")
    return page.get_attribute("body", "data-last-job") or ""


def canvas_pixels(page: Any) -> np.ndarray:
    data = page.evaluate(
        "() => { const c = document.getElementById('canvas-picture');"
        " return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"
    )
    width, height, flat = data
    return np.array(flat, np.uint8).reshape(height, width, 4)


# -- the canvas client --------------------------------------------------------------------


def test_canvas_inpaints_a_painted_mask_and_upscales(page: Any, picture_file: Path) -> None:
    view(page, "canvas")
    page.select_option("#canvas-mode", "inpaint")
    page.select_option("#canvas-model", label="OpenCV (built in)")
    page.set_input_files("#canvas-upload", str(picture_file))
    page.wait_for_function("() => document.getElementById('canvas-picture').width === 200")
    before = canvas_pixels(page)
    page.fill("input[name=mask_blur]", "0")
    paint(page, 0.55, 0.2, 0.8, 0.3)  # a stroke right of the red diagonal, in the gradient
    run_job(page)
    assert last_job(page) == "result", page.text_content("#canvas-status")
    after = canvas_pixels(page)
    changed = np.any(after != before, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any(), "the inpaint changed nothing"
    # Only pixels under the stroke change: the stroke spans x 110..160, y 30..45 (plus the brush).
    assert xs.min() >= 110 - 16 and xs.max() <= 160 + 16 and ys.max() <= 45 + 16
    assert page.is_visible("#canvas-download")

    page.select_option("#canvas-mode", "upscale")
    page.select_option("#canvas-model", label="OpenCV (built in)")
    run_job(page)
    assert last_job(page) == "result", page.text_content("#canvas-status")
    assert canvas_pixels(page).shape[:2] == (300, 400)  # the default scale 2 of the inpainted picture


def test_canvas_form_comes_from_the_capabilities(page: Any) -> None:
    view(page, "canvas")
    page.select_option("#canvas-mode", "txt2img")
    page.select_option("#canvas-model", label=TINY)
    # The diffusers txt2img spec's parameters, with their labels and ranges.
    assert page.is_visible("textarea[name=prompt]")
    assert page.get_attribute("input[name=steps]", "max") is not None
    assert not page.is_visible("#canvas-upload-label")  # txt2img reads no picture
    page.fill("textarea[name=prompt]", "a lighthouse")
    page.fill("input[name=width]", "64")
    page.fill("input[name=height]", "48")
    page.fill("input[name=steps]", "3")
    run_job(page)
    assert last_job(page) == "result", page.text_content("#canvas-status")
    assert canvas_pixels(page).shape[:2] == (48, 64)
    preview = page.evaluate("() => document.getElementById('canvas-preview').width")
    assert preview == 64  # a preview came and was drawn


def test_a_bad_parameter_is_refused_with_the_servers_sentence(page: Any) -> None:
    view(page, "canvas")
    page.select_option("#canvas-mode", "txt2img")
    page.select_option("#canvas-model", label=TINY)
    page.evaluate("() => { document.querySelector('input[name=steps]').value = '100000'; }")
    run_job(page)
    assert last_job(page) == "error"
    assert "invalid_param" in page.text_content("#canvas-status")


def test_inpaint_without_a_mask_says_what_to_do(page: Any, picture_file: Path) -> None:
    view(page, "canvas")
    page.select_option("#canvas-mode", "inpaint")
    page.select_option("#canvas-model", label="OpenCV (built in)")
    page.click("#canvas-run")
    assert "Choose a picture" in page.text_content("#canvas-status")
    page.set_input_files("#canvas-upload", str(picture_file))
    page.wait_for_function("() => document.getElementById('canvas-picture').width === 200")
    page.click("#canvas-run")
    assert "Paint the mask" in page.text_content("#canvas-status")


# -- queue and cancel -------------------------------------------------------------------


def long_txt2img_from_page(page: Any) -> None:
    view(page, "canvas")
    page.select_option("#canvas-mode", "txt2img")
    page.select_option("#canvas-model", label=TINY)
    page.fill("input[name=width]", "512")
    page.fill("input[name=height]", "512")
    page.fill("input[name=steps]", page.get_attribute("input[name=steps]", "max"))
    run_job(page)


def test_cancel_from_the_canvas_stops_the_running_job(page: Any) -> None:
    long_txt2img_from_page(page)
    page.wait_for_function("() => document.getElementById('canvas-progress').value > 0")
    page.click("#canvas-cancel")
    assert last_job(page) == "cancelled"
    assert page.text_content("#canvas-status") == "Cancelled."


def test_queue_shows_every_job_and_cancels_only_the_pages_own(page: Any, web_server: ServerProcess) -> None:
    from paintwire.protocol import Client, JobCancelled, JobRequest

    other = Client(web_server.url, name="other-client/1.0")
    other.connect()
    events: list[Any] = []
    outcome: dict[str, Any] = {}

    def run_other() -> None:
        request = JobRequest("diffusers", "txt2img", model=TINY, params={"width": 512, "height": 512, "steps": 150})
        try:
            outcome["result"] = other.run(request, on_event=events.append, timeout=600)
        except JobCancelled:
            outcome["cancelled"] = True

    worker = threading.Thread(target=run_other, daemon=True)
    worker.start()
    try:
        view(page, "queue")
        other_row = page.locator("#queue-table tbody tr", has_text="other-client/1.0")
        other_row.wait_for()
        long_txt2img_from_page(page)  # queued behind the other client's job
        view(page, "queue")
        own_row = page.locator("#queue-table tbody tr", has_text="(this page)")
        own_row.wait_for()
        assert other_row.locator("button.cancel").count() == 0  # nobody else's jobs
        assert "queued" in own_row.text_content()
        own_row.locator("button.cancel").click()
        assert last_job(page) == "cancelled"
        own_row.wait_for(state="detached")
        # The other client's job went on running.
        page.wait_for_function("() => [...document.querySelectorAll('#queue-table tbody tr')].length === 1")
        assert worker.is_alive() and "cancelled" not in outcome
    finally:
        job = next((e.job for e in events if e.TYPE == "queued"), None)
        if job is not None and worker.is_alive():
            other.cancel(job)
        worker.join(120)
        other.close()
    assert outcome.get("cancelled")


# -- models and origins ---------------------------------------------------------------------


def test_models_view_lists_every_model_with_kind_and_status(page: Any) -> None:
    view(page, "models")
    row = page.locator("#models-table tbody tr", has_text=TINY)
    row.wait_for()
    assert "sd15" in row.text_content() and "ready" in row.text_content()
    assert page.locator("#models-table tbody tr", has_text="opencv").count() == 1


@pytest.fixture
def foreign_site() -> Iterator[str]:
    """Another origin on this machine: a blank page served from another port.
    (A page from a public name would be stopped by chromium's own local-network
    rule before the server saw it; this one reaches the server.)"""
    import http.server

    class Blank(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blank)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{site.server_address[1]}/"
    site.shutdown()
    site.server_close()


def test_another_origin_is_refused(browser: Any, web_server: ServerProcess, foreign_site: str) -> None:
    """A page from another origin can neither open the websocket nor read the JSON
    routes (the server answers 403); the server's own page can (every other test)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(foreign_site)
    opened = page.evaluate(
        """(url) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve("open");
            ws.onclose = (e) => resolve("closed " + e.code);
        })""",
        web_server.url,
    )
    assert opened == "closed 1006"  # the upgrade was refused before any websocket frame
    for route in ("/api/models", "/api/queue", "/"):
        with page.expect_response(lambda r: r.url == web_server.http + route) as response:
            page.evaluate("(url) => fetch(url, {mode: 'no-cors'}).catch(() => null)", web_server.http + route)
        assert response.value.status == 403, route
    # An <img> sends no Origin, but Sec-Fetch-Site says where it comes from.
    with page.expect_response(lambda r: r.url == web_server.http + "/api/models") as response:
        page.evaluate("(url) => { const img = new Image(); img.src = url; document.body.append(img); }", web_server.http + "/api/models")
    assert response.value.status == 403
    context.close()
