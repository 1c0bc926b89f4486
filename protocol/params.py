"""Parameter specifications and the one place where job parameters are validated.

Each engine advertises, per mode, the parameters it takes as a list of
ParamSpec. The server validates every request against those specs with
``validate_params``; the plug-ins build their settings forms from the same
specs, so a new server feature shows up in Krita and GIMP without a new
plug-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from .crops import WHOLE_CANVAS, CropRule
from .errors import ErrorCode, ProtocolError
from .form import FormLayout, form_layout
from .vocabulary import MAX_SEED, InputKind, ModelKind, ParamGroup, ParamType, PlacementKind, known

Scalar = Union[int, float, bool, str, None]


MAX_STRING = 4096  # long enough for any prompt; bounded so one field cannot fill memory


@dataclass(frozen=True)
class ParamSpec:
    """One parameter an engine mode accepts.

    ``group`` lets a UI put rarely touched parameters behind an "advanced" fold.
    ``choice_labels`` are the words a UI shows for ``choices`` (same order);
    without them a UI shows the values themselves.
    """

    name: str
    type: ParamType
    default: Scalar
    label: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    group: str = ParamGroup.BASIC.value
    choice_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.choice_labels and len(self.choice_labels) != len(self.choices):
            raise ValueError(f"{self.name}: choice_labels must match choices one for one")

    def choice_label(self, value: str) -> str:
        """The label a UI shows for the choice ``value``."""
        labels = dict(zip(self.choices, self.choice_labels))
        return labels.get(value, value)

    def to_wire(self) -> dict:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "default": self.default,
            "label": self.label,
            "help": self.help,
            "group": self.group,
        }
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        if self.choices:
            out["choices"] = list(self.choices)
        if self.choice_labels:
            out["choice_labels"] = list(self.choice_labels)
        return out

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "ParamSpec":
        choices, labels = tuple(obj.get("choices", ())), tuple(obj.get("choice_labels", ()))
        return cls(
            name=obj["name"],
            type=ParamType(obj["type"]),
            default=obj.get("default"),
            label=obj.get("label", obj["name"]),
            help=obj.get("help", ""),
            minimum=obj.get("min"),
            maximum=obj.get("max"),
            choices=choices,
            group=obj.get("group", ParamGroup.BASIC.value),
            choice_labels=labels if len(labels) == len(choices) else (),  # labels that do not fit are shown as values
        )

    def check(self, value: Any, field_path: str) -> Scalar:
        """Return ``value`` coerced to this parameter's type, or raise INVALID_PARAM."""
        t = self.type
        if t is ParamType.BOOL:
            if not isinstance(value, bool):
                raise _invalid(f"{self.name} must be true or false, got {value!r}.", field_path)
            return value
        if t in (ParamType.INT, ParamType.SEED):
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid(f"{self.name} must be a whole number, got {value!r}.", field_path)
            lo = -1 if t is ParamType.SEED else self.minimum
            hi = MAX_SEED if t is ParamType.SEED else self.maximum
            self._check_range(value, lo, hi, field_path)
            return value
        if t is ParamType.FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _invalid(f"{self.name} must be a number, got {value!r}.", field_path)
            try:
                value = float(value)
            except OverflowError:  # an int beyond float range (not from msgpack, whose ints fit)
                raise _invalid(f"{self.name} is too large.", field_path) from None
            if not math.isfinite(value):
                raise _invalid(f"{self.name} must be a finite number.", field_path)
            self._check_range(value, self.minimum, self.maximum, field_path)
            return value
        if not isinstance(value, str):
            raise _invalid(f"{self.name} must be text, got {value!r}.", field_path)
        if len(value) > MAX_STRING:
            raise _invalid(f"{self.name} is {len(value)} characters long; the limit is {MAX_STRING}.", field_path)
        if t is ParamType.CHOICE and value not in self.choices:
            raise _invalid(f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}.", field_path)
        return value

    def _check_range(self, value: float, lo: float | None, hi: float | None, field_path: str) -> None:
        if lo is not None and value < lo:
            raise _invalid(f"{self.name} must be at least {_fmt(lo)}, got {_fmt(value)}.", field_path)
        if hi is not None and value > hi:
            raise _invalid(f"{self.name} must be at most {_fmt(hi)}, got {_fmt(value)}.", field_path)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _invalid(message: str, field_path: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_PARAM, message, field_path)


@dataclass(frozen=True)
class InputSpec:
    """One thing a mode reads from the artist's document (see InputKind)."""

    kind: InputKind | str  # a str only for a kind this side does not know
    required: bool = True
    label: str = ""
    help: str = ""

    def to_wire(self) -> dict:
        return {"kind": getattr(self.kind, "value", self.kind), "required": self.required, "label": self.label, "help": self.help}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "InputSpec":
        return cls(known(InputKind, obj["kind"]), bool(obj.get("required", True)), obj.get("label", ""), obj.get("help", ""))


@dataclass(frozen=True)
class ModeSpec:
    """A mode of an engine: what it is called, what it reads, where its result goes
    and the parameters it takes.

    ``inputs`` is the full description; ``needs_image``, ``needs_mask`` and
    ``accepts_mask`` are its short form (kept on the wire for older clients).
    Give either: a mode built with ``inputs`` has the short form derived from
    them, and one built with the short form gets the matching ``inputs``.
    ``model_kinds`` are the kinds of models (ModelInfo.kind) a job of this mode
    can name; empty means the engine runs it without a model choice. ``order``
    places the mode in a client's list (lower first).
    """

    name: str
    label: str
    help: str
    needs_image: bool = False
    needs_mask: bool = False
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)
    accepts_mask: bool | None = None  # defaults to needs_mask
    inputs: tuple[InputSpec, ...] = ()
    placement: PlacementKind | str = PlacementKind.LAYERS
    model_kinds: tuple[ModelKind | str, ...] = ()
    order: int = 100
    crop: CropRule = WHOLE_CANVAS  # how much of the canvas a job reads (protocol/crops.py)
    # How a client's form shows ``params`` (protocol/form.py): made from them here, or as a server sent it.
    form: FormLayout = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "form", form_layout(self.params))
        if self.inputs:
            kinds = {i.kind: i for i in self.inputs}
            image, mask = kinds.get(InputKind.IMAGE), kinds.get(InputKind.MASK)
            object.__setattr__(self, "needs_image", bool(image and image.required))
            object.__setattr__(self, "needs_mask", bool(mask and mask.required))
            object.__setattr__(self, "accepts_mask", mask is not None)
            return
        object.__setattr__(self, "accepts_mask", self.mask_allowed)
        inputs = []
        if self.needs_image or self.mask_allowed:
            # A mode that accepts a mask also takes the image the mask applies to.
            inputs.append(InputSpec(InputKind.IMAGE, self.needs_image))
        if self.mask_allowed:
            inputs.append(InputSpec(InputKind.MASK, self.needs_mask))
        object.__setattr__(self, "inputs", tuple(inputs))

    @property
    def mask_allowed(self) -> bool:
        return self.needs_mask if self.accepts_mask is None else self.accepts_mask

    def input(self, kind: InputKind) -> InputSpec | None:
        return next((i for i in self.inputs if i.kind == kind), None)

    def to_wire(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "help": self.help,
            "needs_image": self.needs_image,
            "needs_mask": self.needs_mask,
            "accepts_mask": self.mask_allowed,
            "inputs": [i.to_wire() for i in self.inputs],
            "placement": getattr(self.placement, "value", self.placement),
            "model_kinds": [getattr(k, "value", k) for k in self.model_kinds],
            "order": int(self.order),
            "params": [p.to_wire() for p in self.params],
            "crop": self.crop.to_wire(),
            "form": self.form.to_wire(),
        }

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "ModeSpec":
        """Read a mode leniently (the version rule): parameters of a type this
        side does not know are left out, input, placement and model kinds it
        does not know are kept as strings, and the form layout is read as
        ``FormLayout.from_wire`` says."""
        params = tuple(ParamSpec.from_wire(p) for p in obj.get("params", ()) if p["type"] in _TYPE_VALUES)
        common = dict(
            name=obj["name"],
            label=obj.get("label", obj["name"]),
            help=obj.get("help", ""),
            params=params,
            placement=known(PlacementKind, obj.get("placement", PlacementKind.LAYERS.value)),
            model_kinds=tuple(known(ModelKind, k) for k in obj.get("model_kinds", ())),
            order=int(obj.get("order", 100)),
            crop=CropRule.from_wire(obj.get("crop")),  # absent (older servers): the whole canvas
        )
        if "inputs" in obj:
            mode = cls(inputs=tuple(InputSpec.from_wire(i) for i in obj["inputs"]), **common)
        else:
            mode = cls(
                needs_image=bool(obj.get("needs_image", True)),
                needs_mask=bool(obj.get("needs_mask", False)),
                accepts_mask=obj.get("accepts_mask"),
                **common,
            )
        if "form" in obj:  # absent (older servers): the layout made here from the same rule
            object.__setattr__(mode, "form", FormLayout.from_wire(obj["form"], params))
        return mode


_TYPE_VALUES = frozenset(t.value for t in ParamType)


def validate_params(specs: Sequence[ParamSpec], given: Mapping[str, Any], field_path: str = "job.params") -> dict[str, Scalar]:
    """Check ``given`` against ``specs`` and fill in defaults.

    Unknown names are rejected rather than ignored: a misspelt parameter that
    silently does nothing costs an artist far more time than an error.
    """
    by_name = {s.name: s for s in specs}
    for name in given:
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise _invalid(f"Unknown parameter {name!r}; this mode takes: {known}.", f"{field_path}.{name}")
    out: dict[str, Scalar] = {}
    for spec in specs:
        if spec.name in given:
            out[spec.name] = spec.check(given[spec.name], f"{field_path}.{spec.name}")
        else:
            out[spec.name] = spec.default
    return out
