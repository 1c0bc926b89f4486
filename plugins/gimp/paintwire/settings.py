"""Connection settings (server URL, token, timeout) in one place for all procedures.

Stored as ``paintwire.json`` in GIMP's profile folder (``Gimp.directory()``), so
every Paintwire procedure and every GIMP session uses the same server. The
environment variables PAINTWIRE_URL and PAINTWIRE_TOKEN win over the file, which
is what batch scripts and CI use. Plain Python: no GIMP import, so it is tested
without GIMP.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from paintwire.hostkit.status import EVENT_TIMEOUT
from paintwire.protocol import DEFAULT_URL

FILE_NAME = "paintwire.json"
DEFAULT_TIMEOUT = EVENT_TIMEOUT  # the artist may change it in the Connection procedure


@dataclass(frozen=True)
class Connection:
    url: str = DEFAULT_URL
    token: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @property
    def token_or_none(self) -> str | None:
        return self.token or None


def settings_path(profile_dir: str | os.PathLike) -> Path:
    return Path(profile_dir) / FILE_NAME


def load(profile_dir: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> Connection:
    """The settings in force: the file (if any) overridden by the environment.

    A broken file is not fatal: the defaults apply, so the artist can fix the
    settings from the Connection procedure.
    """
    stored: dict = {}
    if profile_dir is not None:
        try:
            stored = json.loads(settings_path(profile_dir).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
    url = environ.get("PAINTWIRE_URL") or str(stored.get("url") or DEFAULT_URL)
    token = environ.get("PAINTWIRE_TOKEN") or str(stored.get("token") or "")
    try:
        timeout = float(stored.get("timeout") or DEFAULT_TIMEOUT)
    except (TypeError, ValueError):
        timeout = DEFAULT_TIMEOUT
    return Connection(url=url.strip(), token=token.strip(), timeout=max(timeout, 1.0))


def save(profile_dir: str | os.PathLike, connection: Connection) -> Path:
    """Write the settings; the file holds the token, so it is made private to the user."""
    path = settings_path(profile_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(connection), fh, indent=2)
    os.replace(tmp, path)
    return path


def check_url(url: str) -> str | None:
    """A sentence saying what is wrong with ``url``, or None if it looks usable."""
    if not url.startswith(("ws://", "wss://")):
        return f"The server address must start with ws:// or wss://, got {url!r} (the default is {DEFAULT_URL})."
    return None
