"""Live streams: the client pushes the current state of a region whenever it
changes, and the server answers with frames made from the newest state.

A stream is opened with ``live_start`` (engine, mode, model, parameters, as a
job would name them), fed with ``live_state`` (the region's pixels, its mask
and any parameters that changed) and closed with ``live_stop``; ``live_apply``
tells the server that the artist kept a frame (it is then recorded as a result). The server
keeps at most one generation in flight per stream and always works on the
newest state: states that arrive while one is being made replace each other,
and ``live_frame`` says which state a frame was made from (``seq``) and how
many states were dropped so far. docs/protocol.md section 17 describes the
same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from .errors import ErrorCode, ProtocolError
from .images import ImagePayload, PixelFormat
from .messages import CLIENT_MESSAGES, SERVER_MESSAGES, _get, _name, check_image_and_mask

MAX_STREAM_ID = 2**53  # stream ids and sequence numbers: non-negative integers below this
# A client that opens more live streams than this gets too_many_streams: each one
# holds a model warm and a state or two in memory.
MAX_STREAMS_PER_CLIENT = 2


class StopReason:
    """Why a stream ended (``live_stopped.reason``); a client treats an unknown one as ``failed``."""

    REQUESTED = "requested"  # the client sent live_stop
    FAILED = "failed"  # the stream could not start or go on; a live_error before it says why
    SHUTTING_DOWN = "shutting_down"  # the server is stopping


class LiveStateError(ProtocolError):
    """A live_state that was refused, with the stream and state it named, so the
    refusal can go to that stream (as a submit's refusal names its ref)."""

    def __init__(self, error: ProtocolError, stream: int, seq: int) -> None:
        super().__init__(error.code, error.message, error.field)
        self.stream, self.seq = stream, seq

    @classmethod
    def about(cls, error: ProtocolError, obj: Mapping[str, Any]) -> ProtocolError:
        """``error`` as one about the state ``obj`` names, when it names a stream and a
        seq that can be read; else ``error`` itself (it is then about the connection)."""
        stream, seq = obj.get("stream"), obj.get("seq")
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_STREAM_ID for v in (stream, seq)):
            return cls(error, stream, seq)  # type: ignore[arg-type]
        return error


def _counter(obj: Mapping[str, Any], key: str) -> int:
    value = _get(obj, key, int, "")
    if not 0 <= value < MAX_STREAM_ID:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{key} must be a non-negative integer below 2**53.", key)
    return value


def _params(obj: Mapping[str, Any]) -> dict[str, Any]:
    params = _get(obj, "params", dict, "", required=False, default={})
    if any(not isinstance(k, str) for k in params):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "Parameter names must be strings.", "params")
    return params


# --- client to server ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveStart:
    """Open live stream ``stream`` (the client's own number for it). ``engine``,
    ``mode``, ``model``, ``params`` and ``output_format`` mean what they mean in a
    job; a seed of -1 (or none) is picked once and kept for the whole stream."""

    TYPE: ClassVar[str] = "live_start"
    stream: int
    engine: str
    mode: str
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    output_format: PixelFormat = PixelFormat.RGBA8

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream, "engine": self.engine, "mode": self.mode, "model": self.model,
                "params": dict(self.params), "output_format": self.output_format.value}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "LiveStart":
        out_name = _get(obj, "output_format", str, "", required=False, default=PixelFormat.RGBA8.value)
        if out_name not in (PixelFormat.RGBA8.value, PixelFormat.BGRA8.value):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "output_format must be rgba8 or bgra8.", "output_format")
        return cls(_counter(obj, "stream"), _name(obj, "engine", ""), _name(obj, "mode", ""), _name(obj, "model", "", required=False),
                   _params(obj), PixelFormat(out_name))


@dataclass(frozen=True)
class LiveState:
    """The newest state of stream ``stream``: the region's pixels (``image``, placed at
    ``x``, ``y`` in the document), its mask where the mode takes one, and the
    parameters that changed since the last state (they stay changed)."""

    TYPE: ClassVar[str] = "live_state"
    stream: int
    seq: int  # the client's number for this state, echoed by the frame made from it
    image: ImagePayload
    mask: ImagePayload | None = None
    x: int = 0
    y: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream, "seq": self.seq, "image": self.image.to_wire(),
                "mask": self.mask.to_wire() if self.mask else None, "x": self.x, "y": self.y, "params": dict(self.params)}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any], max_pixels: int | None = None) -> "LiveState":
        stream, seq = _counter(obj, "stream"), _counter(obj, "seq")
        try:
            if obj.get("image") is None:
                raise ProtocolError(ErrorCode.BAD_IMAGE, "A live state needs the region's pixels in 'image'.", "image")
            image = ImagePayload.from_wire(obj["image"], "image", max_pixels)
            mask = ImagePayload.from_wire(obj["mask"], "mask", max_pixels) if obj.get("mask") is not None else None
            check_image_and_mask(image, mask, "")
            x, y = _get(obj, "x", int, "", False, 0), _get(obj, "y", int, "", False, 0)
            if x < 0 or y < 0:
                raise ProtocolError(ErrorCode.BAD_MESSAGE, "x and y place the region in the document; they cannot be negative.", "x")
            return cls(stream, seq, image, mask, x, y, _params(obj))
        except ProtocolError as exc:
            raise LiveStateError(exc, stream, seq) from None


@dataclass(frozen=True)
class LiveStop:
    """Close stream ``stream``: its queued state is dropped and a running generation
    stops at its next step. The server answers ``live_stopped``."""

    TYPE: ClassVar[str] = "live_stop"
    stream: int

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "LiveStop":
        return cls(_counter(obj, "stream"))


@dataclass(frozen=True)
class LiveApply:
    """The artist applied frame ``seq`` of stream ``stream`` (kept it in the document): the
    server records it in its history as a result, with the stream's settings. Frames
    are not recorded otherwise. Only for a server whose ``live_started`` said it keeps
    frames (``kept_frames``), and only for one of the newest that many frames."""

    TYPE: ClassVar[str] = "live_apply"
    stream: int
    seq: int

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream, "seq": self.seq}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "LiveApply":
        return cls(_counter(obj, "stream"), _counter(obj, "seq"))


# --- server to client ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveStarted:
    """The stream is open; ``seed`` is the seed every frame uses until a state changes it."""

    TYPE: ClassVar[str] = "live_started"
    stream: int
    seed: int | None = None  # None when the mode takes no seed
    # How many of the stream's newest frames the server keeps for live_apply; 0 (an older
    # server, which leaves the key out): send no live_apply.
    kept_frames: int = 0

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream, "seed": self.seed, "kept_frames": self.kept_frames}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "LiveStarted":
        return cls(_get(obj, "stream", int, ""), _get(obj, "seed", int, "", False), _get(obj, "kept_frames", int, "", False, 0))


@dataclass(frozen=True)
class LiveFrame:
    """A picture made from state ``seq``, to show at ``x``, ``y`` in the document.
    ``dropped``: states of this stream replaced by newer ones before any work was
    done on them, so far. ``run_ms`` is the server's time on this frame from the
    moment it started, ``model_ms`` the engine's share of it."""

    TYPE: ClassVar[str] = "live_frame"
    stream: int
    seq: int
    image: ImagePayload
    x: int
    y: int
    dropped: int = 0
    seed: int | None = None
    run_ms: float = 0.0
    model_ms: float = 0.0

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream, "seq": self.seq, "image": self.image.to_wire(), "x": self.x, "y": self.y,
                "dropped": self.dropped, "seed": self.seed, "run_ms": float(self.run_ms), "model_ms": float(self.model_ms)}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "LiveFrame":
        return cls(
            _get(obj, "stream", int, ""), _get(obj, "seq", int, ""), ImagePayload.from_wire(obj.get("image"), "image"),
            _get(obj, "x", int, ""), _get(obj, "y", int, ""), _get(obj, "dropped", int, "", False, 0), _get(obj, "seed", int, "", False),
            float(_get(obj, "run_ms", (float, int), "", False, 0.0)), float(_get(obj, "model_ms", (float, int), "", False, 0.0)),
        )


@dataclass(frozen=True)
class LiveError:
    """Something about stream ``stream`` went wrong. With ``seq`` set, that state was
    refused or its frame failed and the stream goes on; without it, the stream
    could not start or continue (``live_stopped`` follows)."""

    TYPE: ClassVar[str] = "live_error"
    stream: int
    code: ErrorCode
    message: str
    seq: int | None = None
    field: str | None = None

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream, "code": self.code.value, "message": self.message, "seq": self.seq,
                "field": self.field}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "LiveError":
        try:
            code = ErrorCode(_get(obj, "code", str, ""))
        except ValueError:
            code = ErrorCode.INTERNAL  # a newer server's code: keep the sentence
        return cls(_get(obj, "stream", int, ""), code, _get(obj, "message", str, ""), _get(obj, "seq", int, "", False),
                   _get(obj, "field", str, "", False))


@dataclass(frozen=True)
class LiveStopped:
    """Stream ``stream`` is closed and sends nothing more; its id may be used again."""

    TYPE: ClassVar[str] = "live_stopped"
    stream: int
    reason: str = StopReason.REQUESTED

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "stream": self.stream, "reason": self.reason}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "LiveStopped":
        return cls(_get(obj, "stream", int, ""), _get(obj, "reason", str, "", False, StopReason.FAILED))


LiveClientMessage = LiveStart | LiveState | LiveStop | LiveApply
LiveServerMessage = LiveStarted | LiveFrame | LiveError | LiveStopped
LIVE_CLIENT_TYPES = (LiveStart, LiveState, LiveStop, LiveApply)
LIVE_SERVER_TYPES = (LiveStarted, LiveFrame, LiveError, LiveStopped)

# One table per direction for every message: the live ones join the job messages there.
CLIENT_MESSAGES.update({m.TYPE: m for m in LIVE_CLIENT_TYPES})
SERVER_MESSAGES.update({m.TYPE: m for m in LIVE_SERVER_TYPES})
