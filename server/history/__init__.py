"""The server's durable history of results (docs/history.md): a SQLite store
with each result's PNG and thumbnail, the recorder that fills it off the event
loop, and its HTTP API."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .recorder import Finished, HistoryRecorder
from .store import Filters, HistoryStore, NewRecord, Record

__all__ = ["Filters", "Finished", "HistoryRecorder", "HistoryStore", "NewRecord", "Record", "default_folder", "history_folder"]


def default_folder() -> Path:
    """The user's data folder for Paintwire's history, per platform's convention."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "Paintwire" / "history"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Paintwire" / "history"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "paintwire" / "history"


def history_folder(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else default_folder()
