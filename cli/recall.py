"""``paintwire recall IMAGE``: the settings saved in an image, as ``paintwire run`` arguments.

Reads Paintwire's JSON, the WebUI's ``parameters`` text or SwarmUI's JSON (see
paintwire.protocol.metadata). With a server to ask, the settings are fitted to
it as the plug-ins fit them (paintwire.hostkit.recall: the WebUI's sampler
names become its values, a model it lacks is replaced by one it has, what the
mode does not take is left out, each with a note on stderr); without one, they
are printed as they were saved. This module only turns them into a command line.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from paintwire.hostkit.recall import as_saved, recollect, settings_in_image
from paintwire.hostkit.request import JobSettings
from paintwire.protocol import Capabilities, InputKind
from paintwire.protocol.metadata import Recalled

def read_settings(path: Path) -> Recalled | None:
    """The settings saved in the PNG at ``path``; raises ValueError for a file that is not a PNG."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    try:
        return settings_in_image(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_arguments(recalled: Recalled, caps: Capabilities | None) -> tuple[list[str], list[str]]:
    """The ``paintwire run`` arguments for ``recalled`` (without ``-o``), and notes for the user."""
    settings: JobSettings | None = None
    notes: list[str] = []
    if caps is not None:
        fitted = recollect(recalled.settings, caps)
        settings, notes = fitted.settings, list(fitted.notes)
        if settings is None:
            notes.append("the parameters are printed as saved.")
    if settings is None:
        settings = as_saved(recalled.settings)
    elif caps is not None:
        notes.extend(_inputs_note(caps, settings))
    args = ["run", settings.mode, "--engine", settings.engine]
    if settings.model:
        args += ["--model", settings.model]
    for name, value in settings.params.items():
        args += ["-p", f"{name}={_value(value)}"]
    return args, notes


def _inputs_note(caps: Capabilities, settings: JobSettings) -> list[str]:
    """What the mode reads from files, which a recall cannot give: the arguments to add."""
    info = caps.engine(settings.engine)
    mode = info.mode(settings.mode) if info else None
    if mode is None:
        return []
    needs = [str(getattr(i.kind, "value", i.kind)) for i in mode.inputs if i.required]
    if not needs:
        return []
    return [f"{mode.label} reads {' and '.join(needs)}: add --image FILE" + (" and --mask FILE" if InputKind.MASK.value in needs else "") + "."]


def command_line(args: list[str]) -> str:
    return shlex.join(["paintwire", *args])
