"""A mode's settings form as plain data: which widget each parameter gets, its
range, step, choices with their labels, its fold, and the value it starts
from. Each host turns Fields into its own widgets (Qt in Krita, GTK in GIMP);
the decisions are made here, once, and tested without either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from paintwire.protocol import ModeSpec, ParamGroup, ParamSpec, ParamType, ProtocolError
from paintwire.protocol.params import MAX_SEED

from .request import PROMPT_PARAMS

INT_LIMIT = 2**31 - 1  # Qt and GTK spin boxes: ints beyond this do not fit (seeds use a float spin box)
FLOAT_LIMIT = 1e9
MAX_SLIDER_RANGE = 200  # an int range wider than this gets no slider: it would jump too far per pixel
# Titles of the folds for ParamSpec groups other than "basic"; unknown groups get their name.
GROUP_TITLES = {ParamGroup.ADVANCED.value: "Advanced", "soft": "Soft inpainting settings"}


class FieldKind:
    PROMPT = "prompt"
    SEED = "seed"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"
    STRING = "string"


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    help: str
    kind: str  # a FieldKind
    value: Any
    minimum: float = 0.0
    maximum: float = 0.0
    step: float = 1.0
    digits: int = 0
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    group: str = ParamGroup.BASIC.value
    slider: bool = False  # the range is short enough to drag

    @property
    def advanced(self) -> bool:
        return self.group != ParamGroup.BASIC.value

    @property
    def group_title(self) -> str:
        return GROUP_TITLES.get(self.group, self.group.replace("_", " ").capitalize())


def float_step(lo: float, hi: float) -> tuple[float, int]:
    """A spin box's step and decimals for a float range."""
    span = hi - lo
    if span <= 2:
        return 0.01, 2
    if span <= 20:
        return 0.1, 1
    return 1.0, 1


def field_for(spec: ParamSpec, value: Any) -> Field:
    common = dict(name=spec.name, label=spec.label or spec.name, help=spec.help, value=value, group=spec.group)
    t = spec.type
    if spec.name in PROMPT_PARAMS:
        return Field(kind=FieldKind.PROMPT, **common)
    if t is ParamType.SEED:
        return Field(kind=FieldKind.SEED, minimum=-1, maximum=MAX_SEED, **common)
    if t is ParamType.INT:
        lo = max(spec.minimum, -INT_LIMIT) if spec.minimum is not None else -INT_LIMIT
        hi = min(spec.maximum, INT_LIMIT) if spec.maximum is not None else INT_LIMIT
        bounded = spec.minimum is not None and spec.maximum is not None
        return Field(kind=FieldKind.INT, minimum=lo, maximum=hi, slider=bounded and hi - lo <= MAX_SLIDER_RANGE, **common)
    if t is ParamType.FLOAT:
        lo = spec.minimum if spec.minimum is not None else -FLOAT_LIMIT
        hi = spec.maximum if spec.maximum is not None else FLOAT_LIMIT
        step, digits = float_step(lo, hi)
        bounded = spec.minimum is not None and spec.maximum is not None
        return Field(kind=FieldKind.FLOAT, minimum=lo, maximum=hi, step=step, digits=digits, slider=bounded, **common)
    if t is ParamType.BOOL:
        return Field(kind=FieldKind.BOOL, **common)
    if t is ParamType.CHOICE:
        return Field(kind=FieldKind.CHOICE, choices=tuple((c, spec.choice_label(c)) for c in spec.choices), **common)
    return Field(kind=FieldKind.STRING, **common)


def value_of(spec: ParamSpec, values: Mapping[str, Any]) -> Any:
    """The value a form shows: the artist's if it still fits the spec, else the server's default."""
    if spec.name in values:
        try:
            return spec.check(values[spec.name], spec.name)
        except ProtocolError:
            pass
    return spec.default


def fields(mode: ModeSpec, values: Mapping[str, Any]) -> list[Field]:
    """A field per parameter of ``mode``: prompts first, then basic ones, then the
    folded groups in the order they first appear; the server's order within each."""
    return param_fields(mode.params, values)


def param_fields(specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> list[Field]:
    """:func:`fields` for any list of specs (a control kind's parameters, say)."""
    out = [field_for(spec, value_of(spec, values)) for spec in specs]
    groups: dict[str, int] = {}
    for f in out:
        groups.setdefault(f.group, len(groups))

    def rank(f: Field) -> tuple[int, int]:
        if f.kind == FieldKind.PROMPT:
            return (0, 0)
        return (1, 0) if not f.advanced else (2, groups[f.group])

    return sorted(out, key=rank)


def coerce(field: Field, raw: Any) -> Any:
    """A widget's reading as the parameter's type (spin boxes give floats)."""
    if field.kind in (FieldKind.INT, FieldKind.SEED):
        return int(round(raw))
    if field.kind == FieldKind.FLOAT:
        return round(float(raw), max(field.digits, 2) + 2)
    if field.kind == FieldKind.BOOL:
        return bool(raw)
    return "" if raw is None else str(raw)
