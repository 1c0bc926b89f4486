"""The history as the server runs it: the store and its recorder, opened when the
server starts, and the two hooks the job path calls (a result to record, a model
hash a result may carry). What it needs from the server comes in as functions,
so it never holds the server."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable, Mapping

from paintwire.protocol import Capabilities, ModelKind, Result
from paintwire.protocol.metadata import labels_of

from ..config import ConfigError, HistoryConfig
from ..engines.base import Engine
from ..jobs import Job
from . import hashes, history_folder
from .recorder import Finished, HistoryRecorder
from .store import HistoryStore


class HistoryService:
    """The server's history as the app holds it: the store and its recorder, opened and
    closed with the server, and what the scheduler and the routes ask of them."""

    def __init__(self, config: HistoryConfig, engines: Mapping[str, Engine], capabilities: Callable[[], Capabilities]) -> None:
        self.config = config
        self.engines = engines  # by name
        self.capabilities = capabilities
        self.store: HistoryStore | None = None  # None until opened, and while the history is off
        self.recorder: HistoryRecorder | None = None

    def open(self) -> None:
        """Open the store and start recording (when the history is on); raises ConfigError."""
        if not self.config.enabled:
            return
        folder = history_folder(self.config.history_dir)
        try:
            self.store = HistoryStore(folder, self.config.history_max_count, int(self.config.history_max_gb * 2**30))
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"Cannot open the history in {folder}: {exc}. Set history_dir to a writable folder, or history = false.") from None
        self.recorder = HistoryRecorder(self.store, self.model_file, self.labels, embedding_names=self.embedding_names)

    def close(self) -> None:
        """Record what is queued (a few seconds at most), then close the store. Blocking."""
        if self.recorder is not None:
            self.recorder.stop()
        if self.store is not None:
            self.store.close()

    # -- the job path's hooks --------------------------------------------------------

    def record(self, job: Job, result: Result) -> None:
        """The scheduler's hook, after the result was queued for its client: never waits."""
        if self.recorder is not None:
            name = getattr(job.owner, "client_name", None) or ""
            self.recorder.offer(Finished(name, time.time(), job.checked.request, result))

    def known_hash(self, engine: str, model: str) -> str | None:
        """The model's hash when the history has computed it before (each model file is
        hashed once, after its first result); None without a history. Never reads the file."""
        path = self.model_file(engine, model) if self.store is not None else None
        if path is None or self.store is None:
            return None
        try:
            return hashes.known_hash(path, hashes.MODEL, self.store)
        except OSError:
            return None

    # -- what the recorder asks -------------------------------------------------------

    def model_file(self, engine: str, name: str) -> Path | None:
        found = self.engines.get(engine)
        return found.model_file(name) if found else None

    def embedding_names(self, engine: str) -> set[str]:
        return {m.name for m in self.capabilities().models if m.engine == engine and m.kind == ModelKind.EMBEDDING.value}

    def labels(self, engine: str, mode: str) -> dict[str, dict[str, str]]:
        info = self.capabilities().engine(engine)
        return labels_of(info.mode(mode) if info else None)
