"""What a checkpoint's tensors cannot tell, declared in a file beside it.

WebUI users keep ``model.yaml`` next to ``model.safetensors`` (the original
inference config, e.g. SD2's ``v2-inference-v.yaml``); its
``model.params.parameterization: "v"`` marks a v-prediction model, and a
config without it means noise (epsilon) prediction. A shorter form is
accepted too: a top-level ``prediction_type: v_prediction`` (or ``epsilon``).

A Flux transformer file takes three more keys, for what neither its tensors nor
the folders can tell (docs/models.md)::

    kind: flux-kontext            # a kind of the file's family (Kontext, Klein base ...)
    text_encoders: [clip_l.safetensors, t5xxl_fp16.safetensors]
    vae: ae.safetensors

File names are looked up beside the sidecar, then among the parts found in the
model folders (by file name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .families.base import EPSILON, V_PREDICTION

SUFFIXES = (".yaml", ".yml")
_PARAMETERIZATION = {"v": V_PREDICTION, "eps": EPSILON}


class SidecarError(ValueError):
    """The file beside a checkpoint cannot be used; the message says how to fix it."""


def sidecar_path(checkpoint: Path) -> Path | None:
    for suffix in SUFFIXES:
        path = checkpoint.with_suffix(suffix)
        if path.is_file():
            return path
    return None


def _read(checkpoint: Path) -> tuple[Path, dict[str, Any]] | None:
    path = sidecar_path(checkpoint)
    if path is None:
        return None
    import yaml

    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SidecarError(f"{path.name} beside the checkpoint is not readable YAML ({exc}); fix or remove it.") from None
    if not isinstance(data, dict):
        raise SidecarError(f"{path.name} beside the checkpoint is not a YAML mapping; fix or remove it.")
    return path, data


@dataclass(frozen=True)
class DeclaredParts:
    """What a sidecar says of a model assembled from files: its kind and the files of its parts."""

    kind: str | None = None
    text_encoders: tuple[str, ...] = ()
    vae: str | None = None


def declared_parts(checkpoint: Path) -> DeclaredParts:
    """The kind and part files declared beside ``checkpoint`` (each None or empty when not declared).
    Only the types are checked here; whether the kind fits the file's family, the matcher checks."""
    read = _read(checkpoint)
    if read is None:
        return DeclaredParts()
    path, data = read
    kind, encoders, vae = data.get("kind"), data.get("text_encoders", []), data.get("vae")
    if kind is not None and not isinstance(kind, str):
        raise SidecarError(f"{path.name}: kind must be a model kind such as flux-kontext, not {kind!r}.")
    if isinstance(encoders, str):
        encoders = [encoders]
    if not isinstance(encoders, list) or not all(isinstance(e, str) and e for e in encoders):
        raise SidecarError(f"{path.name}: text_encoders must be a list of file names, not {encoders!r}.")
    if vae is not None and not (isinstance(vae, str) and vae):
        raise SidecarError(f"{path.name}: vae must be a file name, not {vae!r}.")
    return DeclaredParts(kind, tuple(encoders), vae)


def declared_prediction(checkpoint: Path) -> str | None:
    """The prediction type declared beside ``checkpoint``, or None when nothing is declared."""
    read = _read(checkpoint)
    if read is None:
        return None
    path, data = read
    if "prediction_type" in data:
        value = data["prediction_type"]
        if value not in (EPSILON, V_PREDICTION):
            raise SidecarError(f"{path.name}: prediction_type must be {EPSILON} or {V_PREDICTION}, not {value!r}.")
        return str(value)
    model = data.get("model")
    params = model.get("params") if isinstance(model, dict) else None
    value = params.get("parameterization", "eps") if isinstance(params, dict) else "eps"
    if value not in _PARAMETERIZATION:
        raise SidecarError(f"{path.name}: model.params.parameterization must be \"v\" or \"eps\", not {value!r}.")
    return _PARAMETERIZATION[value]
