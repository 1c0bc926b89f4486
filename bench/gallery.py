"""The web page's gallery with a large history: its first useful paint (every
thumbnail in view decoded) with 10,000 results, against the same page with 100
results measured in the same run, and the cost of reaching deep into the history.

The history is seeded in a temporary folder (tests/browser/harness.py: small
distinct pictures, their 256 px thumbnails made by the server's own code), a real
`paintwire serve` serves it, and Debian's chromium opens the page through
Playwright with a fresh browser context (no cache) for every load.

    ./run bench gallery                      # 10,000 against 100 results
    ./run bench gallery --results 20000 --repeat 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import ROOT, machine, ms, ratio, start_server_process, table

sys.path.insert(0, str(ROOT / "tests" / "browser"))
from harness import launch, seed_history, why_no_browser  # noqa: E402

VIEWPORT = {"width": 1280, "height": 860}


def first_paint(browser: Any, url: str) -> tuple[float, int]:
    """Milliseconds from navigation start to the page's 'paintwire-gallery-painted'
    mark, and how many thumbnails it had painted then."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-gallery-painted]", timeout=120_000)
        mark = page.evaluate("() => performance.getEntriesByName('paintwire-gallery-painted')[0].startTime")
        count = int(page.get_attribute("body", "data-gallery-painted") or 0)
        return mark / 1000, count
    finally:
        context.close()


def page_fetch(url: str, before: int | None) -> float:
    """Seconds for one gallery page (120 items) of the history API."""
    query = f"{url}/api/history?limit=120" + (f"&before={before}" if before else "")
    start = time.perf_counter()
    with urllib.request.urlopen(query, timeout=60) as response:
        json.loads(response.read())
    return time.perf_counter() - start


def measure(browser: Any, results: int, repeat: int, root: Path) -> dict[str, float]:
    folder = root / f"history-{results}"
    start = time.perf_counter()
    seed_history(folder, results, time.time())
    print(f"seeded {results} results in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    server = start_server_process(history=True, history_dir=str(folder), history_max_count=0)
    try:
        first_paint(browser, server.http + "/")  # warm-up: server caches, chromium's first start
        paints = [first_paint(browser, server.http + "/") for _ in range(repeat)]
        counts = {count for _, count in paints}
        first_page = statistics.median(page_fetch(server.http, None) for _ in range(repeat * 4))
        deep_page = statistics.median(page_fetch(server.http, 130) for _ in range(repeat * 4))  # the oldest page
        return {"paint": statistics.median(p for p, _ in paints), "thumbs": max(counts), "first_page": first_page, "deep_page": deep_page}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000, help="results in the large history (default 10000)")
    parser.add_argument("--baseline", type=int, default=100, help="results in the baseline history (default 100)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    reason = why_no_browser()
    if reason:
        raise SystemExit(f"bench gallery: {reason}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="paintwire-bench-gallery-") as tmp, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            base = measure(browser, args.baseline, args.repeat, Path(tmp))
            big = measure(browser, args.results, args.repeat, Path(tmp))
        finally:
            browser.close()
    print(f"\nmachine: {machine()}; viewport {VIEWPORT['width']}x{VIEWPORT['height']}, median of {args.repeat} page loads")
    table(
        f"Gallery with {args.results:,} results against {args.baseline:,}",
        ["measure", f"{args.baseline:,} results", f"{args.results:,} results", "ratio"],
        [
            ["first useful paint (every thumbnail in view decoded)", ms(base["paint"]), ms(big["paint"]), ratio(big["paint"], base["paint"])],
            ["thumbnails in that paint", int(base["thumbs"]), int(big["thumbs"]), ""],
            ["one page of 120 results, newest", ms(base["first_page"]), ms(big["first_page"]), ratio(big["first_page"], base["first_page"])],
            ["one page of 120 results, deep (before id 130)", ms(base["deep_page"]), ms(big["deep_page"]), ratio(big["deep_page"], base["deep_page"])],
        ],
    )


if __name__ == "__main__":
    main()
