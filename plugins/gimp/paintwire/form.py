"""Where the GIMP dialog starts: a procedure's last arguments read as one
mode's parameter values. The form itself (which widget, range, step and
fold each parameter gets) is paintwire.hostkit.form, shared with Krita.
"""

from __future__ import annotations

import json
from typing import Any

from paintwire.hostkit.request import params_for_mode
from paintwire.protocol import ModeSpec

from actions import GENERIC_PARAMS, STEPS_DEFAULT, STRENGTH_DEFAULT, Args


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
    return params_for_mode(mode, raw)
