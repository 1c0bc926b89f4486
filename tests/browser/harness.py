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


# -- a seeded history ------------------------------------------------------------------------

SEED_MODELS = ("tiny-sd15", "dreamshaper-8", "opencv")
SEED_MODES = ("txt2img", "img2img", "inpaint", "upscale")
SEED_WORDS = ("a red fox in snow", "a lighthouse at dusk", "blue whale, watercolour", "portrait of an old sailor", "autumn forest, mist", "city street at night, rain")
DAY = 86400.0


def seed_picture(index: int, size: int = 256) -> Any:
    """A small, colourful picture that differs from record to record (a gradient and
    a disc, its hue turning with ``index``): cheap to encode, easy to tell apart."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    hue = (index * 0.137) % 1.0
    phase = 2 * np.pi * (hue + np.array([0.0, 1 / 3, 2 / 3], np.float32))
    rgb = 0.5 + 0.5 * np.cos(phase[None, None, :] + 2.5 * (x + 0.6 * y)[..., None])
    cx, cy, r = 0.3 + 0.4 * ((index * 0.61) % 1.0), 0.3 + 0.4 * ((index * 0.37) % 1.0), 0.12 + 0.1 * ((index * 0.29) % 1.0)
    disc = ((x - cx) ** 2 + (y - cy) ** 2) < r * r
    rgb[disc] = 1.0 - rgb[disc]
    out = np.empty((size, size, 4), np.uint8)
    out[..., :3] = (rgb * 255).astype(np.uint8)
    out[..., 3] = 255
    return out


def seed_history(folder: Any, count: int, now: float, distinct: int = 48) -> None:
    """Fill the history in ``folder`` with ``count`` results, as if made over the
    last ``count // 100`` days: models, modes, prompts and stars vary in fixed
    patterns that the tests count on (see ``seed_expect``). Pictures repeat every
    ``distinct`` records, so seeding 10,000 stays quick and small."""
    import io

    from PIL import Image

    from paintwire.server.history.recorder import thumbnail
    from paintwire.server.history.store import HistoryStore, NewRecord

    files = []
    for i in range(distinct):
        rgba = seed_picture(i)
        png = io.BytesIO()
        Image.fromarray(rgba).save(png, format="PNG")
        files.append((png.getvalue(), thumbnail(rgba)))
    store = HistoryStore(folder)
    try:
        for i in range(count):
            png, thumb = files[i % distinct]
            prompt = f"{SEED_WORDS[i % len(SEED_WORDS)]} #{i}"
            store.add(NewRecord(
                created=now - (count - i) * (DAY / 100), client="seed/1", engine="diffusers", mode=SEED_MODES[i % len(SEED_MODES)],
                model=SEED_MODELS[i % len(SEED_MODELS)], prompt=prompt, seed=i, width=256, height=256,
                settings={"prompt": prompt, "seed": i, "steps": 20, "cfg_scale": 7.0, "sampler": "euler"}, png=png, thumb=thumb,
            ))
            if i % 7 == 0:
                store.star(i + 1, True)  # ids count from 1 in a new store
    finally:
        store.close()


def seed_expect(count: int, *, model: str | None = None, mode: str | None = None, starred: bool = False, word: str | None = None) -> int:
    """How many seeded results a filter keeps."""
    return sum(
        1 for i in range(count)
        if (model is None or SEED_MODELS[i % len(SEED_MODELS)] == model)
        and (mode is None or SEED_MODES[i % len(SEED_MODES)] == mode)
        and (not starred or i % 7 == 0)
        and (word is None or word in f"{SEED_WORDS[i % len(SEED_WORDS)]} #{i}")
    )
