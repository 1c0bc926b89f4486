"""What the browser tests, the gallery benchmark and the screenshot script share:
finding Debian's chromium, launching it through Playwright, and waiting on the
page without evaluating strings (the page's Content-Security-Policy forbids eval,
and the tests keep that policy on)."""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def find_chromium() -> str | None:
    """PAINTWIRE_CHROMIUM, else Debian's chromium on PATH."""
    given = os.environ.get("PAINTWIRE_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def why_no_browser() -> str | None:
    """None when the browser tests can run, else the reason they skip."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return "no chromium: run tests/browser/setup.sh (Debian's chromium) or set PAINTWIRE_CHROMIUM"
    return None


def launch(playwright: Any) -> Any:
    """Headless chromium from the system, never a browser Playwright downloads."""
    args = ["--no-sandbox"] if hasattr(os, "getuid") and os.getuid() == 0 else []  # chromium refuses its sandbox as root
    return playwright.chromium.launch(executable_path=find_chromium(), headless=True, args=args)
