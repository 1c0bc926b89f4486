"""Settings from elsewhere into the panel: a ``recall`` pushed from the server's
history, or the metadata saved in an image ("use settings from an image").

Both end as JobSettings for the current capabilities, with a note for each
thing the server cannot take (a mode it lacks, a model it does not have, a
parameter the mode does not know), so nothing is dropped silently. Reading the
history over HTTP is here too (plain urllib, with the connection's token): the
recalled image for both plug-ins, a result's settings for the CLI. Decoding the
image is the host's (Qt in Krita, GIMP's own loaders). The CLI's ``paintwire
recall`` is this module with a command line for its output.
"""

from __future__ import annotations

import json
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


def as_saved(saved: Mapping[str, Any], parent: int | None = None) -> JobSettings:
    """``saved`` (settings as protocol.metadata describes them) as they were saved, with
    what a recall assumes where they are silent: txt2img, and DEFAULT_ENGINE."""
    return JobSettings(str(saved.get("mode") or "txt2img"), str(saved.get("engine") or DEFAULT_ENGINE),
                       str(saved.get("model") or "") or None, dict(saved.get("params") or {}), parent)


def recollect(saved: Mapping[str, Any], caps: Capabilities | None, parent: int | None = None) -> Recollection:
    """JobSettings for ``saved`` (settings as protocol.metadata describes them);
    ``parent``: the history id they came from, which the next job names."""
    wanted = as_saved(saved, parent)
    prompt = str(wanted.params.get(PROMPT) or "").strip()
    seed = wanted.params.get(SEED)
    summary = " \u00b7 ".join(
        p for p in (mode_label(caps, wanted.mode), wanted.model or "", f"\u201c{prompt[:40]}\u201d" if prompt else "",
                    f"seed {seed}" if seed is not None else "") if p
    )
    if caps is None:
        return Recollection(None, ("Connect to a server first.",), summary)
    notes: list[str] = []
    model = wanted.model
    try:
        choice = choose(caps, wanted.mode, wanted.engine if caps.engine(wanted.engine) else "")
    except ChoiceError as exc:
        return Recollection(None, (str(exc),), summary)
    if model is not None and not any(m.name == model and m.engine == choice.engine and m.usable for m in caps.models):
        notes.append(f"Model {model!r} is not on this server; using {choice.model or choice.label!r} instead.")
        model = None
    info = caps.engine(choice.engine)
    mode = info.mode(wanted.mode) if info else None
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
        raise ValueError(f"No settings can be read from this file: {exc}.") from None


def http_url(ws_url: str, path: str) -> str:
    """The HTTP address of ``path`` on the server at websocket ``ws_url``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class Refused(ValueError):
    """The server answered with an HTTP error; the message is its own sentence where it sent one."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def http_get(ws_url: str, token: str | None, path: str, timeout: float = 30.0, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The body of ``path`` on the server at websocket ``ws_url``, asked with the connection's
    token. Blocking: call it from a worker thread. Raises Refused for an HTTP error,
    ConnectionError when the server cannot be reached, ValueError for more than ``limit`` bytes."""
    request = urllib.request.Request(http_url(ws_url, path))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    # A loopback server is reached directly, never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise Refused(exc.code, _error_sentence(exc) or f"HTTP {exc.code}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise ConnectionError(f"Cannot reach the server at {ws_url}: {getattr(exc, 'reason', exc)}.") from None
    if len(data) > limit:
        raise ValueError(f"The server sent more than {limit} bytes for {path}.")
    return data


def _error_sentence(exc: urllib.error.HTTPError) -> str | None:
    """The sentence of the server's JSON error body ({"error": {"message": ...}}), if it sent one."""
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fetch_image(ws_url: str, token: str | None, recalled: Recall, timeout: float = 30.0) -> bytes:
    """The recalled image's PNG bytes. Blocking: call it from a worker thread. Raises
    ValueError with a sentence."""
    if not recalled.image.startswith("/"):
        raise ValueError("The server sent no image with these settings.")
    try:
        return http_get(ws_url, token, recalled.image, timeout)
    except Refused as exc:
        raise ValueError(f"The server could not send the image (HTTP {exc.status}).") from None
    except ConnectionError as exc:
        raise ValueError(f"Could not fetch the image: {exc}") from None
    except ValueError:
        raise ValueError("The image is too large to open.") from None


def history_settings(ws_url: str, token: str | None, record_id: int, timeout: float = 30.0) -> Recalled:
    """The settings of result ``record_id`` in the history of the server at ``ws_url``.
    Blocking. Raises ValueError with the server's sentence (no such result, history off)
    or ConnectionError (no server)."""
    try:
        item = json.loads(http_get(ws_url, token, f"/api/history/{record_id}", timeout))
    except Refused as exc:
        raise ValueError(str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        item = None
    if not isinstance(item, dict):
        raise ValueError(f"The server sent no settings for result {record_id}.")
    return Recalled(dict(item.get("settings") or {}), "history")


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
