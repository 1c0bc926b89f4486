"""The plug-in's procedures as plain data, and the rules that turn their
arguments into a job. No GIMP import: this is the part unit tests cover.

GIMP registers procedures when it scans plug-ins, often with no server
running, so the menu cannot list the server's modes. Two kinds of entries
answer that: Filters > Paintwire > Paintwire... (GENERIC_PROC) runs any mode
the connected server offers, chosen in its dialog or by its ``mode``
argument, so a new server mode needs no plug-in release; and a few named
entries (SHORTCUTS) open that same dialog on a well-known mode, as menu
conveniences with labels of their own. Every procedure takes the same
generic arguments, so a batch script calls them all alike: the common server
parameters have their own arguments (prompt, negative prompt, model,
strength, steps, seed) and ``params-json`` carries everything else the server
advertises (a JSON object of protocol parameter names, e.g.
``{"method": "ns", "mask_blur": 8}``). ``controls-json`` lists the control
layers (layers of the image that guide the job, by name) as a JSON list, e.g.
``[{"layer": "Lines", "kind": "lineart", "strength": 0.8, "end": 0.6}]``;
the kinds are those the server publishes (``paintwire info``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Mapping

from paintwire.hostkit import controls as kit_controls
from paintwire.hostkit import modes as kit_modes
from paintwire.hostkit.controls import ControlLayer
from paintwire.hostkit.modes import Choice
from paintwire.hostkit.request import NEGATIVE_PROMPT, PROMPT, SEED
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import Capabilities, ModeSpec, ProtocolError

PREFIX = "plug-in-paintwire-"
MENU = "<Image>/Filters/Paintwire"
GENERIC_PROC = "plug-in-paintwire"


@dataclass(frozen=True)
class Shortcut:
    """A named menu entry that opens the Paintwire dialog on one server mode.

    Only a name, a menu label and a blurb live here: what the mode reads,
    its parameters and where its result goes come from the server when the
    entry runs. A server without the mode says so, naming what it offers.
    """

    mode: str  # the server's mode name
    suffix: str  # the procedure's name after PREFIX
    menu_label: str
    blurb: str
    default_source: str = InputSource.LAYER.value

    @property
    def proc_name(self) -> str:
        return PREFIX + self.suffix


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("txt2img", "generate", "_Generate...", "Generate a new layer from the prompt, the size of the canvas."),
    Shortcut("img2img", "refine", "_Refine...", "Rework the input guided by the prompt; the result is a new layer."),
    Shortcut("inpaint", "inpaint", "_Inpaint Selection...", "Regenerate what is selected (feathering kept); the rest stays as it is."),
    # The strokes usually sit on a layer of their own: the visible image is the input.
    Shortcut("inpaint_sketch", "sketch", "Inpaint S_ketch...",
             "Regenerate the selection over colour strokes painted on the image; the strokes guide it.",
             default_source=InputSource.VISIBLE.value),
    Shortcut("outpaint", "expand", "_Expand Canvas...", "Grow the picture beyond its edges."),
    Shortcut("upscale", "upscale", "_Upscale...", "Enlarge the picture."),
)
SHORTCUT_BY_PROC = {s.proc_name: s for s in SHORTCUTS}
CONNECTION_PROC = PREFIX + "connection"


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
    ArgDef("source", "string", "Input", "layer: the active layer; visible: everything visible.", InputSource.LAYER.value),
    ArgDef("controls-json", "string", "Control layers (JSON)",
           'Layers that guide the job, as a JSON list: [{"layer": "Lines", "kind": "lineart", "strength": 1.0, "start": 0, "end": 1}].',
           "[]"),
)
# Only the generic procedure takes a mode; a named entry's mode is its own.
MODE_ARG = ArgDef("mode", "string", "Mode", "The server's mode name (see 'paintwire info'); empty: the first it offers.", "")
ARG_BY_NAME = {a.name: a for a in ARGS}

# Generic argument -> protocol parameter of the same meaning.
GENERIC_PARAMS = {
    "prompt": PROMPT,
    "negative-prompt": NEGATIVE_PROMPT,
    "strength": "strength",
    "steps": "steps",
    "seed": SEED,
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
    source: str = InputSource.LAYER.value
    controls_json: str = "[]"
    mode: str = ""

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

    def controls(self) -> list[ControlLayer]:
        """The control layers in controls-json; PluginError says which entry is wrong."""
        try:
            return kit_controls.controls_from_json(self.controls_json, "controls-json")
        except ValueError as exc:
            raise PluginError(str(exc)) from None


def choose_engine(caps: Capabilities, mode: str, engine: str = "", model: str = "") -> Choice:
    """The engine (and model) that will run ``mode`` (see hostkit.modes.choose)."""
    try:
        return kit_modes.choose(caps, mode, engine, model)
    except kit_modes.ChoiceError as exc:
        raise PluginError(str(exc)) from None


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


def args_from_params(
    base: Args, mode: ModeSpec, params: Mapping[str, Any], choice: Choice, source: str, controls: list[ControlLayer] | None = None,
) -> Args:
    """Arguments that reproduce ``params`` and ``controls`` (from a dialog): the inverse of
    job_params, so the procedure's saved config remembers every value the artist set."""
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
    values.update(engine=choice.engine, model=choice.model or "", source=source, mode=mode.name, **{"params-json": json.dumps(rest, sort_keys=True)})
    if "strength" in generic:
        values["strength"] = float(generic["strength"])
    if controls is not None:
        values["controls-json"] = kit_controls.controls_to_json(controls)
    return Args.from_values(values)


def check_source(source: str) -> InputSource:
    try:
        return InputSource.parse(source)
    except ValueError as exc:
        raise PluginError(str(exc)) from None
