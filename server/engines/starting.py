"""Engines that start after the server is listening.

The diffusers engine imports torch and diffusers and scans the model folders
before it can describe a single mode: seconds on a fast machine, half a minute
on a busy one. A server that waited for it before binding told a plug-in that
connected meanwhile "cannot connect". Instead the server binds first and builds
such an engine in a thread; until it is ready, its ``StartingEngine`` stands in
its place: the engine is listed with status ``starting``, no modes and a notice
that says so, and every client that asked for updates gets the new capabilities
when it is ready. After that, every call goes to the engine it built.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from paintwire.protocol import ControlKindSpec, DeviceInfo, EngineStatus, ErrorCode, ModelInfo, ModeSpec, ProtocolError

from .base import DecodedControl, Engine, EngineJob, EngineOutput, JobContext

log = logging.getLogger(__name__)


class StartingEngine(Engine):
    """An engine built in the background by ``start``; until then it offers nothing."""

    def __init__(self, name: str, build: Callable[[], Engine | None]) -> None:
        self.name = self.label = name
        self._build = build
        self.engine: Engine | None = None
        self.failed = False  # could not be built (the log says why): it is left out of the capabilities
        self.seconds = 0.0  # how long it took to start
        self._done = threading.Event()

    def start(self) -> None:
        """Build the engine. Blocking: the server calls it in a thread of its own."""
        began = time.monotonic()
        try:
            engine = self._build()
        except Exception:
            log.exception("the %s engine could not start", self.name)
            engine = None
        self.seconds = time.monotonic() - began
        if engine is None:
            self.failed = True
        else:
            self.engine, self.name, self.label = engine, engine.name, engine.label
        self._done.set()

    def status(self) -> str:
        return EngineStatus.READY if self._done.is_set() else EngineStatus.STARTING

    @property
    def built(self) -> Engine | None:
        """The engine, once ``start`` is over (None before, and when it failed)."""
        return self.engine if self._done.is_set() else None

    # -- until ready: nothing; then the engine's own answers --------------------------------

    def modes(self) -> tuple[ModeSpec, ...]:
        return engine.modes() if (engine := self.built) else ()

    def models(self) -> tuple[ModelInfo, ...]:
        return engine.models() if (engine := self.built) else ()

    def notice(self) -> str:
        if (engine := self.built) is not None:
            return engine.notice()
        if self.failed:
            return f"The {self.name} engine could not start; the server's log says why."
        return f"The {self.name} engine is starting (loading its libraries and finding its models); its modes follow in a moment."

    def model_file(self, name: str) -> Path | None:
        return engine.model_file(name) if (engine := self.built) else None

    def controls(self) -> tuple[ControlKindSpec, ...]:
        return engine.controls() if (engine := self.built) else ()

    def preprocess(self, layer: DecodedControl) -> np.ndarray:
        return self._ready().preprocess(layer)

    def model_folders(self) -> list:
        return engine.model_folders() if (engine := self.built) else []

    def rescan(self) -> None:
        if (engine := self.built) is not None:
            engine.rescan()

    def device(self) -> DeviceInfo | None:
        return engine.device() if (engine := self.built) else None

    def device_label(self) -> str:
        return engine.device_label() if (engine := self.built) else ""

    def memory_lines(self) -> list[str]:
        return engine.memory_lines() if (engine := self.built) else []

    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        return self._ready().run(job, ctx)

    def close(self) -> None:
        if (engine := self.built) is not None:
            engine.close()

    def _ready(self) -> Engine:
        engine = self.built
        if engine is None:  # check_job refuses its modes before this: it offers none yet
            raise ProtocolError(ErrorCode.UNKNOWN_ENGINE, self.notice(), "engine")
        return engine
