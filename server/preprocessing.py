"""Previews of control-layer preprocessors (the ``preprocess`` message), off the job queue.

A preview needs no loaded model and must not wait behind a minute-long job, so it
runs in a thread of its own, one at a time across the server (the preprocessors are
CPU work of a fraction of a second); each session bounds how many it has waiting.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import numpy as np

from paintwire.protocol import CheckedControl, ImagePayload, PixelFormat

from .engines.base import Engine
from .imaging import array_to_payload, as_rgba, payload_to_array
from .runner import decoded_control


class Preprocessing:
    def __init__(self, engines: Mapping[str, Engine]) -> None:
        self.engines = engines
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paintwire-preprocess")

    async def run(self, engine: str, checked: CheckedControl) -> ImagePayload:
        """The preprocessed image: l8 for line and edge maps, rgba8 (opaque) otherwise.
        Raises ProtocolError for what the engine refuses."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, engine, checked)

    def _run(self, engine: str, checked: CheckedControl) -> ImagePayload:
        layer = decoded_control(checked, as_rgba(payload_to_array(checked.control.image, "control.image")))
        out = self.engines[engine].preprocess(layer)
        if out.ndim == 2:
            return array_to_payload(np.ascontiguousarray(out), PixelFormat.L8)
        return array_to_payload(as_rgba(out), PixelFormat.RGBA8)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

