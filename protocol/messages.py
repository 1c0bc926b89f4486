"""The messages of protocol version 1, as dataclasses.

Each message knows its wire form (a msgpack map with a ``type`` key) and how
to read itself back with validation. Client messages: hello, submit, cancel,
rescan, preprocess. Server messages: welcome, capabilities, queued, started,
progress, preview, result, error, cancelled, preprocessed (the two preprocess
messages live in controls.py), recall (protocol/recall.py). docs/protocol.md
describes the same set and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from .controls import ControlInput, ControlKindSpec, Preprocess, Preprocessed, read_controls
from .crops import Crop
from .errors import ErrorCode, ProtocolError
from .fields import MAX_NAME, read_ref
from .fields import read as _get
from .fields import read_name as _name
from .images import ImagePayload, PixelFormat
from .params import ModeSpec
from .recall import Recall
from .transfer import NO_OFFER, OLD_SERVER, TransferOffer, TransferTerms
from .vocabulary import Phase

PROTOCOL_VERSION = 1
MAX_JOB_ID = 64


# --- client to server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """First message of every connection."""

    TYPE: ClassVar[str] = "hello"
    client: str  # "name/version" of the client, for logs and the server's session list
    protocol: int = PROTOCOL_VERSION
    token: str | None = None  # required when the server was started with a token
    # True: send me a ``capabilities`` message whenever they change (models added or
    # removed). Off by default, so that a client that does not know the message never gets it.
    updates: bool = False
    # How this client can take pixels: blob frames, shared memory (protocol/transfer.py).
    transfer: TransferOffer = NO_OFFER
    # True: this client can take a ``recall`` (settings pushed from the server's history).
    recall: bool = False

    def to_wire(self) -> dict:
        out = {"type": self.TYPE, "protocol": self.protocol, "client": self.client, "token": self.token}
        if self.updates:  # left out when off: the same bytes as before the field existed
            out["updates"] = True
        if self.transfer != NO_OFFER:
            out["transfer"] = self.transfer.to_wire()
        if self.recall:
            out["recall"] = True
        return out

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Hello":
        return cls(
            client=_name(obj, "client", ""),
            protocol=_get(obj, "protocol", int, ""),
            token=_get(obj, "token", str, "", required=False),
            updates=_get(obj, "updates", bool, "", required=False, default=False),
            transfer=TransferOffer.from_wire(obj.get("transfer")),
            recall=_get(obj, "recall", bool, "", required=False, default=False),
        )


def check_image_and_mask(image: ImagePayload | None, mask: ImagePayload | None, where: str) -> None:
    """The rules an image and its mask follow wherever they travel together (a job,
    a live state): the image is colour, the mask l8 and the image's size."""
    if image is not None and image.format is PixelFormat.L8:
        raise ProtocolError(ErrorCode.BAD_IMAGE, "The input image must be rgba8 or bgra8; l8 is for masks.", f"{where}image.format")
    if mask is not None:
        if mask.format is not PixelFormat.L8:
            raise ProtocolError(ErrorCode.BAD_MASK, f"A mask must be l8 (one byte per pixel), got {mask.format.value}.", f"{where}mask.format")
        if image is None:
            raise ProtocolError(ErrorCode.BAD_MASK, "A mask was sent without an image to apply it to.", f"{where}mask")
        if (mask.width, mask.height) != (image.width, image.height):
            raise ProtocolError(
                ErrorCode.BAD_MASK,
                f"The mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; they must match.",
                f"{where}mask",
            )


@dataclass(frozen=True)
class JobRequest:
    """What to do: an engine, one of its modes, the input and the parameters.

    ``image`` and ``mask`` are the whole canvas, or with ``crop`` the part of it
    the mode reads, at ``crop``'s offset on its declared canvas (protocol/crops.py);
    results are placed on the canvas either way. Result layers come back in
    ``output_format`` so a host can write them without converting (Krita: bgra8).
    """

    engine: str
    mode: str
    image: ImagePayload | None = None
    mask: ImagePayload | None = None
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    output_format: PixelFormat = PixelFormat.RGBA8
    crop: Crop | None = None  # None: the image is the whole canvas
    controls: tuple[ControlInput, ...] = ()  # control layers (protocol/controls.py), with the geometry of image (and crop)
    # The history id of the result this job starts from (its settings were recalled), for the history's record.
    parent: int | None = None

    def to_wire(self) -> dict:
        out = {
            "engine": self.engine,
            "mode": self.mode,
            "model": self.model,
            "image": self.image.to_wire() if self.image else None,
            "mask": self.mask.to_wire() if self.mask else None,
            "params": dict(self.params),
            "output_format": self.output_format.value,
        }
        if self.controls:  # left out when none: the same bytes as before the field existed
            out["controls"] = [c.to_wire() for c in self.controls]
        if self.crop is not None:  # left out for whole canvases: the same bytes as before crops existed
            out["crop"] = self.crop.to_wire()
        if self.parent is not None:  # left out when absent: the same bytes as before the field existed
            out["parent"] = self.parent
        return out

    @property
    def canvas_size(self) -> tuple[int, int] | None:
        """The artist's canvas: the crop's declared size, else the image's; None without an image."""
        if self.crop is not None:
            return self.crop.canvas_width, self.crop.canvas_height
        return (self.image.width, self.image.height) if self.image is not None else None

    @classmethod
    def from_wire(cls, obj: Any, max_pixels: int | None = None) -> "JobRequest":
        where = "job."
        if not isinstance(obj, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "Field 'job' must be a map.", "job")
        image_obj, mask_obj = obj.get("image"), obj.get("mask")
        image = ImagePayload.from_wire(image_obj, "job.image", max_pixels) if image_obj is not None else None
        mask = ImagePayload.from_wire(mask_obj, "job.mask", max_pixels) if mask_obj is not None else None
        check_image_and_mask(image, mask, where)
        crop = Crop.from_wire(obj["crop"]) if obj.get("crop") is not None else None
        if crop is not None:
            if image is None:
                raise ProtocolError(ErrorCode.BAD_CROP, "A crop was sent without an image.", "job.crop")
            crop.check_fits(image.width, image.height)
        params = _get(obj, "params", dict, where, required=False, default={})
        for key in params:
            if not isinstance(key, str):
                raise ProtocolError(ErrorCode.BAD_MESSAGE, "Parameter names must be strings.", "job.params")
        out_name = _get(obj, "output_format", str, where, required=False, default=PixelFormat.RGBA8.value)
        if out_name not in (PixelFormat.RGBA8.value, PixelFormat.BGRA8.value):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "output_format must be rgba8 or bgra8.", "job.output_format")
        parent = _get(obj, "parent", int, where, required=False)
        if parent is not None and not 0 < parent < 2**63:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "parent must be a history id, a positive integer.", "job.parent")
        return cls(
            engine=_name(obj, "engine", where),
            mode=_name(obj, "mode", where),
            model=_name(obj, "model", where, required=False),
            image=image,
            mask=mask,
            params=params,
            output_format=PixelFormat(out_name),
            controls=read_controls(obj, where, max_pixels),
            crop=crop,
            parent=parent,
        )


@dataclass(frozen=True)
class Submit:
    """Ask for a job. ``ref`` is the client's own number for it, echoed in ``queued``
    (which carries the server's job id) or in the ``error`` that rejects it."""

    TYPE: ClassVar[str] = "submit"
    ref: int
    job: JobRequest

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "ref": self.ref, "job": self.job.to_wire()}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any], max_pixels: int | None = None) -> "Submit":
        return cls(ref=read_ref(obj), job=JobRequest.from_wire(obj.get("job"), max_pixels))


@dataclass(frozen=True)
class Cancel:
    TYPE: ClassVar[str] = "cancel"
    job: str

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "job": self.job}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Cancel":
        return cls(job=_name(obj, "job", "", limit=MAX_JOB_ID))


@dataclass(frozen=True)
class Rescan:
    """Ask the server to look at its model folders again now; it answers with a
    ``capabilities`` message (changed or not)."""

    TYPE: ClassVar[str] = "rescan"

    def to_wire(self) -> dict:
        return {"type": self.TYPE}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Rescan":
        return cls()


# --- server to client ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    name: str
    engine: str
    kind: str  # a ModelKind value, or a newer kind this side does not know
    label: str = ""
    # Why this model cannot be used (a missing tokenizer, an unsupported layout);
    # empty when it can. Clients show the reason instead of offering the model.
    problem: str = ""
    # A checkpoint's model family ("sd15", "sdxl", "flux", ...; its kind may name a variant
    # such as "sdxl-inpaint"); empty for other kinds and from older servers.
    family: str = ""
    # How a checkpoint is placed in the device's memory (offload, quantisation, what is
    # freed after use), one sentence for people; empty when not known and from older servers.
    memory: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem

    def to_wire(self) -> dict:
        out = {"name": self.name, "engine": self.engine, "kind": self.kind, "label": self.label or self.name}
        if self.problem:
            out["problem"] = self.problem
        if self.family:
            out["family"] = self.family
        if self.memory:
            out["memory"] = self.memory
        return out

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "ModelInfo":
        return cls(obj["name"], obj["engine"], obj["kind"], obj.get("label", ""), obj.get("problem") or "", str(obj.get("family") or ""),
                   str(obj.get("memory") or ""))


@dataclass(frozen=True)
class DeviceInfo:
    """Where an engine computes: the device, the dtype its models run in, and its
    memory in bytes (free as measured when the capabilities were made; 0: unknown)."""

    name: str  # "NVIDIA GeForce RTX 3060", "AMD Radeon RX 7900 XTX (ROCm)", "Apple GPU (MPS)", "CPU"
    kind: str  # cuda, rocm, mps or cpu
    dtype: str  # fp16, bf16 or fp32
    total_memory: int = 0
    free_memory: int = 0
    warning: str = ""  # a sentence for the operator, e.g. the dtype runs slowly on this device; "" if none

    def summary(self) -> str:
        """One line for a status bar: "NVIDIA GeForce RTX 3060, fp16, 10.8 of 12.0 GiB free"."""
        memory = f", {self.free_memory / 2**30:.1f} of {self.total_memory / 2**30:.1f} GiB free" if self.total_memory else ""
        warning = f" (warning: {self.warning})" if self.warning else ""
        return f"{self.name}, {self.dtype}{memory}{warning}"

    def to_wire(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "dtype": self.dtype, "total_memory": self.total_memory, "free_memory": self.free_memory}
        if self.warning:
            out["warning"] = self.warning
        return out

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "DeviceInfo":
        warning = obj.get("warning", "")
        return cls(str(obj["name"]), str(obj["kind"]), str(obj["dtype"]), int(obj.get("total_memory", 0)), int(obj.get("free_memory", 0)),
                   warning if isinstance(warning, str) else "")


class EngineStatus:
    """Where an engine stands (``EngineInfo.status``); a client treats an unknown one as ``ready``
    and goes by ``notice`` and ``modes`` as always."""

    READY = "ready"
    # Still starting (importing its libraries, scanning its model folders): no modes yet, its
    # notice says so, and a ``capabilities`` message follows when it is ready.
    STARTING = "starting"


@dataclass(frozen=True)
class EngineInfo:
    name: str
    label: str
    modes: tuple[ModeSpec, ...]
    # Empty when the engine can work; otherwise a sentence for the user saying what
    # to add (e.g. no model installed): its modes can then only fail.
    notice: str = ""
    device: DeviceInfo | None = None  # None: the engine uses no accelerator (the classical engine)
    controls: tuple[ControlKindSpec, ...] = ()  # the kinds of control layer its modes take
    status: str = EngineStatus.READY

    @property
    def starting(self) -> bool:
        return self.status == EngineStatus.STARTING

    def mode(self, name: str) -> ModeSpec | None:
        return next((m for m in self.modes if m.name == name), None)

    def control(self, name: str) -> ControlKindSpec | None:
        return next((c for c in self.controls if c.name == name), None)

    @property
    def usable(self) -> bool:
        return not self.notice

    def to_wire(self) -> dict:
        out = {"name": self.name, "label": self.label, "modes": [m.to_wire() for m in self.modes], "notice": self.notice,
               "device": self.device.to_wire() if self.device else None, "status": self.status}
        if self.controls:
            out["controls"] = [c.to_wire() for c in self.controls]
        return out

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "EngineInfo":
        return cls(
            obj["name"], obj.get("label", obj["name"]), tuple(ModeSpec.from_wire(m) for m in obj.get("modes", ())),
            obj["notice"] if isinstance(obj.get("notice"), str) else "",
            DeviceInfo.from_wire(obj["device"]) if isinstance(obj.get("device"), dict) else None,
            tuple(ControlKindSpec.from_wire(c) for c in obj.get("controls", ())),
            obj["status"] if isinstance(obj.get("status"), str) else EngineStatus.READY,
        )


@dataclass(frozen=True)
class Limits:
    """The server's limits; requests over them get TOO_LARGE, INVALID_PARAM or QUEUE_FULL."""

    max_message_bytes: int
    max_pixels: int
    max_side: int
    max_queued_per_client: int

    def to_wire(self) -> dict:
        return {
            "max_message_bytes": self.max_message_bytes,
            "max_pixels": self.max_pixels,
            "max_side": self.max_side,
            "max_queued_per_client": self.max_queued_per_client,
        }

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Limits":
        return cls(**{k: int(obj[k]) for k in ("max_message_bytes", "max_pixels", "max_side", "max_queued_per_client")})


@dataclass(frozen=True)
class Capabilities:
    engines: tuple[EngineInfo, ...]
    models: tuple[ModelInfo, ...]
    limits: Limits
    formats: tuple[str, ...] = tuple(f.value for f in PixelFormat)
    encodings: tuple[str, ...] = ("raw", "png")

    def engine(self, name: str) -> EngineInfo | None:
        return next((e for e in self.engines if e.name == name), None)

    def to_wire(self) -> dict:
        return {
            "engines": [e.to_wire() for e in self.engines],
            "models": [m.to_wire() for m in self.models],
            "limits": self.limits.to_wire(),
            "formats": list(self.formats),
            "encodings": list(self.encodings),
        }

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Capabilities":
        return cls(
            engines=tuple(EngineInfo.from_wire(e) for e in obj.get("engines", ())),
            models=tuple(ModelInfo.from_wire(m) for m in obj.get("models", ())),
            limits=Limits.from_wire(obj["limits"]),
            formats=tuple(obj.get("formats", ())),
            encodings=tuple(obj.get("encodings", ())),
        )


@dataclass(frozen=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    server: str  # "paintwire/<version>"
    capabilities: Capabilities
    protocol: int = PROTOCOL_VERSION
    transfer: TransferTerms = TransferTerms()  # absent on the wire (older servers): inline msgpack only
    # This connection's id on the server: what GET /api/clients lists and POST
    # /api/history/ID/send takes. None from servers older than the field.
    client_id: str | None = None

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "protocol": self.protocol, "server": self.server, "capabilities": self.capabilities.to_wire(),
                "transfer": self.transfer.to_wire(), "client_id": self.client_id}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Welcome":
        try:
            caps = Capabilities.from_wire(_get(obj, "capabilities", dict, ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Malformed capabilities: {exc}.", "capabilities") from None
        return cls(server=_get(obj, "server", str, ""), capabilities=caps, protocol=_get(obj, "protocol", int, ""),
                   transfer=TransferTerms.from_wire(obj.get("transfer")) if "transfer" in obj else OLD_SERVER,
                   client_id=_get(obj, "client_id", str, "", required=False))


@dataclass(frozen=True)
class CapabilitiesUpdate:
    """The server's capabilities changed (models found or gone), or a ``rescan`` was
    asked for. Sent only to clients that said ``updates`` in hello, and to any
    client that sent ``rescan``."""

    TYPE: ClassVar[str] = "capabilities"
    capabilities: Capabilities

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "capabilities": self.capabilities.to_wire()}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "CapabilitiesUpdate":
        try:
            return cls(Capabilities.from_wire(_get(obj, "capabilities", dict, "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Malformed capabilities: {exc}.", "capabilities") from None


@dataclass(frozen=True)
class Queued:
    """The job was accepted (first event of every job) or moved up in the queue.
    ``position`` counts the jobs that will run before it: 0 means next."""

    TYPE: ClassVar[str] = "queued"
    job: str
    ref: int
    position: int

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "job": self.job, "ref": self.ref, "position": self.position}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Queued":
        return cls(_get(obj, "job", str, ""), _get(obj, "ref", int, ""), _get(obj, "position", int, ""))


@dataclass(frozen=True)
class Started:
    TYPE: ClassVar[str] = "started"
    job: str

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "job": self.job}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Started":
        return cls(_get(obj, "job", str, ""))


# What each phase counts in "k of n", for the text clients show.
_PHASE_UNITS = {Phase.DENOISING: "step", Phase.ENCODING: "tile", Phase.DECODING: "tile", Phase.UPSCALING: "tile",
                Phase.LOADING_MODEL: "part"}


@dataclass(frozen=True)
class Progress:
    """``step`` of ``total`` of the current phase is done: 0 when a phase starts,
    ``total`` when it ends; ``total`` changes between phases. ``fraction`` is the
    whole job's estimated share done (0 to 1, never going back), across phases."""

    TYPE: ClassVar[str] = "progress"
    job: str
    step: int
    total: int
    stage: str = ""  # a word for people: "denoising", "inpainting", "decoding"
    phase: str = ""  # a Phase value; "" from servers that do not send one
    fraction: float | None = None  # None from servers that do not send one

    def to_wire(self) -> dict:
        out: dict[str, Any] = {"type": self.TYPE, "job": self.job, "step": self.step, "total": self.total, "stage": self.stage}
        if self.phase:
            out["phase"] = self.phase
        if self.fraction is not None:
            out["fraction"] = float(self.fraction)
        return out

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Progress":
        fraction = _get(obj, "fraction", (float, int), "", False)
        return cls(
            _get(obj, "job", str, ""), _get(obj, "step", int, ""), _get(obj, "total", int, ""), _get(obj, "stage", str, "", False, ""),
            _get(obj, "phase", str, "", False, ""), None if fraction is None else min(1.0, max(0.0, float(fraction))),
        )

    @property
    def overall(self) -> float:
        """The whole job's share done: ``fraction``, or ``step / total`` from older servers."""
        if self.fraction is not None:
            return self.fraction
        return min(1.0, max(0.0, self.step / self.total)) if self.total > 0 else 0.0

    def describe(self) -> str:
        """One line for people: "Denoising: step 3 of 20", "Loading model", "Decoding: tile 2 of 9"."""
        try:
            phase: Phase | None = Phase(self.phase)
        except ValueError:
            phase = None
        if phase is None or phase is Phase.WORKING:
            name, unit = (self.stage.capitalize() if self.stage else "Working"), "step"
        else:
            name, unit = phase.label, _PHASE_UNITS.get(phase)
        if unit and (self.total > 1 or (phase is Phase.DENOISING and self.total > 0)):
            return f"{name}: {unit} {self.step} of {self.total}"
        return name


@dataclass(frozen=True)
class Preview:
    """A small, rough image of the job's current state, for live feedback.
    ``x``, ``y``, ``width`` and ``height`` give the document region it shows."""

    TYPE: ClassVar[str] = "preview"
    job: str
    image: ImagePayload
    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0

    def to_wire(self) -> dict:
        return {
            "type": self.TYPE, "job": self.job, "image": self.image.to_wire(),
            "x": self.x, "y": self.y, "width": self.width, "height": self.height,
        }

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Preview":
        return cls(
            _get(obj, "job", str, ""), ImagePayload.from_wire(obj.get("image"), "image"),
            _get(obj, "x", int, "", False, 0), _get(obj, "y", int, "", False, 0),
            _get(obj, "width", int, "", False, 0), _get(obj, "height", int, "", False, 0),
        )


@dataclass(frozen=True)
class Layer:
    """One result image, placed in the document at (x, y).

    The alpha channel says how the layer blends over what is below it: a
    layer placed over the unchanged input reproduces the server's composite
    exactly, and pixels with alpha 0 leave the document as it was.
    """

    image: ImagePayload
    x: int
    y: int
    name: str
    seed: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {"image": self.image.to_wire(), "x": self.x, "y": self.y, "name": self.name, "seed": self.seed, "settings": dict(self.settings)}

    @classmethod
    def from_wire(cls, obj: Any, where: str) -> "Layer":
        if not isinstance(obj, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "A layer must be a map.", where)
        return cls(
            image=ImagePayload.from_wire(obj.get("image"), f"{where}.image"),
            x=_get(obj, "x", int, where + "."),
            y=_get(obj, "y", int, where + "."),
            name=_get(obj, "name", str, where + "."),
            seed=_get(obj, "seed", int, where + ".", False),
            settings=_get(obj, "settings", dict, where + ".", False, {}),
        )


@dataclass(frozen=True)
class Result:
    """The job's output: layers placed on a canvas of ``width`` x ``height``
    (the input's size, or the new size after an upscale or expand).
    ``offset_x``, ``offset_y``: where the input's top-left corner lies on that
    canvas (non-zero when an expand grew it to the left or top)."""

    TYPE: ClassVar[str] = "result"
    job: str
    layers: tuple[Layer, ...]
    width: int
    height: int
    offset_x: int = 0
    offset_y: int = 0

    def to_wire(self) -> dict:
        return {
            "type": self.TYPE, "job": self.job, "layers": [l.to_wire() for l in self.layers], "width": self.width, "height": self.height,
            "offset_x": self.offset_x, "offset_y": self.offset_y,
        }

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Result":
        layers = _get(obj, "layers", list, "")
        return cls(
            _get(obj, "job", str, ""),
            tuple(Layer.from_wire(l, f"layers.{i}") for i, l in enumerate(layers)),
            _get(obj, "width", int, ""),
            _get(obj, "height", int, ""),
            _get(obj, "offset_x", int, "", False, 0),
            _get(obj, "offset_y", int, "", False, 0),
        )


@dataclass(frozen=True)
class Error:
    """A rejection. With ``job`` set it ends that job; with ``ref`` set it rejects a
    submit; with neither it is about the connection (and may precede closing it)."""

    TYPE: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    field: str | None = None
    job: str | None = None
    ref: int | None = None

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "code": self.code.value, "message": self.message, "field": self.field, "job": self.job, "ref": self.ref}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Error":
        try:
            code = ErrorCode(obj.get("code"))
        except ValueError:
            code = ErrorCode.INTERNAL  # a newer server's code: keep the sentence, degrade the code
        return cls(
            code=code,
            message=_get(obj, "message", str, ""),
            field=_get(obj, "field", str, "", False),
            job=_get(obj, "job", str, "", False),
            ref=_get(obj, "ref", int, "", False),
        )

    @classmethod
    def from_exception(cls, exc: ProtocolError, job: str | None = None, ref: int | None = None) -> "Error":
        return cls(exc.code, exc.message, exc.field, job, ref if ref is not None else exc.ref)


@dataclass(frozen=True)
class Cancelled:
    TYPE: ClassVar[str] = "cancelled"
    job: str

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "job": self.job}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Cancelled":
        return cls(_get(obj, "job", str, ""))


ClientMessage = Hello | Submit | Cancel | Rescan | Preprocess
ServerMessage = (
    Welcome | CapabilitiesUpdate | Queued | Started | Progress | Preview | Result | Error | Cancelled | Preprocessed | Recall
)
JobEvent = Queued | Started | Progress | Preview | Result | Error | Cancelled

CLIENT_MESSAGES: dict[str, type] = {m.TYPE: m for m in (Hello, Submit, Cancel, Rescan, Preprocess)}
SERVER_MESSAGES: dict[str, type] = {
    m.TYPE: m
    for m in (Welcome, CapabilitiesUpdate, Queued, Started, Progress, Preview, Result, Error, Cancelled, Preprocessed, Recall)
}
# Events after which a job is over and its id is forgotten.
FINAL_EVENTS = (Result, Error, Cancelled)
