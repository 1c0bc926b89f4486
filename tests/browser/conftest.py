"""Fixtures of the browser tests: one headless chromium for a test module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import launch, why_no_browser  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = launch(playwright)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
