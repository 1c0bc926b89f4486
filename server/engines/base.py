"""What an engine is: the contract between the job worker and the code that makes pixels.

An engine advertises modes (with their ParamSpecs) and models, and runs one
validated job at a time in the worker thread. It reports progress through the
JobContext, which is also where it learns that the job was cancelled: every
``ctx.phase``/``ctx.progress`` call (and ``ctx.check_cancelled``) raises
JobCancelledError once the owner cancels. Engines call it between pieces of
work that each take well under a second (steps, tiles, blocks of a network),
so a cancel lands within about a second.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from paintwire.protocol import ControlKindSpec, DeviceInfo, EngineStatus, ErrorCode, ModelInfo, ModeSpec, Phase, ProtocolError, Rect

from ..layers import OutputLayer


class JobCancelledError(Exception):
    """Raised inside an engine when its job was cancelled; the worker reports it."""


@dataclass
class DecodedControl:
    """A control layer of a job (or of a preprocess request), decoded and checked:
    ``image`` is (H, W, 4) uint8 RGBA at the job image's geometry, ``params`` the
    preprocessor's parameters with defaults filled in."""

    kind: str
    image: np.ndarray
    preprocessor: str
    params: dict[str, Any]
    model: str | None = None
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0


@dataclass
class EngineJob:
    """A job that passed validation, with its pixels decoded.

    ``image`` is (H, W, 4) uint8 RGBA or None; ``mask`` is (H, W) uint8 or None.
    ``params`` holds every parameter of the mode, defaults filled in. With a
    crop, ``image`` and ``mask`` are the part of the canvas the mode reads, its
    top-left corner at ``origin`` on a canvas of ``canvas`` (width, height);
    result layers are placed in canvas pixels either way.
    """

    id: str
    mode: str
    params: dict[str, Any]
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    model: str | None = None
    max_output_pixels: int = 8192 * 8192
    controls: tuple[DecodedControl, ...] = ()
    origin: tuple[int, int] = (0, 0)
    canvas: tuple[int, int] | None = None  # None: the image is the whole canvas

    @property
    def canvas_size(self) -> tuple[int, int]:
        """(width, height) of the artist's canvas."""
        if self.canvas is not None:
            return self.canvas
        assert self.image is not None
        return self.image.shape[1], self.image.shape[0]


@dataclass
class EngineOutput:
    layers: list[OutputLayer]
    width: int  # the output canvas: the input's size unless the mode resizes
    height: int
    offset: tuple[int, int] = (0, 0)  # where the input's top-left corner lies on the output canvas


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress report: ``step`` of ``total`` of ``phase`` done, and the whole
    job's estimated ``fraction`` (0 to 1, never going back)."""

    step: int
    total: int
    stage: str  # a word for people
    phase: Phase
    fraction: float


ProgressSink = Callable[[ProgressUpdate], None]
PreviewSink = Callable[[np.ndarray, Rect], None]

# Stage words that engines used before phases existed, and the phase each one is.
_STAGE_PHASES = {p.value: p for p in Phase} | {p.value.replace("_", " "): p for p in Phase} | {"refining": Phase.DENOISING}


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cancel_event = cancel_event or threading.Event()
        self._on_progress = on_progress
        self._on_preview = on_preview if previews_per_second > 0 else None
        self._preview_interval = 1.0 / previews_per_second if previews_per_second > 0 else float("inf")
        self._last_preview = float("-inf")
        self._plan: list[tuple[Phase, float]] = []
        self._totals: dict[Phase, int] = {}
        self._last: dict[Phase, tuple[int, int]] = {}
        self._fraction = 0.0
        # Where the plan was last re-weighed: (position in the plan, the fraction then).
        self._base = (0.0, 0.0)
        self._calibrate: Phase | None = None
        self.current_phase: Phase | None = None
        self._seconds: dict[Phase, float] = {}  # time spent in each phase so far
        self._began: dict[Phase, float] = {}  # when each phase was first reported
        self._now = clock  # phase times (tests give a clock of their own)
        self._clock = clock()  # the time of the last report

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelledError()

    # -- progress ---------------------------------------------------------------------

    def plan(self, weights: dict[Phase, float], totals: dict[Phase, int] | None = None, calibrate: Phase | None = None) -> None:
        """Say which phases this job will go through and roughly what each costs
        (any unit, the same for all; seconds where ``calibrate`` is given); the
        overall fraction is weighted by them. Phases left out do not move the
        fraction. ``totals``: how many steps a phase will count, where known before
        it starts (the denoising steps). ``calibrate``: a phase whose first step,
        once timed, re-weighs the work left (that phase and the ones after it) by
        how much faster or slower the step ran than planned. Call it early, before
        the first planned phase."""
        self._plan = [(p, max(0.0, float(w))) for p, w in weights.items()]
        self._totals = dict(totals or {})
        self._calibrate = calibrate
        self._base = (0.0, self._fraction)

    @property
    def weights(self) -> dict[Phase, float]:
        """The plan's weights as they stand (after any re-weighing)."""
        return dict(self._plan)

    def seconds(self) -> dict[Phase, float]:
        """Time spent in each phase so far (the current one up to now)."""
        spent = dict(self._seconds)
        if self.current_phase is not None:
            spent[self.current_phase] = spent.get(self.current_phase, 0.0) + self._now() - self._clock
        return spent

    def resume(self, phase: Phase) -> None:
        """Report ``phase`` as under way again, where it last stood (or at 0 of its
        planned total): for work that restarts a phase without a step of its own."""
        step, total = self._last.get(phase, (0, self._totals.get(phase, 1)))
        self.phase(phase, step, total)

    def phase(self, phase: Phase, step: int = 0, total: int = 1, stage: str = "") -> None:
        """Report ``step`` of ``total`` of ``phase`` done; raises if the job was cancelled."""
        self.check_cancelled()
        now = self._now()
        if self.current_phase is not None:
            self._seconds[self.current_phase] = self._seconds.get(self.current_phase, 0.0) + now - self._clock
        self._clock = now
        self._began.setdefault(phase, now)
        self.current_phase = phase
        self._last[phase] = (step, total)
        if phase is self._calibrate and step >= 1 and total > 1:
            self._reweigh(phase, (now - self._began[phase]) / step * total, step, total)
        fraction = max(self._fraction, self._estimate(phase, step, total))
        self._fraction = fraction
        if self._on_progress is not None:
            self._on_progress(ProgressUpdate(step, total, stage or phase.value.replace("_", " "), phase, fraction))

    def progress(self, step: int, total: int, stage: str = "") -> None:
        """Report that ``step`` of ``total`` is done, with a stage word (engines
        without phases of their own: the phase is WORKING unless the word names one)."""
        self.phase(_STAGE_PHASES.get(stage, Phase.WORKING), step, total, stage)

    @property
    def fraction(self) -> float:
        return self._fraction

    def _reweigh(self, phase: Phase, measured: float, step: int, total: int) -> None:
        """``phase`` will take ``measured`` in all: scale it and the phases after it by
        measured / planned, keeping the fraction where it is (it never jumps)."""
        self._calibrate = None  # once per job
        planned = dict(self._plan).get(phase, 0.0)
        if planned <= 0 or measured <= 0:
            return
        scale = measured / planned
        after = False
        for i, (p, w) in enumerate(self._plan):
            after = after or p is phase
            if after:
                self._plan[i] = (p, w * scale)
        position = self._position(phase, step, total)
        if position is not None:
            self._base = (position, self._fraction)

    def _position(self, phase: Phase, step: int, total: int) -> float | None:
        """How much of the plan's weight is done at ``step`` of ``total`` of ``phase``
        (None for a phase outside the plan)."""
        done = 0.0
        for p, w in self._plan:
            if p is phase:
                return done + (w * min(max(step / total, 0.0), 1.0) if total > 0 else 0.0)
            done += w
        return None

    def _estimate(self, phase: Phase, step: int, total: int) -> float:
        if not self._plan:  # one phase, or an engine that does not plan: the phase's own share
            return min(max(step / total, 0.0), 1.0) if total > 0 and phase is not Phase.PREPARING else self._fraction
        position = self._position(phase, step, total)
        if position is None:
            return self._fraction  # a phase outside the plan: hold the fraction
        # The work left after the last re-weighing fills the fraction left then.
        start, fraction = self._base
        whole = sum(w for _, w in self._plan)
        if whole <= start:
            return self._fraction
        return min(1.0, fraction + (position - start) / (whole - start) * (1.0 - fraction))

    @property
    def previews_wanted(self) -> bool:
        """Whether anyone receives previews of this job."""
        return self._on_preview is not None

    def preview_due(self) -> bool:
        """Whether a preview sent now would be within the rate (and previews are wanted)."""
        return self._on_preview is not None and time.monotonic() - self._last_preview >= self._preview_interval

    def preview(self, rgba: np.ndarray, box: Rect) -> None:
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
        """The models this engine can use now, and those it found but cannot use
        (with ``problem`` set)."""
        return ()

    def notice(self) -> str:
        """Empty when the engine can run its modes; otherwise a sentence telling the
        user what to add (clients then offer a sentence instead of modes that can only fail)."""
        return ""

    def model_file(self, name: str) -> Path | None:
        """The file or folder of the model ``name`` (for its hash in the history); None
        for engines without model files."""
        return None

    def controls(self) -> tuple[ControlKindSpec, ...]:
        """The kinds of control layer this engine's modes take (none by default)."""
        return ()

    def preprocess(self, layer: DecodedControl) -> np.ndarray:
        """What a model reads from ``layer``: (H, W) uint8 for line maps, (H, W, 3) otherwise.
        Runs off the event loop, possibly while a job runs; needs no loaded model."""
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"The {self.name} engine takes no control layers.", "engine")

    def model_folders(self) -> list:
        """Folders whose changes mean ``rescan`` should run (none for engines without models)."""
        return []

    def rescan(self) -> None:
        """Look at the model folders again. Runs off the event loop, possibly while a job runs."""

    def device_label(self) -> str:
        """What the engine computes on, for the start-up summary; "" when not a device of its own."""
        device = self.device()
        return device.summary() if device else ""
    def device(self) -> DeviceInfo | None:
        """The accelerator this engine computes on; None when it uses none."""
        return None

    def memory_lines(self) -> list[str]:
        """How its models are placed in the device's memory, for the start-up summary (none by default)."""
        return []

    @abc.abstractmethod
    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        """Do the job. Runs in the worker thread; may raise ProtocolError for a
        request that is valid in shape but impossible (e.g. an output too large)."""

    def status(self) -> str:
        """EngineStatus.READY, or STARTING while the engine is still being built (starting.py)."""
        return EngineStatus.READY

    def close(self) -> None:
        """Free models and memory when the server stops."""
