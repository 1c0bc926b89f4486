"""Models found without a restart: the model folders are looked at again when they change.

A poll, not an OS file watch: it needs no extra package, works the same on
every platform and on network drives, and model folders are small (a few
hundred entries). Every ``interval`` seconds a signature of the folders (names,
sizes and modification times, never file contents) is taken off the event
loop; when it differs, the engines rescan and ``on_change`` publishes the new
capabilities. A client's ``rescan`` does the same at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Callable, Iterable

from .engines.base import Engine

log = logging.getLogger(__name__)

MAX_ENTRIES = 20000  # a mistaken root such as ~ must not make each poll walk the whole disk
MAX_DEPTH = 8  # deeper than the registry's scan (6) plus a pipeline's own folders

Signature = frozenset[tuple[str, int, int]]


def folder_signature(folders: Iterable[Path]) -> Signature:
    """(path, size, mtime) of everything under ``folders``, bounded in entries and depth."""
    seen: set[tuple[str, int, int]] = set()
    for root in folders:
        root = Path(root)
        if not root.is_dir():
            seen.add((str(root), -1, -1))
            continue
        base_depth = len(root.parts)
        for dirpath, dirnames, filenames in os.walk(root):
            depth = len(Path(dirpath).parts) - base_depth
            dirnames[:] = [d for d in dirnames if not d.startswith(".")] if depth < MAX_DEPTH else []
            for name in [*dirnames, *filenames]:
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except OSError:
                    continue
                seen.add((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns))
                if len(seen) >= MAX_ENTRIES:
                    return frozenset(seen)
    return frozenset(seen)


class ModelWatch:
    def __init__(self, engines: list[Engine], interval: float, on_change: Callable[[], None]) -> None:
        self.engines = engines  # the server's list: an engine that is still starting has its folders once started
        self.interval = interval
        self.on_change = on_change
        self._lock = asyncio.Lock()
        self._signature: Signature | None = None
        self._task: asyncio.Task[None] | None = None

    def _folders(self) -> list[Path]:
        return [Path(f) for e in self.engines for f in e.model_folders()]

    def start(self) -> None:
        if self.interval > 0 and self._folders():
            self._task = asyncio.create_task(self._poll(), name="paintwire-model-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _poll(self) -> None:
        self._signature = await asyncio.to_thread(folder_signature, self._folders())
        while True:
            await asyncio.sleep(self.interval)
            signature = await asyncio.to_thread(folder_signature, self._folders())
            if signature != self._signature:
                # A file still being copied changes again at the next poll and is rescanned then.
                await self.rescan()

    async def rescan(self) -> None:
        """Rescan every engine's folders off the event loop, then publish."""
        async with self._lock:
            self._signature = await asyncio.to_thread(folder_signature, self._folders())
            for engine in self.engines:
                try:
                    await asyncio.to_thread(engine.rescan)
                except Exception:  # a bug in a scan must not stop the watch or the server
                    log.exception("rescanning the %s engine's models failed", engine.name)
            self.on_change()
