"""What a checkpoint's tensors cannot tell, declared in a file beside it.

WebUI users keep ``model.yaml`` next to ``model.safetensors`` (the original
inference config, e.g. SD2's ``v2-inference-v.yaml``); its
``model.params.parameterization: "v"`` marks a v-prediction model, and a
config without it means noise (epsilon) prediction. A shorter form is
accepted too: a top-level ``prediction_type: v_prediction`` (or ``epsilon``).
"""

from __future__ import annotations

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


def declared_prediction(checkpoint: Path) -> str | None:
    """The prediction type declared beside ``checkpoint``, or None when nothing is declared."""
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
