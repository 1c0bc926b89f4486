"""The server's web page in a real headless chromium, against a real server with
tiny models and a history seeded with 1,000 results: the gallery and its filters,
the detail view (star, delete, download, send to a plug-in), the canvas client,
the queue and its cancel rule, the models view, and the origin rule. One browser
and one server for the module; each test opens its own page. The page's Content-Security-Policy stays on: waits use function
expressions, never strings the page would have to eval."""

from __future__ import annotations

import sys
import calendar
import threading
import time
import urllib.error
import urllib.request
import json
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
from harness import DAY, SEED_MODELS, seed_expect, seed_history  # noqa: E402

pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow

TINY = "tiny-sd15"
SEEDED = 1000
NOW = time.time()
WAIT_MS = 60_000  # a loaded two-core machine is slow; nothing here asserts a time


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[ServerProcess]:
    from fixtures.tiny_models import build_tiny_sd15

    root = tmp_path_factory.mktemp("web")
    models = root / "models"
    build_tiny_sd15(models / TINY)
    seed_history(root / "history", SEEDED, NOW)
    server = start_server_process(
        engines=["classical", "diffusers"], model_dirs=[str(models)], previews_per_second=20.0,
        history=True, history_dir=str(root / "history"), history_max_count=0,
    )
    yield server
    server.stop()


@pytest.fixture
def page(browser: Any, web_server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, timezone_id="UTC")
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


def api(server: ServerProcess, path: str) -> Any:
    with urllib.request.urlopen(server.http + path, timeout=10) as response:
        return json.loads(response.read())


def gallery_count(page: Any) -> str:
    return page.text_content("#gallery-count") or ""


def scroll_to_end(page: Any) -> int:
    """Scroll the gallery down until no page is left; returns the results it holds."""
    for _ in range(400):
        text = gallery_count(page)
        if text and "+" not in text:
            return int(text.split()[0])
        page.locator("#gallery-scroll").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
        page.wait_for_timeout(30)
    raise AssertionError(f"the gallery never reached its end: {gallery_count(page)!r}")


def filtered(page: Any, action: Any, *expect: str) -> int:
    """Apply a filter, wait until the grid shows a query with every ``expect``
    (name=value) and without the others, and count what it then holds."""
    action()
    page.wait_for_function(
        """(expect) => {
            const query = document.getElementById('gallery-space').dataset.query;
            if (!query) return false;
            const params = new URLSearchParams(query.split('?')[1]);
            params.delete('limit');
            return [...params].length === expect.length && expect.every((e) => params.getAll(e.split('=')[0]).includes(e.split('=')[1]));
        }""",
        arg=list(expect),
    )
    return scroll_to_end(page)


# -- the gallery ---------------------------------------------------------------------------


def test_gallery_pages_through_1000_seeded_results(page: Any) -> None:
    page.wait_for_selector("#gallery-space .cell")
    first = page.locator("#gallery-space .cell").first
    assert first.get_attribute("data-id") == str(SEEDED)  # newest first
    assert gallery_count(page) == "120+ results"  # one page, and more to come
    assert scroll_to_end(page) == SEEDED
    page.locator("#gallery-scroll").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_selector("#gallery-space .cell[data-id='1']")
    # A virtual grid: only the rows in view exist, however far it scrolled.
    cells = page.locator("#gallery-space .cell")
    assert cells.count() < 150
    ids = [int(i) for i in cells.evaluate_all("(cells) => cells.map((c) => c.dataset.id)")]
    assert len(set(ids)) == len(ids) and min(ids) == 1  # the oldest result, at the bottom
    assert "#0" in page.locator("#gallery-space .cell[data-id='1']").get_attribute("title")
    # Thumbnails only: every image in the grid is a /thumb.
    sources = cells.evaluate_all("(cells) => cells.map((c) => c.querySelector('img').getAttribute('src'))")
    assert all(src.endswith("/thumb") for src in sources)
    assert page.evaluate("() => document.body.dataset.galleryPainted") is not None


def test_gallery_filters_combine(page: Any) -> None:
    page.wait_for_selector("#gallery-space .cell")
    assert filtered(page, lambda: page.fill("#filter-q", "lighthouse"), "q=lighthouse") == seed_expect(SEEDED, word="lighthouse")
    model = "model=dreamshaper-8"
    assert filtered(page, lambda: page.fill("#filter-model", "dreamshaper-8"), "q=lighthouse", model) == seed_expect(SEEDED, word="lighthouse", model="dreamshaper-8")
    assert filtered(page, lambda: page.fill("#filter-q", ""), model) == seed_expect(SEEDED, model="dreamshaper-8")
    assert filtered(page, lambda: page.select_option("#filter-mode", "inpaint"), model, "mode=inpaint") == seed_expect(SEEDED, model="dreamshaper-8", mode="inpaint")
    expected = seed_expect(SEEDED, model="dreamshaper-8", mode="inpaint", starred=True)
    assert filtered(page, lambda: page.check("#filter-starred"), model, "mode=inpaint", "starred=1") == expected
    assert page.locator("#gallery-space .cell .star").count() == page.locator("#gallery-space .cell").count() == expected
    page.fill("#filter-model", "")
    page.select_option("#filter-mode", "")
    assert filtered(page, lambda: page.uncheck("#filter-starred")) == SEEDED
    # Dates: the seeded results are 1/100 day apart, the newest just now; the page's days are UTC here.
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW - DAY))
    start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    expected = sum(1 for i in range(SEEDED) if start <= NOW - (SEEDED - i) * (DAY / 100) < start + DAY)
    since = f"since={day}T00:00:00.000Z"
    until = "until=" + time.strftime("%Y-%m-%dT00:00:00.000Z", time.gmtime(start + DAY))
    page.fill("#filter-since", day)
    assert filtered(page, lambda: page.fill("#filter-until", day), since, until) == expected


def test_detail_shows_settings_and_stars_deletes_and_downloads(page: Any, web_server: ServerProcess) -> None:
    page.locator("#gallery-space .cell[data-id='999']").click()
    page.wait_for_selector("#detail[open]")
    settings = page.locator("#detail-settings")
    settings.locator("th", has_text="steps").wait_for()
    assert "#998" in page.text_content("#detail-prompt")
    assert "cfg_scale" in settings.text_content() and SEED_MODELS[998 % len(SEED_MODELS)] in settings.text_content()
    assert page.evaluate("() => document.getElementById('detail-image').complete")
    # Star
    assert not api(web_server, "/api/history/999")["starred"]
    page.click("#detail-star")
    page.wait_for_selector("#detail-star[aria-pressed=true]")
    assert api(web_server, "/api/history/999")["starred"]
    # Download: the PNG with its settings
    with page.expect_download() as download:
        page.click("#detail-download")
    assert download.value.suggested_filename == "paintwire-999.png"
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Delete: two clicks, then it is gone from the grid and the server
    page.click("#detail-delete")
    assert page.is_visible("#detail[open]")
    page.click("#detail-delete")
    page.wait_for_selector("#detail", state="hidden")
    assert page.locator("#gallery-space .cell[data-id='999']").count() == 0
    try:
        api(web_server, "/api/history/999")
        raise AssertionError("the deleted result is still there")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404


def test_send_to_krita_reaches_the_plugin_as_a_recall(page: Any, web_server: ServerProcess) -> None:
    from paintwire.protocol import Client, Recall

    krita = Client(web_server.url, name="paintwire-krita/test", recall=True)
    krita.connect()
    try:
        page.locator("#gallery-space .cell[data-id='998']").click()
        page.wait_for_selector("#detail[open]")
        page.wait_for_selector("#detail-clients option:has-text('paintwire-krita/test')", state="attached")
        page.select_option("#detail-clients", label="paintwire-krita/test")
        page.click("#detail-send")
        page.wait_for_selector("#detail-status:has-text('Sent to paintwire-krita/test')")
        recall = next(krita.events(timeout=10))
        assert isinstance(recall, Recall)
        assert recall.id == 998 and recall.image == "/api/history/998/image" and recall.settings["seed"] == 997
    finally:
        krita.close()


def test_a_job_from_the_canvas_appears_in_the_gallery(page: Any, web_server: ServerProcess, picture_file: Path) -> None:
    newest = api(web_server, "/api/history?limit=1")["items"][0]["id"]
    view(page, "canvas")
    page.select_option("#canvas-mode", "inpaint")
    page.select_option("#canvas-model", label="OpenCV (built in)")
    page.set_input_files("#canvas-upload", str(picture_file))
    page.wait_for_function("() => document.getElementById('canvas-picture').width === 200")
    paint(page, 0.2, 0.6, 0.4, 0.7)
    run_job(page)
    assert last_job(page) == "result", page.text_content("#canvas-status")
    for _ in range(200):  # the history records after the result is sent, off the event loop
        item = api(web_server, "/api/history?limit=1")["items"][0]
        if item["id"] != newest:
            break
        time.sleep(0.05)
    assert item["id"] != newest and item["client"] == "paintwire-web/0.1.0" and item["mode"] == "inpaint"
    view(page, "gallery")
    cell = page.locator("#gallery-space .cell").first
    cell.wait_for()
    assert cell.get_attribute("data-id") == str(item["id"])


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


def test_the_pages_over_rule_gives_the_shared_vector_byte_for_byte(page: Any) -> None:
    """static/js/compositing.js against tests/vectors/over.json, the cases the server's
    paintwire.protocol.compositing is checked against (tests/unit/test_compositing.py)."""
    cases = json.loads((TESTS / "vectors" / "over.json").read_text(encoding="utf-8"))["cases"]
    got = page.evaluate(
        """async (cases) => {
            const { over, placeOver } = await import("/static/js/compositing.js");
            const flat = (key) => Uint8ClampedArray.from(cases.flatMap((c) => c[key]));
            const picture = new ImageData(flat("under"), cases.length, 1);
            placeOver(picture, new ImageData(flat("top").slice(4), cases.length - 1, 1), 1, 0);
            return { over: Array.from(over(flat("top"), flat("under"))), placed: Array.from(picture.data) };
        }""",
        cases,
    )
    expected = [v for c in cases for v in c["out"]]
    assert got["over"] == expected
    assert got["placed"] == cases[0]["under"] + expected[4:]  # placed one pixel in: the first is left as it was


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
    page.wait_for_selector("body[data-job-event=progress]")  # running
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


# -- the token ----------------------------------------------------------------------------------


def test_the_page_asks_for_the_token_and_keeps_it_out_of_the_address(browser: Any) -> None:
    server = start_server_process(token="page-secret")
    try:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(server.http + "/")
        page.wait_for_selector("#token-form:not([hidden])")  # the hello was refused: unauthorized
        assert page.text_content("#connection") == "not connected"
        page.fill("#token-input", "page-secret")
        page.click("#token-form button")
        page.wait_for_selector("#connection.ok")
        assert page.is_hidden("#token-form")
        # The history is off on this server: the gallery says so in the server's words.
        page.wait_for_selector("#gallery-count.error")
        assert "history is off" in page.text_content("#gallery-count")
        # A link with the token: kept for the tab, taken out of the address bar.
        other = context.new_page()
        other.goto(server.http + "/#token=page-secret")
        other.wait_for_selector("#connection.ok")
        assert "token" not in other.url
        assert other.evaluate("() => sessionStorage.getItem('paintwire-token')") == "page-secret"
        context.close()
    finally:
        assert server.stop() == 0
