"""The plug-in's procedures as plain data, and the rules that turn their
arguments into a job. No GIMP import: this is the part unit tests cover.

Each procedure is one of paintwire.protocol.workflow's UI modes. Its PDB
arguments are a generic set, the same for every procedure, so a batch script
can call any of them the same way: the common server parameters have their own
arguments (prompt, negative prompt, model, strength, steps, seed) and
``params-json`` carries everything else the server advertises (a JSON object
of protocol parameter names, e.g. ``{"method": "ns", "mask_blur": 8}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Mapping

from paintwire.protocol import Capabilities, ModeSpec, ProtocolError
from paintwire.protocol import workflow

PREFIX = "plug-in-paintwire-"
MENU = "<Image>/Filters/Paintwire"


@dataclass(frozen=True)
class Action:
    ui_mode: str  # a key of workflow.UI_MODES
    menu_label: str
    blurb: str
    default_source: str = "drawable"  # the "source" argument's default

    @property
    def proc_name(self) -> str:
        return PREFIX + self.ui_mode

    @property
    def server_mode(self) -> str:
        return workflow.UI_MODE_BY_KEY[self.ui_mode].server_mode


ACTIONS: tuple[Action, ...] = (
    Action("generate", "_Generate...", "Generate a new layer from the prompt, the size of the canvas."),
    Action("refine", "_Refine (img2img)...", "Rework the input guided by the prompt; the result is a new layer."),
    Action("inpaint", "_Inpaint Selection...", "Regenerate what is selected (feathering kept); the rest stays as it is."),
    # The strokes usually sit on a layer of their own: the visible image is the input.
    Action("sketch", "Inpaint S_ketch...", "Regenerate the selection over colour strokes painted on the image; the strokes guide it.",
           default_source="visible"),
    Action("expand", "_Expand Canvas (outpaint)...", "Grow the picture beyond its edges: the canvas grows in place (one Undo takes it back)."),
    Action("upscale", "_Upscale...", "Enlarge the picture; the result opens as a new image."),
)
ACTION_BY_PROC = {a.proc_name: a for a in ACTIONS}
CONNECTION_PROC = PREFIX + "connection"

SOURCES = ("drawable", "visible")  # the active layer, or everything visible merged


class PluginError(Exception):
    """Something the artist must be told; the message is the whole story."""


@dataclass(frozen=True)
class ArgDef:
    """One PDB argument of every Paintwire procedure."""

    name: str  # the PDB (GObject property) name: dashes
    kind: str  # "string", "int", "double"
    nick: str
    blurb: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None


# Sentinels: a value that means "the server's default" is one the server never
# takes, so a script that leaves an argument alone gets the engine's choice.
STRENGTH_DEFAULT = -1.0
STEPS_DEFAULT = 0
# GIMP's int arguments are 32-bit; seeds above 2**31 - 1 go through params-json.
MAX_INT_SEED = 2**31 - 1

ARGS: tuple[ArgDef, ...] = (
    ArgDef("prompt", "string", "Prompt", "What to paint (for engines that take a prompt).", ""),
    ArgDef("negative-prompt", "string", "Negative prompt", "What to avoid (for engines that take one).", ""),
    ArgDef("engine", "string", "Engine", "Server engine to use; empty picks one that can do this.", ""),
    ArgDef("model", "string", "Model", "Model name as the server lists it; empty uses the engine's default.", ""),
    ArgDef("strength", "double", "Strength", "Denoising strength 0-1; -1 uses the server's default.", STRENGTH_DEFAULT, -1.0, 1.0),
    ArgDef("steps", "int", "Steps", "Sampling steps; 0 uses the server's default.", STEPS_DEFAULT, 0, 1000),
    ArgDef("seed", "int", "Seed", "Random seed; -1 lets the server pick one (it is in the layer name).", -1, -1, MAX_INT_SEED),
    ArgDef("params-json", "string", "Other parameters (JSON)", "A JSON object of further server parameters by name.", "{}"),
    ArgDef("source", "string", "Input", "drawable: the active layer; visible: everything visible.", "drawable"),
)
ARG_BY_NAME = {a.name: a for a in ARGS}

# Generic argument -> protocol parameter of the same meaning.
GENERIC_PARAMS = {
    "prompt": workflow.PROMPT,
    "negative-prompt": workflow.NEGATIVE_PROMPT,
    "strength": "strength",
    "steps": "steps",
    "seed": workflow.SEED,
}


@dataclass(frozen=True)
class Args:
    """The values of a procedure's arguments (from the PDB, a dialog or a saved config)."""

    prompt: str = ""
    negative_prompt: str = ""
    engine: str = ""
    model: str = ""
    strength: float = STRENGTH_DEFAULT
    steps: int = STEPS_DEFAULT
    seed: int = -1
    params_json: str = "{}"
    source: str = "drawable"

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "Args":
        """From PDB names (dashes) or attribute names; missing ones keep their defaults."""
        known = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            attr = key.replace("-", "_")
            if attr in known and value is not None:
                kwargs[attr] = value
        return cls(**kwargs)

    def to_values(self) -> dict[str, Any]:
        """PDB name -> value, for writing back into a procedure's config."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}

    def extra_params(self) -> dict[str, Any]:
        text = (self.params_json or "").strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise PluginError(f"params-json is not valid JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise PluginError("params-json must be a JSON object, such as {\"mask_blur\": 8}.")
        return value


def choose_engine(caps: Capabilities, ui_mode: str, engine: str = "", model: str = "") -> workflow.Choice:
    """The engine (and model) that will run ``ui_mode``.

    An explicit model picks its engine; an explicit engine narrows the choice;
    otherwise the first model the server offers for the mode. Raises
    PluginError naming what the server does offer.
    """
    label = workflow.UI_MODE_BY_KEY[ui_mode].label
    choices = workflow.model_choices(caps, ui_mode)
    if not choices:
        engines = ", ".join(e.name for e in caps.engines) or "none"
        raise PluginError(f"This Paintwire server cannot do {label}: none of its engines ({engines}) offers it. "
                          "A diffusers model may need to be installed on the server.")
    if engine:
        narrowed = [c for c in choices if c.engine == engine]
        if not narrowed:
            offered = ", ".join(sorted({c.engine for c in choices}))
            raise PluginError(f"Engine {engine!r} cannot do {label} on this server; these can: {offered}.")
        choices = narrowed
    if model:
        for choice in choices:
            if choice.model == model:
                return choice
        # An engine without a model list takes any name the server knows.
        if engine and choices[0].model is None:
            return workflow.Choice(choices[0].engine, model, model)
        offered = ", ".join(c.model or c.engine for c in choices)
        raise PluginError(f"Model {model!r} cannot do {label} on this server; choose one of: {offered}.")
    return choices[0]


def job_params(mode: ModeSpec, args: Args) -> dict[str, Any]:
    """The protocol parameters for ``mode`` from the generic arguments plus params-json.

    Generic arguments the mode does not take are ignored (Inpaint Selection on
    the classical engine has no prompt), as are their "server default"
    sentinels. Names in params-json are the script's explicit wish, so a name
    the mode does not take or a value out of range is an error, not a silent
    no-op; the values are checked with the protocol's own ParamSpec.check.
    """
    specs = {s.name: s for s in mode.params}
    values: dict[str, Any] = {}
    for arg_name, param in GENERIC_PARAMS.items():
        if param not in specs:
            continue
        value = getattr(args, arg_name.replace("-", "_"))
        if arg_name in ("prompt", "negative-prompt") and not value:
            continue
        if arg_name == "strength" and value < 0:
            continue
        if arg_name == "steps" and value <= 0:
            continue
        values[param] = value
    for name, value in args.extra_params().items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(specs) or "none"
            raise PluginError(f"Parameter {name!r} in params-json is not one that {mode.label} takes; it takes: {known}.")
        try:
            values[name] = spec.check(value, f"params-json.{name}")
        except ProtocolError as exc:
            raise PluginError(exc.message) from None
    return values


def args_from_params(base: Args, mode: ModeSpec, params: Mapping[str, Any], choice: workflow.Choice, source: str) -> Args:
    """Arguments that reproduce ``params`` (from a dialog): the inverse of job_params,
    so the procedure's saved config remembers every value the artist set."""
    specs = {s.name for s in mode.params}
    generic = {}
    rest = {}
    by_param = {p: a for a, p in GENERIC_PARAMS.items()}
    for name, value in params.items():
        if name not in specs:
            continue
        if name in by_param:
            generic[by_param[name].replace("-", "_")] = value
        else:
            rest[name] = value
    if "seed" in generic and not (-1 <= int(generic["seed"]) <= MAX_INT_SEED):
        rest["seed"] = generic.pop("seed")
    values = {**base.to_values(), **{k.replace("_", "-"): v for k, v in generic.items()}}
    values.update(engine=choice.engine, model=choice.model or "", source=source, **{"params-json": json.dumps(rest, sort_keys=True)})
    if "strength" in generic:
        values["strength"] = float(generic["strength"])
    return Args.from_values(values)


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise PluginError(f"source must be one of {', '.join(SOURCES)}, got {source!r}.")
    return source
