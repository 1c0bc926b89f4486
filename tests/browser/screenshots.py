"""Take the web page's screenshots for the README and docs/web.md: the gallery over
a seeded history, a result's detail, and the canvas client after an inpaint.

    .venv/bin/python tests/browser/screenshots.py            # writes docs/images/web-*.png

A real `paintwire serve` (classical engine) serves a history seeded with the same
pictures the browser tests use; Debian's chromium takes the pictures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from harness import launch, seed_history, seed_picture, why_no_browser  # noqa: E402
from server_process import start_server_process  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    reason = why_no_browser()
    if reason:
        raise SystemExit(f"screenshots: {reason}")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="paintwire-screenshots-") as tmp:
        seed_history(Path(tmp) / "history", 300, time.time())
        picture = Path(tmp) / "picture.png"
        Image.fromarray(seed_picture(5, 384)).save(picture)
        server = start_server_process(history=True, history_dir=str(Path(tmp) / "history"))
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                page.goto(server.http + "/")
                page.wait_for_selector("body[data-gallery-painted]")
                page.screenshot(path=str(args.out / "web-gallery.png"))

                page.locator("#gallery-space .cell").nth(2).click()
                page.wait_for_selector("#detail-settings th:has-text('steps')")
                page.wait_for_function("() => document.getElementById('detail-image').complete")
                page.screenshot(path=str(args.out / "web-detail.png"))
                page.keyboard.press("Escape")

                page.click("nav button[data-view=canvas]")
                page.select_option("#canvas-mode", "inpaint")
                page.set_input_files("#canvas-upload", str(picture))
                page.wait_for_selector("#canvas-download", state="hidden")
                box = page.locator("#canvas-mask").bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.45)
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.55, steps=8)
                page.mouse.up()
                page.screenshot(path=str(args.out / "web-canvas.png"))
                browser.close()
        finally:
            server.stop()
    for name in ("web-gallery.png", "web-detail.png", "web-canvas.png"):
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
