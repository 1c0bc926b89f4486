"""Settings from elsewhere into the panel: a ``recall`` pushed from the server's
history, or the metadata saved in an image ("use settings from an image").

Both end as JobSettings for the current capabilities, with a note for each
thing the server cannot take (a mode it lacks, a model it does not have, a
parameter the mode does not know), so nothing is dropped silently. Fetching
the recalled image is here too (plain urllib, for both plug-ins); decoding it
is the host's (Qt in Krita, GIMP's own loaders).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from paintwire.protocol import Capabilities, ImagePayload, Layer, PixelFormat, Recall, Result
from paintwire.protocol.metadata import Recalled, fit_to_mode, recall
from paintwire.protocol.pngtext import PngTextError, read_text

from .modes import ChoiceError, choose, mode_label
from .request import PROMPT, SEED, JobSettings

# Images from another program do not say which engine made them.
DEFAULT_ENGINE = "diffusers"
MAX_IMAGE_BYTES = 512 << 20  # a recalled PNG is one picture; more is not one of ours


@dataclass(frozen=True)
class Recollection:
    """Recalled settings made fit for this server: None when it cannot run the
    mode at all; ``notes`` say what was left out and why."""

    settings: JobSettings | None
    notes: tuple[str, ...]
    summary: str  # one line for the artist: "Inpaint · tiny-sd15 · “a red fox” · seed 42"


def recollect(saved: Mapping[str, Any], caps: Capabilities | None, parent: int | None = None) -> Recollection:
    """JobSettings for ``saved`` (settings as protocol.metadata describes them);
    ``parent``: the history id they came from, which the next job names."""
    mode_name = str(saved.get("mode") or "txt2img")
    params = dict(saved.get("params") or {})
    prompt = str(params.get(PROMPT) or "").strip()
    seed = params.get(SEED)
    summary = " \u00b7 ".join(
        p for p in (mode_label(caps, mode_name), str(saved.get("model") or ""), f"\u201c{prompt[:40]}\u201d" if prompt else "",
                    f"seed {seed}" if seed is not None else "") if p
    )
    if caps is None:
        return Recollection(None, ("Connect to a server first.",), summary)
    notes: list[str] = []
    engine = str(saved.get("engine") or DEFAULT_ENGINE)
    model = str(saved.get("model") or "") or None
    try:
        choice = choose(caps, mode_name, engine if caps.engine(engine) else "")
    except ChoiceError as exc:
        return Recollection(None, (str(exc),), summary)
    if model is not None and not any(m.name == model and m.engine == choice.engine and m.usable for m in caps.models):
        notes.append(f"Model {model!r} is not on this server; using {choice.model or choice.label!r} instead.")
        model = None
    info = caps.engine(choice.engine)
    mode = info.mode(mode_name) if info else None
    assert mode is not None  # choose() found it
    fitted = fit_to_mode(saved, mode)
    notes.extend(fitted.notes)
    settings = JobSettings(mode.name, choice.engine, model if model is not None else choice.model, fitted.params, parent)
    return Recollection(settings, tuple(notes), summary)


def settings_in_image(data: bytes) -> Recalled | None:
    """The settings saved in PNG ``data`` (Paintwire's, the WebUI's or SwarmUI's);
    None when it carries none. Raises ValueError for data that is not a PNG."""
    try:
        return recall(read_text(data))
    except PngTextError as exc:
        raise ValueError(f"Not a PNG file with settings: {exc}.") from None


def http_url(ws_url: str, path: str) -> str:
    """The HTTP address of ``path`` on the server at websocket ``ws_url``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def fetch_image(ws_url: str, token: str | None, recalled: Recall, timeout: float = 30.0) -> bytes:
    """The recalled image's PNG bytes, fetched over HTTP with the connection's token.
    Blocking: call it from a worker thread. Raises ValueError with a sentence."""
    if not recalled.image.startswith("/"):
        raise ValueError("The server sent no image with these settings.")
    request = urllib.request.Request(http_url(ws_url, recalled.image))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    # A loopback server is reached directly, never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(MAX_IMAGE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"The server could not send the image (HTTP {exc.code}).") from None
    except (OSError, urllib.error.URLError) as exc:
        raise ValueError(f"Could not fetch the image: {exc}.") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError("The image is too large to open.")
    return data


def recalled_result(recalled: Recall, width: int, height: int, pixels: bytes, pixel_format: PixelFormat) -> Result:
    """The decoded recalled image as a one-layer result at (0, 0), so a host places it
    with the same code as its own results (named after the prompt and seed)."""
    params = dict(recalled.settings.get("params") or {})
    seed = params.get(SEED) if isinstance(params.get(SEED), int) else None
    # The layer's base name; placement adds the seed, as it does for every result.
    name = " ".join(str(params.get(PROMPT) or "").split()) or f"History {recalled.id}"
    layer = Layer(ImagePayload(width, height, pixel_format, pixels), 0, 0, name, seed, {})
    return Result(f"history-{recalled.id}", (layer,), width, height)


def into_document(result: Result, document_size: tuple[int, int]) -> Result:
    """A recalled image placed in the artist's document: a layer at its top-left corner
    when it fits inside, else (larger than the document) a document of its own."""
    width, height = document_size
    if result.width <= width and result.height <= height:
        return Result(result.job, result.layers, width, height)
    return result
