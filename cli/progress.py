"""A one-line progress bar on stderr for job events."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class ProgressBar:
    WIDTH = 30

    def __init__(self, enabled: bool = True, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled
        self.stream = stream
        self.tty = stream.isatty()
        self._last = ""

    def update(self, event: Any) -> None:
        kind = event.TYPE
        if kind == "queued":
            self._show(f"queued, {event.position} job(s) ahead" if event.position else "queued, next")
        elif kind == "started":
            self._show("started")
        elif kind == "progress":
            # The bar is the whole job (all phases); the text names the phase and its step.
            filled = round(self.WIDTH * event.overall)
            self._show(f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {round(100 * event.overall):3d}% {event.describe()}")

    def _show(self, text: str) -> None:
        if not self.enabled or text == self._last:
            return
        self._last = text
        if self.tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, word: str) -> None:
        if self.enabled and self.tty and self._last:
            self.stream.write("\r\033[K" + (word + "\n" if word else ""))
            self.stream.flush()
