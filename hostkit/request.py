"""From what the artist chose to a JobRequest: the one place for request rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from paintwire.protocol import (
    Capabilities, ErrorCode, ImagePayload, InputKind, JobRequest, ModeSpec, PixelFormat, ProtocolError,
)

from .snapshot import Snapshot

# Parameter names the plug-ins show as text boxes of their own, and use to name result layers.
PROMPT = "prompt"
NEGATIVE_PROMPT = "negative_prompt"
PROMPT_PARAMS = (PROMPT, NEGATIVE_PROMPT)
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
    whole canvas. A mode without an image input that has width and height
    parameters left at 0 is given the canvas size, so "Generate" fills the
    canvas. Raises ProtocolError (UNKNOWN_ENGINE, UNKNOWN_MODE) when the
    server does not offer the choice.
    """
    engine = caps.engine(settings.engine)
    if engine is None:
        raise ProtocolError(ErrorCode.UNKNOWN_ENGINE, f"The server has no engine {settings.engine!r} (any more).", "job.engine")
    mode = engine.mode(settings.mode)
    if mode is None:
        raise ProtocolError(ErrorCode.UNKNOWN_MODE, f"Engine {engine.label!r} cannot do {settings.mode!r}.", "job.mode")
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
            mask = ImagePayload(snapshot.width, snapshot.height, PixelFormat.L8, snapshot.mask())
    return JobRequest(
        engine=engine.name, mode=mode.name, image=image, mask=mask, model=settings.model, params=params, output_format=output_format,
        parent=settings.parent,
    )


def prompt_of(params: Mapping[str, Any]) -> str | None:
    value = params.get(PROMPT)
    return value if isinstance(value, str) and value.strip() else None
