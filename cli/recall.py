"""``paintwire recall IMAGE``: the settings saved in an image, as ``paintwire run`` arguments.

Reads Paintwire's JSON, the WebUI's ``parameters`` text or SwarmUI's JSON (see
paintwire.protocol.metadata). With a server to ask, the parameters are fitted
to the mode it offers (the WebUI's sampler names become its values; what the
mode does not take is left out, each with a note on stderr); without one, they
are printed as they were saved.
"""

from __future__ import annotations

import json
import shlex
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from paintwire.protocol import Capabilities
from paintwire.protocol.metadata import Recalled, fit_to_mode, recall
from paintwire.protocol.pngtext import PngTextError, read_text

# Where an image from another program does not say which engine made it.
DEFAULT_ENGINE = "diffusers"


def read_settings(path: Path) -> Recalled | None:
    """The settings saved in the PNG at ``path``; raises ValueError for a file that is not a PNG."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    try:
        return recall(read_text(data))
    except PngTextError as exc:
        raise ValueError(f"{path}: {exc}") from None


def from_history(url: str, token: str | None, record_id: int) -> Recalled:
    """The settings of result ``record_id`` in the history of the server at websocket ``url``.
    Raises ValueError (no such result, history off) or ConnectionError (no server)."""
    from paintwire.hostkit.recall import http_url

    request = urllib.request.Request(http_url(url, f"/api/history/{record_id}"))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local server never goes through a proxy
    try:
        with opener.open(request, timeout=30) as response:
            item = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise ValueError(message) from None
    except (OSError, urllib.error.URLError) as exc:
        raise ConnectionError(f"Cannot reach the server at {url}: {exc}. Is it running (paintwire serve)?") from None
    return Recalled(dict(item.get("settings") or {}), "history")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_arguments(recalled: Recalled, caps: Capabilities | None) -> tuple[list[str], list[str]]:
    """The ``paintwire run`` arguments for ``recalled`` (without ``-o``), and notes for the user."""
    settings = recalled.settings
    engine = str(settings.get("engine") or DEFAULT_ENGINE)
    mode_name = str(settings.get("mode") or "txt2img")
    model = settings.get("model") or None
    params = dict(settings.get("params") or {})
    notes: list[str] = []
    if caps is not None:
        info = caps.engine(engine)
        mode = info.mode(mode_name) if info else None
        if mode is None:
            notes.append(f"this server has no mode {mode_name!r} in engine {engine!r}; the parameters are printed as saved.")
        else:
            fitted = fit_to_mode(settings, mode)
            params, notes = fitted.params, list(fitted.notes)
            needs = [str(getattr(i.kind, "value", i.kind)) for i in mode.inputs if i.required]
            if needs:
                notes.append(f"{mode.label} reads {' and '.join(needs)}: add --image FILE" + (" and --mask FILE" if "mask" in needs else "") + ".")
        names = {m.name for m in caps.models if m.engine == engine}
        if model and model not in names:
            notes.append(f"model {model!r} is not on this server; left out (the server's default is used).")
            model = None
    args = ["run", mode_name, "--engine", engine]
    if model:
        args += ["--model", str(model)]
    for name, value in params.items():
        args += ["-p", f"{name}={_value(value)}"]
    return args, notes


def command_line(args: list[str]) -> str:
    return shlex.join(["paintwire", *args])
