"""From what the artist chose to a JobRequest: the one place for request rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from paintwire.protocol import (
    Capabilities, Crop, ErrorCode, ImagePayload, InputKind, JobRequest, ModeSpec, PixelFormat, ProtocolError,
)
from paintwire.protocol.crops import bytes_bounds, crop_bytes, needed_box
from paintwire.protocol.form import NEGATIVE_PROMPT, PROMPT, PROMPT_PARAMS  # noqa: F401  (the plug-ins import them from here)

from paintwire.protocol.rect import Rect

from .snapshot import Snapshot

SEED = "seed"


@dataclass(frozen=True)
class JobSettings:
    """What the artist chose: everything but the pixels. ``mode`` is the server's mode name."""

    mode: str
    engine: str
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    parent: int | None = None  # the server's history id these settings were recalled from

    def to_dict(self) -> dict:
        out = {"mode": self.mode, "engine": self.engine, "model": self.model, "params": dict(self.params)}
        if self.parent is not None:
            out["parent"] = self.parent
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "JobSettings":
        parent = obj.get("parent")
        return cls(str(obj["mode"]), str(obj["engine"]), obj.get("model"), dict(obj.get("params") or {}),
                   parent if isinstance(parent, int) and not isinstance(parent, bool) else None)


def params_for_mode(mode: ModeSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that ``mode`` takes, in its order; values for other modes are dropped.

    Unknown names are an error on the server, so a panel that keeps values
    across mode switches sends only those of the current mode. Values whose
    type does not fit (an old setting of a parameter that changed type) are
    left out, so the server's default applies.
    """
    out: dict[str, Any] = {}
    for spec in mode.params:
        if spec.name not in values:
            continue
        try:
            out[spec.name] = spec.check(values[spec.name], f"job.params.{spec.name}")
        except ProtocolError:
            continue
    return out


def reads_document(mode: ModeSpec) -> bool:
    """Whether a job of ``mode`` sends pixels (Generate sends only the canvas size)."""
    return mode.input(InputKind.IMAGE) is not None


def _mode(caps: Capabilities, settings: JobSettings) -> ModeSpec:
    engine = caps.engine(settings.engine)
    if engine is None:
        raise ProtocolError(ErrorCode.UNKNOWN_ENGINE, f"The server has no engine {settings.engine!r} (any more).", "job.engine")
    mode = engine.mode(settings.mode)
    if mode is None:
        raise ProtocolError(ErrorCode.UNKNOWN_MODE, f"Engine {engine.label!r} cannot do {settings.mode!r}.", "job.mode")
    return mode


def _with_defaults(mode: ModeSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    return {spec.name: params.get(spec.name, spec.default) for spec in mode.params}


def read_area(caps: Capabilities, settings: JobSettings, width: int, height: int, selection: Rect | None) -> Rect:
    """The part of a ``width`` x ``height`` document a host must read for this job:
    the mode's crop rule around the selection's bounds (``selection``; None when
    nothing is selected, or when the mask comes from a layer), or the whole canvas.
    Reading only this cuts the host's own copying (Krita's pixelData, GIMP's buffer get)."""
    mode = _mode(caps, settings)
    return needed_box(mode.crop, _with_defaults(mode, params_for_mode(mode, settings.params)), selection, width, height)


def build_request(
    snapshot: Snapshot,
    caps: Capabilities,
    settings: JobSettings,
    output_format: PixelFormat = PixelFormat.RGBA8,
) -> JobRequest:
    """A JobRequest for ``settings`` applied to ``snapshot``.

    The image goes along when the mode has an image input; the mask when it
    has a mask input and it is required or there is something to send (a
    selection or a mask layer): a required mask with nothing selected is the
    whole canvas. Only the part of the canvas the mode reads is sent, with its
    ``crop``, when the mode's crop rule allows it (protocol/crops.py). A mode
    without an image input that has width and height parameters left at 0 is
    given the canvas size, so "Generate" fills the canvas. Raises ProtocolError
    (UNKNOWN_ENGINE, UNKNOWN_MODE) when the server does not offer the choice.
    """
    mode = _mode(caps, settings)
    params = params_for_mode(mode, settings.params)
    specs = {s.name: s for s in mode.params}
    if not reads_document(mode):
        for name, size in (("width", snapshot.width), ("height", snapshot.height)):
            if name in specs and not params.get(name, specs[name].default):
                params[name] = size
    image = snapshot.image() if reads_document(mode) else None
    mask = None
    mask_input = mode.input(InputKind.MASK)
    if mask_input is not None and image is not None:
        if mask_input.required or snapshot.has_selection or snapshot.mask_layer is not None:
            mask = ImagePayload(image.width, image.height, PixelFormat.L8, snapshot.mask())
    crop = None
    if image is not None:
        image, mask, crop = _cropped(snapshot, mode, params, image, mask)
    engine = caps.engine(settings.engine)
    assert engine is not None
    return JobRequest(
        engine=engine.name, mode=mode.name, image=image, mask=mask, model=settings.model, params=params, output_format=output_format, crop=crop,
        parent=settings.parent,
    )


def _cropped(
    snapshot: Snapshot, mode: ModeSpec, params: Mapping[str, Any], image: ImagePayload, mask: ImagePayload | None,
) -> tuple[ImagePayload, ImagePayload | None, Crop | None]:
    """The image and mask cut to what the mode reads, and their crop (None: the whole canvas)."""
    read = snapshot.box
    inner = bytes_bounds(mask.data, mask.width, mask.height) if mask is not None else None
    bounds = Rect(inner.x + read.x, inner.y + read.y, inner.width, inner.height) if inner is not None else None
    need = needed_box(mode.crop, _with_defaults(mode, params), bounds, snapshot.width, snapshot.height)
    if not read.contains(need):
        raise ValueError(f"the document was read at {read}, but this job reads {need}: read it where read_area says")
    if need == Rect(0, 0, snapshot.width, snapshot.height):
        return image, mask, None
    local = Rect(need.x - read.x, need.y - read.y, need.width, need.height)
    channels = image.format.channels
    image = ImagePayload(need.width, need.height, image.format, crop_bytes(image.data, read.width, channels, local))
    if mask is not None:
        mask = ImagePayload(need.width, need.height, PixelFormat.L8, crop_bytes(mask.data, read.width, 1, local))
    return image, mask, Crop(need.x, need.y, snapshot.width, snapshot.height)


def prompt_of(params: Mapping[str, Any]) -> str | None:
    value = params.get(PROMPT)
    return value if isinstance(value, str) and value.strip() else None
