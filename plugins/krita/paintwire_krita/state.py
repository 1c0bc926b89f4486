"""The docker's state, apart from Qt and Krita: settings, capabilities, the job
in flight and the history. Tested without Krita (tests/unit/test_krita_state.py).

The docker shows this state; controller.py changes it as jobs run;
document.py reads and writes the document; paintwire.hostkit holds the rules
shared with the GIMP plug-in (modes and models on offer, request building,
layer naming, placement, history entries). The modes are the server's: this
module names none.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from paintwire.hostkit import controls as kit_controls
from paintwire.hostkit import modes as kit_modes
from paintwire.hostkit.controls import ControlLayer
from paintwire.hostkit.form import value_of
from paintwire.hostkit.history import History, HistoryEntry
from paintwire.hostkit.job_flow import place_for, record_for
from paintwire.hostkit.placement import Placement
from paintwire.hostkit.request import PROMPT_PARAMS, JobSettings, params_for_mode
from paintwire.hostkit.sources import InputSource
from paintwire.protocol import DEFAULT_URL, Capabilities, InputKind, ModeSpec, PlacementKind, Result

CLIENT_NAME = "paintwire-krita"
# Where a result of a resized picture (an upscale) goes: the artist's choice.
RESIZE_TARGETS = ((PlacementKind.RESIZE.value, "Resize this document"), (PlacementKind.NEW_DOCUMENT.value, "Open as a new document"))


@dataclass
class PanelSettings:
    """What the artist set in the docker; stored in kritarc between sessions.

    ``mode`` is the server's mode name; ``values`` holds parameter values per mode (the same name can mean a
    different thing in another mode: an upscale's refine strength is not an
    img2img strength); ``prompts`` holds the prompt and negative prompt,
    which stay when the mode changes.
    """

    url: str = DEFAULT_URL
    token: str = ""
    mode: str = ""  # empty: the first mode the server offers
    choice: str = ""  # Choice.key: "engine/model"
    input_source: str = InputSource.VISIBLE.value
    resize_target: str = PlacementKind.RESIZE.value  # one of RESIZE_TARGETS
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)

    def mode_values(self, mode: str | None = None) -> dict[str, Any]:
        """The values of ``mode`` (default: the current mode), prompts included."""
        out = dict(self.values.get(mode or self.mode, {}))
        out.update(self.prompts)
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "PanelSettings":
        """Settings from kritarc; anything unreadable falls back to the default."""
        try:
            obj = json.loads(text or "{}")
        except ValueError:
            return cls()
        if not isinstance(obj, dict):
            return cls()
        out = cls()
        for f in fields(cls):
            value = obj.get(f.name)
            if value is not None and isinstance(value, type(getattr(out, f.name))):
                setattr(out, f.name, value)
        if out.input_source not in {s.value for s in InputSource}:
            out.input_source = InputSource.VISIBLE.value
        if out.resize_target not in dict(RESIZE_TARGETS):
            out.resize_target = cls.resize_target
        out.values = {k: v for k, v in out.values.items() if isinstance(v, dict)}
        out.prompts = {k: v for k, v in out.prompts.items() if k in PROMPT_PARAMS and isinstance(v, str)}
        return out


@dataclass
class Ticket:
    """A job sent from the docker: enough to put its result in the right place."""

    number: int
    settings: JobSettings
    mode: ModeSpec  # the engine's description of the mode, as it was when the job started
    document: Any  # the Krita Document it came from (opaque here)
    document_size: tuple[int, int]
    job_id: str | None = None
    cancel_requested: bool = False


# Krita gathers the picture, the selection (or a layer as mask), a sketch layer and control layers.
SUPPORTED_INPUTS = (InputKind.IMAGE, InputKind.MASK, InputKind.SKETCH, InputKind.CONTROL)


class PanelState:
    """Everything the docker shows, kept consistent in one place."""

    def __init__(self, settings: PanelSettings | None = None, history: History | None = None) -> None:
        self.settings = settings or PanelSettings()
        self.capabilities: Capabilities | None = None
        self.server_name = ""
        self.history = history or History()  # the active document's
        self.thumbnails: dict[str, bytes] = {}  # its results' thumbnails (PNG) by job id
        self.ticket: Ticket | None = None
        self._tickets = 0
        self.parent: int | None = None  # the server's history result the panel's settings came from
        # The active document's control layers (saved in it, like the history).
        self.controls: list[ControlLayer] = []

    # -- connection --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.capabilities is not None

    def set_capabilities(self, caps: Capabilities | None, server_name: str = "") -> None:
        self.capabilities = caps
        self.server_name = server_name
        if caps is None:
            return
        names = [m.name for m in self.modes()]
        if names and self.settings.mode not in names:
            self.settings.mode = names[0]
        self._fix_choice()

    # -- mode, model, parameters --------------------------------------------------------

    def modes(self) -> list[ModeSpec]:
        return kit_modes.offered_modes(self.capabilities, SUPPORTED_INPUTS)

    def mode_label(self, name: str) -> str:
        return kit_modes.mode_label(self.capabilities, name)

    def choices(self) -> list[kit_modes.Choice]:
        return kit_modes.model_choices(self.capabilities, self.settings.mode)

    def set_mode(self, mode: str) -> None:
        if mode not in [m.name for m in self.modes()]:
            raise ValueError(f"the server offers no mode {mode!r}")
        self.settings.mode = mode
        self._fix_choice()

    def set_choice(self, key: str) -> None:
        if key in [c.key for c in self.choices()]:
            self.settings.choice = key

    def _fix_choice(self) -> None:
        self.settings.choice = kit_modes.keep_choice(self.choices(), self.settings.choice)

    def current_choice(self) -> kit_modes.Choice | None:
        return next((c for c in self.choices() if c.key == self.settings.choice), None)

    def current_mode(self) -> ModeSpec | None:
        choice = self.current_choice()
        if choice is None:
            return None
        return kit_modes.find_mode(self.capabilities, choice.engine, self.settings.mode)

    def value(self, name: str) -> Any:
        """The value the form shows for ``name``: the artist's, else the mode's default."""
        mode = self.current_mode()
        spec = next((p for p in mode.params if p.name == name), None) if mode else None
        values = self.settings.mode_values()
        if spec is None:
            return values.get(name)
        return value_of(spec, values)

    def set_value(self, name: str, value: Any) -> None:
        if name in PROMPT_PARAMS:
            self.settings.prompts[name] = value
        else:
            self.settings.values.setdefault(self.settings.mode, {})[name] = value

    def job_settings(self) -> JobSettings:
        """The settings a Generate now would send; raises ValueError when not ready."""
        choice = self.current_choice()
        mode = self.current_mode()
        if choice is None or mode is None:
            raise ValueError("Connect to a server that offers this mode first.")
        return JobSettings(self.settings.mode, choice.engine, choice.model, params_for_mode(mode, self.settings.mode_values()), self.parent)

    def apply_job_settings(self, js: JobSettings) -> None:
        """Put earlier settings (from the history) back into the panel."""
        self.parent = js.parent  # jobs from here on start from that result (None: from none)
        self.settings.mode = js.mode
        self.settings.choice = kit_modes.Choice(js.engine, js.model, "").key
        for name, value in js.params.items():
            self.set_value(name, value)
        self._fix_choice()

    # -- control layers -------------------------------------------------------------------

    def control_kinds(self) -> tuple:
        """The control kinds of the engine that runs the current choice."""
        choice = self.current_choice()
        return kit_controls.control_kinds(self.capabilities, choice.engine) if choice is not None else ()

    def takes_controls(self) -> bool:
        return kit_controls.accepts_controls(self.current_mode()) and bool(self.control_kinds())

    def add_control(self, layer: str) -> ControlLayer:
        """A control for ``layer`` (the current layer), of the kind added last if offered."""
        if len(self.controls) >= kit_controls.MAX_CONTROLS:
            raise ValueError(f"At most {kit_controls.MAX_CONTROLS} control layers go with a job; remove one first.")
        control = kit_controls.new_control(self.control_kinds(), layer, self.controls[-1] if self.controls else None)
        self.controls.append(control)
        return control

    def remove_control(self, index: int) -> None:
        if 0 <= index < len(self.controls):
            del self.controls[index]

    def change_control(self, index: int, **changes: Any) -> ControlLayer:
        """Change one control; a new kind starts from its own default preprocessor and parameters."""
        control = replace(self.controls[index], **changes)
        if "kind" in changes and changes["kind"] != self.controls[index].kind:
            control = replace(control, preprocessor="", params={})
        self.controls[index] = control
        return control

    # -- jobs ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.ticket is not None

    def start_job(self, settings: JobSettings, document: Any, document_size: tuple[int, int]) -> Ticket:
        if self.ticket is not None:
            raise ValueError("A job is already running; cancel it or wait for it.")
        mode = kit_modes.find_mode(self.capabilities, settings.engine, settings.mode)
        if mode is None:
            raise ValueError("Connect to a server that offers this mode first.")
        self._tickets += 1
        self.ticket = Ticket(self._tickets, settings, mode, document, document_size)
        return self.ticket

    def finish_job(self, result: Result | None) -> tuple[Ticket, Placement | None]:
        """End the job in flight. With a result, returns where its layers go
        (and records it in the history once the docker has written it)."""
        ticket = self.ticket
        if ticket is None:
            raise ValueError("no job in flight")
        self.ticket = None
        if result is None:
            return ticket, None
        return ticket, place_for(result, ticket.settings, ticket.mode, ticket.document_size)

    def record(self, ticket: Ticket, result: Result, placement: Placement, thumbnail: bytes = b"") -> HistoryEntry:
        entry = record_for(ticket.job_id or "", ticket.settings, ticket.mode, result, placement)
        self.history.add(entry)
        if thumbnail:
            self.thumbnails[entry.job_id] = thumbnail
        kept = {e.job_id for e in self.history.entries}
        self.thumbnails = {k: v for k, v in self.thumbnails.items() if k in kept}
        return entry

    def show_history(self, history: History, thumbnails: dict[str, bytes]) -> None:
        """Switch to another document's history (the active document changed)."""
        self.history, self.thumbnails = history, thumbnails


# A document's history as it is stored in the document (a Krita annotation, saved
# in the .kra): the entries, newest first, and a small PNG thumbnail per job.
HISTORY_FORMAT = 1


def history_to_bytes(history: History, thumbnails: Mapping[str, bytes]) -> bytes:
    obj = {
        "format": HISTORY_FORMAT, "entries": history.to_list(),
        "thumbnails": {k: base64.b64encode(v).decode("ascii") for k, v in thumbnails.items()},
    }
    return json.dumps(obj).encode("utf-8")


def history_from_bytes(data: bytes | None) -> tuple[History, dict[str, bytes]]:
    """A stored history; anything unreadable gives an empty one (never an error at open)."""
    try:
        obj = json.loads((data or b"{}").decode("utf-8"))
    except ValueError:
        return History(), {}
    if not isinstance(obj, Mapping) or not isinstance(obj.get("entries"), list):
        return History(), {}
    thumbs: dict[str, bytes] = {}
    for key, value in (obj.get("thumbnails") or {}).items():
        try:
            thumbs[str(key)] = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            continue
    return History.from_list(obj["entries"]), thumbs


# A document's control layers as stored in it (a Krita annotation beside the history).
def controls_to_bytes(controls: list[ControlLayer]) -> bytes:
    return kit_controls.controls_to_json(controls).encode("utf-8")


def controls_from_bytes(data: bytes | None) -> list[ControlLayer]:
    """Stored controls; anything unreadable is dropped (never an error at open)."""
    try:
        return kit_controls.stored_controls((data or b"").decode("utf-8"))
    except UnicodeDecodeError:
        return []
