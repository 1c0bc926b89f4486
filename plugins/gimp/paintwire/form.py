"""The settings form of a mode, as plain data: which widget each advertised
parameter gets, its range, step and starting value. dialogs.py turns these
into GTK widgets; keeping the decisions here lets unit tests cover them
without GIMP or a display.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from paintwire.protocol import ModeSpec, ParamSpec, ParamType, ProtocolError
from paintwire.protocol import workflow

from actions import GENERIC_PARAMS, STEPS_DEFAULT, STRENGTH_DEFAULT, Args

INT_LIMIT = 2**31 - 1  # GTK spin buttons hold doubles; this keeps ints exact and sane
FLOAT_LIMIT = 1e9
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    help: str
    kind: str  # "prompt", "int", "seed", "float", "bool", "choice", "string"
    value: Any
    minimum: float = 0.0
    maximum: float = 0.0
    step: float = 1.0
    digits: int = 0
    choices: tuple[str, ...] = ()
    advanced: bool = False


def _float_step(lo: float, hi: float) -> tuple[float, int]:
    span = hi - lo
    if span <= 2:
        return 0.01, 2
    if span <= 20:
        return 0.1, 1
    return 1.0, 1


def field_for(spec: ParamSpec, value: Any) -> Field:
    advanced = spec.group != "basic"
    common = dict(name=spec.name, label=spec.label or spec.name, help=spec.help, value=value, advanced=advanced)
    t = spec.type
    if spec.name in workflow.PROMPT_PARAMS:
        return Field(kind="prompt", **common)
    if t is ParamType.SEED:
        return Field(kind="seed", minimum=-1, maximum=MAX_SEED, **common)
    if t is ParamType.INT:
        lo = spec.minimum if spec.minimum is not None else -INT_LIMIT
        hi = spec.maximum if spec.maximum is not None else INT_LIMIT
        return Field(kind="int", minimum=lo, maximum=hi, **common)
    if t is ParamType.FLOAT:
        lo = spec.minimum if spec.minimum is not None else -FLOAT_LIMIT
        hi = spec.maximum if spec.maximum is not None else FLOAT_LIMIT
        step, digits = _float_step(lo, hi)
        return Field(kind="float", minimum=lo, maximum=hi, step=step, digits=digits, **common)
    if t is ParamType.BOOL:
        return Field(kind="bool", **common)
    if t is ParamType.CHOICE:
        return Field(kind="choice", choices=spec.choices, **common)
    return Field(kind="string", **common)


def stored_values(mode: ModeSpec, args: Args) -> dict[str, Any]:
    """The values a dialog starts from: the procedure's last arguments, read
    leniently (a value the mode does not take, or no longer accepts, is dropped
    and the server's default shows instead)."""
    raw: dict[str, Any] = {}
    for arg_name, param in GENERIC_PARAMS.items():
        value = getattr(args, arg_name.replace("-", "_"))
        if (arg_name == "strength" and value == STRENGTH_DEFAULT) or (arg_name == "steps" and value == STEPS_DEFAULT):
            continue
        raw[param] = value
    try:
        extra = json.loads(args.params_json or "{}")
    except ValueError:
        extra = {}
    if isinstance(extra, dict):
        raw.update(extra)
    return workflow.params_for_mode(mode, raw)


def fields(mode: ModeSpec, values: Mapping[str, Any]) -> list[Field]:
    """A field per parameter of ``mode``: prompts first, then basic, then advanced."""
    out = []
    for spec in mode.params:
        value = values.get(spec.name, spec.default)
        try:
            value = spec.check(value, spec.name)
        except ProtocolError:
            value = spec.default
        out.append(field_for(spec, value))
    rank = {"prompt": 0}
    return sorted(out, key=lambda f: (rank.get(f.kind, 1), f.advanced))


def coerce(field: Field, raw: Any) -> Any:
    """A widget's reading as the parameter's type (spin buttons give floats)."""
    if field.kind in ("int", "seed"):
        return int(round(raw))
    if field.kind == "float":
        return round(float(raw), max(field.digits, 2) + 2)
    if field.kind == "bool":
        return bool(raw)
    return "" if raw is None else str(raw)
