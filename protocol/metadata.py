"""Generation settings inside image files: written by the server and the CLI,
read back by ``paintwire recall`` and the plug-ins' "use settings from an image".

Three formats are read, one per key of a PNG text chunk:

- ``paintwire``: Paintwire's own JSON, the exact settings (written by Paintwire);
- ``parameters`` holding the WebUI's infotext (prompt, ``Negative prompt:`` line,
  then one line of ``Key: value`` pairs), which the WebUI, Forge, InvokeAI's
  importer and most image sites read; Paintwire writes it too;
- ``parameters`` holding SwarmUI's JSON (``sui_image_params``).

Settings are one plain map, the same the server's history records::

    {"engine", "mode", "model", "model_hash", "vae", "loras": [{"name", "weight", "hash"}],
     "embeddings": [{"name", "hash"}], "width", "height", "params": {the mode's parameters, seed resolved}}

What a format does not carry is simply absent. Recalled settings go back into a
form through :func:`fit_to_mode`, which keeps only what the mode takes.
Standard library only: the plug-ins carry this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .params import ModeSpec, ParamType

PAINTWIRE_KEY = "paintwire"
WEBUI_KEY = "parameters"
FORMAT_VERSION = 1

# The WebUI's infotext keys for Paintwire's parameter names, in the WebUI's order
# (modules/processing.py, create_infotext). Size, the model and the LoRA hashes
# come from the settings' top level.
_WEBUI_PARAMS = (
    ("steps", "Steps"), ("scheduler", "Sampler"), ("schedule", "Schedule type"), ("cfg_scale", "CFG scale"), ("seed", "Seed"),
)
_WEBUI_AFTER_MODEL = (("strength", "Denoising strength"), ("clip_skip", "Clip skip"), ("mask_blur", "Mask blur"), ("padding", "Masked area padding"))
_WEBUI_TO_PARAM = {key: name for name, key in _WEBUI_PARAMS + _WEBUI_AFTER_MODEL}
# One "Key: value" pair of the last line (the WebUI's own pattern, infotext_utils.re_param_code).
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")
# The WebUI's way to name a LoRA in the prompt, <lora:name:weight>: the one pattern for it
# (the diffusers engine reads prompts with it too).
LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([-+]?\d*\.?\d+))?>")
# An embedding is used by writing its name as a word of a prompt.
_WORD = re.compile(r"[\w.-]+")


def prompt_words(*texts: str) -> set[str]:
    """The words of prompts, as embedding names are matched against them."""
    return {w for t in texts for w in _WORD.findall(t)}

Labels = Mapping[str, Mapping[str, str]]  # parameter name -> value -> the label people (and the WebUI) know


@dataclass(frozen=True)
class Recalled:
    """Settings read from an image, and which format they came from."""

    settings: dict[str, Any]
    source: str  # "paintwire", "webui" or "swarmui"


# --- writing ---------------------------------------------------------------------------------

# Keys of a result layer's settings that are the settings' own fields, not the mode's parameters.
_NOT_PARAMS = ("engine", "mode", "model", "model_hash")


def layer_settings(engine: str, mode: str, model: str | None, layer: Any) -> dict[str, Any]:
    """The settings that made a result ``Layer`` of a job (engine, mode, model as the
    job asked): what the server's history records and what saved PNGs carry. The
    model's hash is added by whoever can read the model file (the server)."""
    params = {k: v for k, v in dict(layer.settings).items() if k not in _NOT_PARAMS}
    if layer.seed is not None:
        params["seed"] = layer.seed
    settings: dict[str, Any] = {
        "engine": engine, "mode": mode, "model": layer.settings.get("model") or model or "",
        "width": layer.image.width, "height": layer.image.height, "params": params,
    }
    if layer.settings.get("model_hash"):
        settings["model_hash"] = layer.settings["model_hash"]  # the server's, when it knew it
    if params.get("vae"):
        settings["vae"] = params["vae"]
    loras = loras_in_prompt(str(params.get("prompt") or ""))
    if loras:
        settings["loras"] = loras
    return settings



def quote(value: Any) -> str:
    """The WebUI's quoting: a value holding a comma, a colon or a newline becomes a JSON string."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _number(value: Any) -> str:
    # The WebUI prints Python floats: 7.0 stays "7.0".
    return repr(value) if isinstance(value, float) else str(value)


def format_infotext(settings: Mapping[str, Any], labels: Labels | None = None) -> str:
    """The WebUI's ``parameters`` text for ``settings``. ``labels`` turn choice values
    into the words the WebUI writes (the sampler "dpmpp_2m" as "DPM++ 2M")."""
    labels = labels or {}
    params = dict(settings.get("params") or {})

    def shown(name: str) -> Any:
        value = params.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return labels.get(name, {}).get(value, value)
        return value

    pairs: list[tuple[str, Any]] = [(key, shown(name)) for name, key in _WEBUI_PARAMS]
    if settings.get("width") and settings.get("height"):
        pairs.append(("Size", f"{settings['width']}x{settings['height']}"))
    pairs.append(("Model hash", settings.get("model_hash") or None))
    pairs.append(("Model", settings.get("model") or None))
    pairs.append(("VAE", settings.get("vae") or None))
    for name, key in _WEBUI_AFTER_MODEL:
        value = shown(name)
        if name == "clip_skip" and isinstance(value, int) and value <= 1:
            value = None  # the WebUI leaves out the default
        pairs.append((key, value))
    hashes = [f"{str(l['name']).replace(':', '').replace(',', '')}: {l['hash']}" for l in settings.get("loras") or () if l.get("hash")]
    if hashes:
        pairs.append(("Lora hashes", ", ".join(hashes)))
    ti = [f"{str(e['name']).replace(':', '').replace(',', '')}: {e['hash']}" for e in settings.get("embeddings") or () if e.get("hash")]
    if ti:
        pairs.append(("TI hashes", ", ".join(ti)))
    line = ", ".join(f"{k}: {quote(_number(v))}" for k, v in pairs if v is not None)
    prompt = str(params.get("prompt") or "")
    negative = str(params.get("negative_prompt") or "")
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{line}".strip()


def paintwire_json(settings: Mapping[str, Any]) -> str:
    return json.dumps({"format": FORMAT_VERSION, **settings}, ensure_ascii=False, separators=(",", ":"), default=str)


def png_text(settings: Mapping[str, Any], labels: Labels | None = None) -> dict[str, str]:
    """The text chunks a saved PNG carries: the WebUI's text and Paintwire's JSON."""
    return {WEBUI_KEY: format_infotext(settings, labels), PAINTWIRE_KEY: paintwire_json(settings)}


def labels_of(mode: ModeSpec | None) -> dict[str, dict[str, str]]:
    """A mode's choice labels, for :func:`format_infotext`."""
    if mode is None:
        return {}
    return {p.name: dict(zip(p.choices, p.choice_labels)) for p in mode.params if p.choice_labels}


# --- reading ---------------------------------------------------------------------------------


def recall(chunks: Mapping[str, str]) -> Recalled | None:
    """Settings from an image's text chunks: Paintwire's JSON first (exact), then
    the ``parameters`` chunk as SwarmUI's JSON or the WebUI's text. None when the
    image carries none of them."""
    own = chunks.get(PAINTWIRE_KEY)
    if own:
        try:
            obj = json.loads(own)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("params", {}), dict):
            obj.pop("format", None)
            return Recalled(obj, "paintwire")
    text = chunks.get(WEBUI_KEY, "").strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("sui_image_params"), dict):
            return Recalled(parse_swarm(obj["sui_image_params"]), "swarmui")
    return Recalled(parse_infotext(text), "webui")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def _typed(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_infotext(text: str) -> dict[str, Any]:
    """Settings from the WebUI's text (the WebUI's own reading: the last line is the
    parameters when it holds at least three pairs). Choice values stay the WebUI's
    words; :func:`fit_to_mode` maps them to a mode's values."""
    *lines, last = text.strip().split("\n")
    if len(_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            negative.append(line[len("Negative prompt:"):].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    params: dict[str, Any] = {"prompt": "\n".join(prompt)}
    if negative:
        params["negative_prompt"] = "\n".join(negative)
    settings: dict[str, Any] = {"params": params}
    pairs = {k.strip(): _unquote(v.strip()) for k, v in _PAIR.findall(last)}
    for key, value in pairs.items():
        if key in _WEBUI_TO_PARAM:
            params[_WEBUI_TO_PARAM[key]] = _typed(value)
        elif key == "Size" and _SIZE.match(value):
            w, h = _SIZE.match(value).groups()  # type: ignore[union-attr]
            settings["width"], settings["height"] = int(w), int(h)
            params["width"], params["height"] = int(w), int(h)
        elif key == "Model":
            settings["model"] = value
        elif key == "Model hash":
            settings["model_hash"] = value
        elif key == "VAE":
            settings["vae"] = value
    loras = loras_in_prompt(params["prompt"])
    hashes = dict(_hash_pairs(pairs.get("Lora hashes", "")))
    for lora in loras:
        if lora["name"] in hashes:
            lora["hash"] = hashes[lora["name"]]
    if loras:
        settings["loras"] = loras
    if pairs.get("TI hashes"):
        settings["embeddings"] = [{"name": n, "hash": h} for n, h in _hash_pairs(pairs["TI hashes"])]
    settings["mode"] = "img2img" if "Denoising strength" in pairs else "txt2img"
    return settings


def _hash_pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(","):
        name, sep, value = item.partition(":")
        if sep:
            out.append((name.strip(), value.strip()))
    return out


def loras_in_prompt(prompt: str) -> list[dict[str, Any]]:
    """The LoRAs a prompt names with the WebUI's ``<lora:name:weight>`` tags."""
    return [{"name": m.group(1), "weight": float(m.group(2) or 1.0)} for m in LORA_TAG.finditer(prompt)]


# SwarmUI's parameter ids (lower case, no spaces) for Paintwire's names.
_SWARM = {
    "prompt": "prompt", "negativeprompt": "negative_prompt", "seed": "seed", "steps": "steps", "cfgscale": "cfg_scale",
    "sampler": "scheduler", "scheduler": "schedule", "initimagecreativity": "strength", "clipstopatlayer": "clip_skip",
}


def parse_swarm(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from SwarmUI's ``sui_image_params``."""
    params: dict[str, Any] = {}
    for key, name in _SWARM.items():
        if key in obj and obj[key] is not None:
            params[name] = obj[key]
    if isinstance(params.get("clip_skip"), int):
        params["clip_skip"] = abs(params["clip_skip"])  # SwarmUI counts from the end: -2
    settings: dict[str, Any] = {"params": params, "mode": "img2img" if "strength" in params else "txt2img"}
    if isinstance(obj.get("width"), int) and isinstance(obj.get("height"), int):
        settings["width"], settings["height"] = obj["width"], obj["height"]
        params["width"], params["height"] = obj["width"], obj["height"]
    if obj.get("model"):
        settings["model"] = str(obj["model"])
    if obj.get("vae"):
        settings["vae"] = str(obj["vae"])
    loras, weights = obj.get("loras"), obj.get("loraweights")
    if isinstance(loras, list):
        ws = weights if isinstance(weights, list) else []
        settings["loras"] = [{"name": str(n), "weight": float(ws[i]) if i < len(ws) else 1.0} for i, n in enumerate(loras)]
    return settings


# --- into a form -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fitted:
    """Recalled settings made fit for one mode: the values it takes, and a note
    for each one it does not (shown to the user, never silently lost)."""

    params: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)


def fit_to_mode(settings: Mapping[str, Any], mode: ModeSpec) -> Fitted:
    """The recalled parameters that ``mode`` takes, typed as its specs say; a choice
    given by its label (the WebUI's "DPM++ 2M") becomes its value. Anything else is
    dropped with a note."""
    specs = {p.name: p for p in mode.params}
    params: dict[str, Any] = {}
    notes: list[str] = []
    for name, value in dict(settings.get("params") or {}).items():
        spec = specs.get(name)
        if spec is None:
            notes.append(f"{name} = {value!r}: {mode.label} has no such setting; left out.")
            continue
        try:
            params[name] = fit_value(spec, value)
        except ValueError as exc:
            notes.append(f"{spec.label or name} = {value!r}: {exc}; left out.")
    return Fitted(params, tuple(notes))


def fit_value(spec: Any, value: Any) -> Any:
    """``value`` typed as ``spec`` (a ParamSpec) says, a choice's label accepted for its
    value; raises ValueError with the reason when it does not fit."""
    kind = spec.type
    if kind is ParamType.CHOICE:
        text = str(value)
        if text in spec.choices:
            return text
        # A label ("DPM++ 2M"), or the value in other letter case ("DDIM"), names the value too.
        by_label = {**{str(c).lower(): c for c in spec.choices}, **{str(l).lower(): c for c, l in zip(spec.choices, spec.choice_labels)}}
        if text.lower() in by_label:
            return by_label[text.lower()]
        raise ValueError(f"not one of {', '.join(spec.choices)}")
    if kind is ParamType.BOOL:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ValueError("not true or false")
    if kind in (ParamType.INT, ParamType.SEED):
        number = float(value)
        if number != int(number):
            raise ValueError("not a whole number")
        out: Any = int(number)
    elif kind is ParamType.FLOAT:
        out = float(value)
    else:
        return str(value)
    if spec.minimum is not None and out < spec.minimum or spec.maximum is not None and out > spec.maximum:
        raise ValueError(f"outside {spec.minimum}..{spec.maximum}")
    return out
