"""Which modes a client offers and which engine and model run one.

The server describes every mode (label, help, inputs, placement, the model
kinds it takes, its order); nothing here names a mode. Modes of the same name
in several engines are one entry in the list, run by whichever engine the
artist's model belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from paintwire.protocol import Capabilities, EngineInfo, InputKind, ModeSpec, ModelInfo


class ChoiceError(ValueError):
    """The server cannot run what was asked; the message says what it offers."""


def can_feed(mode: ModeSpec, supported: Collection[InputKind] = tuple(InputKind)) -> bool:
    """Whether a host that gathers the ``supported`` input kinds can run ``mode``:
    every required input must be of a kind it knows (the version rule)."""
    return all(not i.required or (isinstance(i.kind, InputKind) and i.kind in supported) for i in mode.inputs)


def offered_modes(caps: Capabilities | None, supported: Collection[InputKind] = tuple(InputKind)) -> list[ModeSpec]:
    """One ModeSpec per mode name the server offers and the host can feed, in the
    server's order (the first engine's spec gives the label and help)."""
    if caps is None:
        return []
    seen: dict[str, ModeSpec] = {}
    for engine in caps.engines:
        if not engine.usable:
            continue  # its modes can only fail: the client shows engine_notices instead
        for mode in engine.modes:
            if mode.name not in seen and can_feed(mode, supported):
                seen[mode.name] = mode
    return sorted(seen.values(), key=lambda m: m.order)


def engine_notices(caps: Capabilities | None) -> list[str]:
    """What the server says it lacks (an engine with no usable model), for the user."""
    return [e.notice for e in caps.engines if not e.usable] if caps is not None else []


def engines_started(before: Capabilities | None, after: Capabilities) -> list[EngineInfo]:
    """The engines a capabilities update made usable: those that were starting (or not listed,
    or lacking a model) before and can work now. A server starts its slow engines after it
    listens (``EngineInfo.status``), so a client that connected early hears of them this way."""
    usable_before = {e.name for e in before.engines if e.usable} if before is not None else set()
    return [e for e in after.engines if e.usable and not e.starting and e.name not in usable_before]


def mode_label(caps: Capabilities | None, name: str) -> str:
    mode = next((m for m in offered_modes(caps) if m.name == name), None)
    return mode.label if mode is not None else name


@dataclass(frozen=True)
class Choice:
    """One entry of the model list: which engine runs it, and the model to name in the request."""

    engine: str
    model: str | None
    label: str

    @property
    def key(self) -> str:
        return f"{self.engine}/{self.model or ''}"


def model_choices(caps: Capabilities | None, mode_name: str) -> list[Choice]:
    """The models that can run ``mode_name``, each with its engine: the engine's
    models of the kinds the mode names. An engine that lists none of them
    appears once under its own label (the server then uses its default)."""
    out: list[Choice] = []
    for engine in caps.engines if caps is not None else ():
        mode = engine.mode(mode_name)
        if mode is None or not engine.usable:
            continue
        models = [m for m in caps.models if m.engine == engine.name and m.kind in mode.model_kinds]
        if any(not m.usable for m in models):
            models = [m for m in models if m.usable]  # shown with their reason (unusable_models), never offered
            out.extend(Choice(engine.name, m.name, m.label or m.name) for m in models)
        elif models:
            out.extend(Choice(engine.name, m.name, m.label or m.name) for m in models)
        else:
            out.append(Choice(engine.name, None, engine.label))
    return out


def unusable_models(caps: Capabilities | None) -> list[ModelInfo]:
    """Models the server found but cannot use: a host shows each with its ``problem``
    instead of offering it."""
    return [m for m in caps.models if not m.usable] if caps is not None else []


def find_mode(caps: Capabilities | None, engine: str, mode_name: str) -> ModeSpec | None:
    info = caps.engine(engine) if caps is not None else None
    return info.mode(mode_name) if info is not None else None


def keep_choice(choices: list[Choice], key: str) -> str:
    """The choice key to show after the list changed: ``key`` if still offered,
    else the first of the same engine (diffusers stays diffusers), else the first."""
    keys = [c.key for c in choices]
    if not keys or key in keys:
        return key
    engine = key.split("/", 1)[0]
    return next((k for k in keys if k.startswith(engine + "/")), keys[0])


def choose(caps: Capabilities, mode_name: str, engine: str = "", model: str = "") -> Choice:
    """The engine (and model) that will run ``mode_name``.

    An explicit model picks its engine; an explicit engine narrows the choice;
    otherwise the first model the server offers for the mode. Raises
    ChoiceError naming what the server does offer.
    """
    label = mode_label(caps, mode_name)
    choices = model_choices(caps, mode_name)
    if not choices:
        offered = ", ".join(m.name for m in offered_modes(caps)) or "none"
        lacking = "".join(f" {notice}" for notice in engine_notices(caps))
        raise ChoiceError(f"This Paintwire server cannot do {label!r}; it offers these modes: {offered}.{lacking}")
    if engine:
        narrowed = [c for c in choices if c.engine == engine]
        if not narrowed:
            known = ", ".join(sorted({c.engine for c in choices}))
            raise ChoiceError(f"Engine {engine!r} cannot do {label} on this server; these can: {known}.")
        choices = narrowed
    if model:
        for choice in choices:
            if choice.model == model:
                return choice
        # An engine without a model list takes any name the server knows.
        if engine and choices[0].model is None:
            return Choice(choices[0].engine, model, model)
        known = ", ".join(c.model or c.engine for c in choices)
        raise ChoiceError(f"Model {model!r} cannot do {label} on this server; choose one of: {known}.")
    return choices[0]
