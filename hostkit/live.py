"""Live painting on the client's side, for any host: which region streams, how it
is read without stalling the host, when a state is worth sending, and which
frame to show.

A host's UI thread calls :meth:`RegionReader.next_band` on a timer and reads
only the rows it names (a bounded number of bytes per tick, so a big canvas
never stalls the brush); the finished region goes to a worker thread, where
:meth:`LiveSession.state` turns it into a ``live_state``, or into nothing when
neither the pixels nor the settings changed. Frames come back through
:meth:`LiveSession.accept`, which keeps only the newest; the frame the artist keeps
goes back as :meth:`LiveSession.apply`, so the server records it in its history
(frames are not recorded otherwise). No host API here:
the Krita plug-in is the first user, and GIMP or a web canvas could be the next.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from paintwire.protocol import Capabilities, ErrorCode, ImagePayload, InputKind, PixelFormat, ProtocolError, Rect
from paintwire.protocol.live import LiveApply, LiveFrame, LiveStart, LiveStarted, LiveState, LiveStop

from .request import JobSettings, params_for_mode, reads_document

# How much a host's UI thread reads per tick: a 512x512 region at once; a
# 2048x2048 canvas in 16 ticks. About a millisecond of copying on a current machine.
READ_BYTES_PER_TICK = 1 << 20
# How often a host looks at the region (milliseconds): fast enough to follow a
# brush, slow enough that the reads stay a small share of the UI thread.
TICK_MS = 50
# States sent and not yet answered by a frame beyond which a host stops sending:
# the server would only drop them, and each costs the bytes of the region.
MAX_UNANSWERED = 2


def live_region(canvas_width: int, canvas_height: int, selection: Rect | None) -> Rect:
    """The part of the document a live stream shows: the selection's bounds (None when
    nothing is selected) on the canvas, or the whole canvas."""
    inside = selection.clipped(canvas_width, canvas_height) if selection is not None else None
    return inside or Rect(0, 0, canvas_width, canvas_height)


class RegionReader:
    """Reads a region band by band, at most ``budget`` bytes per band.

    The host asks for the next band (``next_band``), reads those rows with its
    own API and hands them back (``add``); when the last band is in, ``done``
    is true and ``pixels`` holds the region. Bands of one region are read at
    different ticks, so a stroke painted meanwhile may show in the lower bands
    only: the next region read has it whole.
    """

    def __init__(self, region: Rect, bytes_per_pixel: int = 4, budget: int = READ_BYTES_PER_TICK) -> None:
        self.region = region
        self.bytes_per_pixel = bytes_per_pixel
        self.rows_per_band = max(1, budget // max(1, region.width * bytes_per_pixel))
        self._bands: list[bytes] = []
        self._row = 0

    def next_band(self) -> tuple[int, int, int, int] | None:
        """The rectangle (x, y, width, height) in document coordinates to read next; None when done."""
        r = self.region
        if self._row >= r.height:
            return None
        rows = min(self.rows_per_band, r.height - self._row)
        return r.x, r.y + self._row, r.width, rows

    def add(self, data: bytes) -> None:
        band = self.next_band()
        assert band is not None, "the region is complete"
        expected = band[2] * band[3] * self.bytes_per_pixel
        if len(data) != expected:
            raise ValueError(f"a band of {band[2]}x{band[3]} needs {expected} bytes, got {len(data)}")
        self._bands.append(bytes(data))
        self._row += band[3]

    @property
    def done(self) -> bool:
        return self._row >= self.region.height

    @property
    def pixels(self) -> bytes:
        return b"".join(self._bands)


def live_start(stream: int, caps: Capabilities, settings: JobSettings, output_format: PixelFormat) -> LiveStart:
    """The ``live_start`` for the artist's settings. Raises ProtocolError with a sentence
    when the mode cannot stream (it reads nothing from the document)."""
    engine = caps.engine(settings.engine)
    mode = engine.mode(settings.mode) if engine is not None else None
    if engine is None or mode is None:
        raise ProtocolError(ErrorCode.UNKNOWN_MODE, "The server does not offer this mode (any more); choose another.", "mode")
    if not reads_document(mode):
        raise ProtocolError(ErrorCode.UNKNOWN_MODE, f"{mode.label} makes a picture from the prompt alone; Live needs a mode that "
                            "reads the canvas, such as Refine.", "mode")
    return LiveStart(stream, engine.name, mode.name, settings.model, params_for_mode(mode, settings.params), output_format)


@dataclass
class LiveSession:
    """One stream as a client sees it: what was sent, what to send, what to show."""

    start: LiveStart
    mask_wanted: bool  # the mode reads a mask: states carry the selection's
    mask_required: bool = False  # ... and one with nothing selected masks everything
    seq: int = 0
    shown: int = 0  # the seq of the newest frame accepted (states count from 1)
    answered: int = 0  # the newest seq a frame or an error answered
    seed: int | None = None
    kept_frames: int = 0  # frames the server keeps for live_apply (live_started); 0: it records none
    params: dict[str, Any] = field(default_factory=dict)  # the parameters the server has, as last sent
    _fingerprint: tuple | None = None

    @classmethod
    def open(cls, stream: int, caps: Capabilities, settings: JobSettings, output_format: PixelFormat) -> "LiveSession":
        start = live_start(stream, caps, settings, output_format)
        mode = caps.engine(start.engine).mode(start.mode)  # type: ignore[union-attr]
        mask = mode.input(InputKind.MASK) if mode is not None else None
        return cls(start, mask is not None, mask is not None and mask.required, params=dict(start.params))

    @property
    def unanswered(self) -> int:
        """States sent that no frame (or error) has answered yet, nor will (a newer frame covers them)."""
        return self.seq - self.answered

    def wants_state(self) -> bool:
        return self.unanswered < MAX_UNANSWERED

    def state(self, pixels: bytes, pixel_format: PixelFormat, region: Rect, selection: bytes | None,
              params: Mapping[str, Any]) -> LiveState | None:
        """The next ``live_state`` for a region read from the document, or None when
        neither its pixels, its mask nor the parameters changed since the last one sent.
        ``params``: the artist's current values for the mode (prompt, strength, seed...)."""
        changed = {k: v for k, v in params.items() if k not in self.params or self.params[k] != v}
        mask_bytes = selection if self.mask_wanted else None
        if mask_bytes is None and self.mask_required:
            mask_bytes = b"\xff" * (region.width * region.height)  # nothing selected: everything
        # A checksum, not a copy: the last state's bytes need not stay in memory to compare against.
        fingerprint = (region, pixel_format, zlib.crc32(pixels), zlib.crc32(mask_bytes) if mask_bytes is not None else None)
        if fingerprint == self._fingerprint and not changed:
            return None
        self._fingerprint = fingerprint
        self.params.update(changed)
        self.seq += 1
        image = ImagePayload(region.width, region.height, pixel_format, pixels)
        mask = ImagePayload(region.width, region.height, PixelFormat.L8, mask_bytes) if mask_bytes is not None else None
        return LiveState(self.start.stream, self.seq, image, mask, region.x, region.y, changed)

    def stop(self) -> LiveStop:
        return LiveStop(self.start.stream)

    def started(self, message: LiveStarted) -> None:
        self.seed = message.seed
        self.kept_frames = message.kept_frames

    def apply(self, frame: LiveFrame) -> LiveApply | None:
        """The ``live_apply`` that has the server record ``frame`` (the one the artist just
        kept) in its history; None from a server that keeps no frames (an older one)."""
        if self.kept_frames <= 0 or frame.stream != self.start.stream:
            return None
        return LiveApply(self.start.stream, frame.seq)

    def accept(self, frame: LiveFrame) -> bool:
        """Whether to show ``frame``: only one newer than the frame shown (frames of a
        stream come in order; this guards a host that queues them)."""
        self.answered = max(self.answered, frame.seq)
        if frame.stream != self.start.stream or frame.seq <= self.shown:
            return False
        self.shown = frame.seq
        if frame.seed is not None:
            self.seed = frame.seed
        return True

    def answered_by_error(self, seq: int | None) -> None:
        if seq is not None:
            self.answered = max(self.answered, seq)
