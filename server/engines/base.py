"""What an engine is: the contract between the job worker and the code that makes pixels.

An engine advertises modes (with their ParamSpecs) and models, and runs one
validated job at a time in the worker thread. It reports progress through the
JobContext, which is also where it learns that the job was cancelled: every
``ctx.progress`` call (and ``ctx.check_cancelled``) raises JobCancelledError
once the owner cancels, so a job stops within one step.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from paintwire.protocol import DeviceInfo, ModelInfo, ModeSpec

from ..masks import Box


class JobCancelledError(Exception):
    """Raised inside an engine when its job was cancelled; the worker reports it."""


@dataclass
class EngineJob:
    """A job that passed validation, with its pixels decoded.

    ``image`` is (H, W, 4) uint8 RGBA or None; ``mask`` is (H, W) uint8 or None.
    ``params`` holds every parameter of the mode, defaults filled in.
    """

    id: str
    mode: str
    params: dict[str, Any]
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    model: str | None = None
    max_output_pixels: int = 8192 * 8192


@dataclass
class OutputLayer:
    """A result layer: RGBA pixels placed at (x, y) on the output canvas."""

    pixels: np.ndarray  # (h, w, 4) uint8, straight alpha
    x: int
    y: int
    name: str
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineOutput:
    layers: list[OutputLayer]
    width: int  # the output canvas: the input's size unless the mode resizes
    height: int


ProgressSink = Callable[[int, int, str], None]
PreviewSink = Callable[[np.ndarray, Box], None]


PREVIEW_MAX_SIDE = 256  # big enough to judge composition, small enough to send several a second


class JobContext:
    """The engine's line to the job's owner: progress, previews, cancellation.

    Previews are rate-limited here, in one place: an engine asks
    ``preview_due()`` before it spends anything on making one.
    """

    def __init__(
        self,
        cancel_event: threading.Event | None = None,
        on_progress: ProgressSink | None = None,
        on_preview: PreviewSink | None = None,
        previews_per_second: float = 4.0,
    ) -> None:
        self.cancel_event = cancel_event or threading.Event()
        self._on_progress = on_progress
        self._on_preview = on_preview if previews_per_second > 0 else None
        self._preview_interval = 1.0 / previews_per_second if previews_per_second > 0 else float("inf")
        self._last_preview = float("-inf")

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelledError()

    def progress(self, step: int, total: int, stage: str = "") -> None:
        """Report that ``step`` of ``total`` is done; raises if the job was cancelled."""
        self.check_cancelled()
        if self._on_progress is not None:
            self._on_progress(step, total, stage)

    def preview_due(self) -> bool:
        """Whether a preview sent now would be within the rate (and previews are wanted)."""
        return self._on_preview is not None and time.monotonic() - self._last_preview >= self._preview_interval

    def preview(self, rgba: np.ndarray, box: Box) -> None:
        """Send a rough picture (at most PREVIEW_MAX_SIDE a side) of the region ``box``;
        dropped when not ``preview_due()``."""
        if not self.preview_due():
            return
        self._last_preview = time.monotonic()
        assert self._on_preview is not None
        self._on_preview(rgba, box)


class Engine(abc.ABC):
    """Base class of engines. Subclasses set ``name`` and ``label``."""

    name: str = ""
    label: str = ""

    @abc.abstractmethod
    def modes(self) -> tuple[ModeSpec, ...]:
        """The modes this engine offers, with their parameters."""

    def models(self) -> tuple[ModelInfo, ...]:
        """The models this engine can use now (scanned when the server starts)."""
        return ()

    def device(self) -> DeviceInfo | None:
        """The accelerator this engine computes on; None when it uses none."""
        return None

    @abc.abstractmethod
    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        """Do the job. Runs in the worker thread; may raise ProtocolError for a
        request that is valid in shape but impossible (e.g. an output too large)."""

    def close(self) -> None:
        """Free models and memory when the server stops."""
