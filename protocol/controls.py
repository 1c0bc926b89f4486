"""Control layers: layers that guide generation (ControlNet, reference images).

An engine publishes the kinds of control it takes (``ControlKindSpec``, in
``EngineInfo.controls``); a job carries its control layers as ``ControlInput``s
(``JobRequest.controls``); a client may ask for the preprocessed image of one
control layer (``preprocess``, answered by ``preprocessed``) to show what the
model will read. docs/protocol.md describes the same objects and messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from .errors import ErrorCode, ProtocolError
from .fields import read, read_name, read_ref
from .images import ImagePayload
from .params import ParamSpec
from .vocabulary import Preprocessor

# Several controls at once are common (pose + depth + reference); more than this
# is a mistake, and each one costs a ControlNet's memory and time.
MAX_CONTROLS = 8
MAX_CONTROL_STRENGTH = 2.0


@dataclass(frozen=True)
class ControlKindSpec:
    """One kind of control an engine takes, with the preprocessors it offers and
    their parameters. ``problem`` is a sentence naming the model file to add, and
    where, when no installed model can run the kind; empty when one can."""

    name: str  # a ControlKind value, or a newer kind
    label: str
    help: str = ""
    preprocessors: tuple[str, ...] = (Preprocessor.NONE.value,)  # the first is the default
    params: tuple[ParamSpec, ...] = ()
    problem: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem

    @property
    def default_preprocessor(self) -> str:
        return self.preprocessors[0] if self.preprocessors else Preprocessor.NONE.value

    def to_wire(self) -> dict:
        out: dict[str, Any] = {
            "name": self.name, "label": self.label or self.name, "help": self.help,
            "preprocessors": list(self.preprocessors), "params": [p.to_wire() for p in self.params],
        }
        if self.problem:
            out["problem"] = self.problem
        return out

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "ControlKindSpec":
        return cls(
            name=obj["name"], label=obj.get("label", obj["name"]), help=obj.get("help", ""),
            preprocessors=tuple(obj.get("preprocessors") or (Preprocessor.NONE.value,)),
            params=tuple(ParamSpec.from_wire(p) for p in obj.get("params", ())),
            problem=obj.get("problem") or "",
        )


@dataclass(frozen=True)
class ControlInput:
    """One control layer of a job (or of a ``preprocess`` request).

    ``image`` has the geometry of ``job.image`` (the server crops and resizes it
    with the image's rules); ``model`` None lets the server pick an installed model
    that fits the kind and the checkpoint. ``start`` and ``end`` are the share of
    the denoising steps in which the control acts (0 to 1)."""

    kind: str
    image: ImagePayload
    model: str | None = None
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    preprocessor: str | None = None  # None: the kind's default
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {
            "kind": self.kind, "image": self.image.to_wire(), "model": self.model, "strength": float(self.strength),
            "start": float(self.start), "end": float(self.end), "preprocessor": self.preprocessor, "params": dict(self.params),
        }

    @classmethod
    def from_wire(cls, obj: Any, where: str, max_pixels: int | None = None) -> "ControlInput":
        """``where`` is the control's dotted path ("job.controls.0")."""
        if not isinstance(obj, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "A control must be a map with kind and image.", where)
        w = where + "."
        kind = read_name(obj, "kind", w)
        if obj.get("image") is None:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "Missing required field 'image'.", f"{w}image")
        image = ImagePayload.from_wire(obj["image"], f"{w}image", max_pixels)
        params = read(obj, "params", dict, w, required=False, default={})
        for key in params:
            if not isinstance(key, str):
                raise ProtocolError(ErrorCode.BAD_MESSAGE, "Parameter names must be strings.", f"{w}params")
        values = {}
        for name, default in (("strength", 1.0), ("start", 0.0), ("end", 1.0)):
            values[name] = float(read(obj, name, (float, int), w, required=False, default=default))
        return cls(
            kind=kind, image=image, model=read_name(obj, "model", w, required=False),
            preprocessor=read_name(obj, "preprocessor", w, required=False), params=params, **values,
        )


def read_controls(obj: Mapping[str, Any], where: str, max_pixels: int | None = None) -> tuple[ControlInput, ...]:
    """The ``controls`` array of a job map (absent or nil: none)."""
    items = read(obj, "controls", list, where, required=False, default=[])
    if len(items) > MAX_CONTROLS:
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"A job may carry at most {MAX_CONTROLS} controls, got {len(items)}.", f"{where}controls")
    return tuple(ControlInput.from_wire(c, f"{where}controls.{i}", max_pixels) for i, c in enumerate(items))


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocess:
    """Ask for the image a model would read from one control layer (a preview of
    the preprocessor). Answered with ``preprocessed`` or an ``error`` carrying ``ref``."""

    TYPE: ClassVar[str] = "preprocess"
    ref: int
    engine: str
    control: ControlInput

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "ref": self.ref, "engine": self.engine, "control": self.control.to_wire()}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any], max_pixels: int | None = None) -> "Preprocess":
        return cls(ref=read_ref(obj), engine=read_name(obj, "engine", ""), control=ControlInput.from_wire(obj.get("control"), "control", max_pixels))


@dataclass(frozen=True)
class Preprocessed:
    """The answer to ``preprocess``: the image the model reads, at the control
    image's size (l8 for line and edge maps, rgba8 otherwise)."""

    TYPE: ClassVar[str] = "preprocessed"
    ref: int
    image: ImagePayload

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "ref": self.ref, "image": self.image.to_wire()}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Preprocessed":
        return cls(read(obj, "ref", int, ""), ImagePayload.from_wire(obj.get("image"), "image"))
