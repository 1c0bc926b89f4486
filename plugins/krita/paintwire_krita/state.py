"""The docker's state, apart from Qt and Krita: settings, capabilities, the job
in flight and the history. Tested without Krita (tests/unit/test_krita_state.py).

The docker shows this state and changes it; document.py reads and writes the
document; paintwire.protocol.workflow holds the rules shared with the GIMP
plug-in (request building, layer naming, placement, history entries).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from paintwire.protocol import DEFAULT_URL, Capabilities, ModeSpec, PixelFormat, ProtocolError, Result
from paintwire.protocol import workflow as wf
from paintwire.protocol.workflow import Target, TargetKind, result_target  # noqa: F401  (the docker's words too)

# Where the input pixels come from.
INPUT_VISIBLE = "visible"  # the whole visible image (Krita's projection)
INPUT_LAYER = "layer"  # the active layer only
INPUT_SOURCES = ((INPUT_VISIBLE, "Visible image"), (INPUT_LAYER, "Active layer"))

# Krita hands out 8-bit RGBA as B, G, R, A: asking for results in the same
# order means the plug-in writes them as they come.
OUTPUT_FORMAT = PixelFormat.BGRA8
CLIENT_NAME = "paintwire-krita"


# For a result of another size that does not grow the canvas (an upscale): the artist's choice.
RESIZE_TARGETS = ((TargetKind.RESIZE.value, "Resize this document"), (TargetKind.NEW_DOCUMENT.value, "Open as a new document"))


@dataclass
class PanelSettings:
    """What the artist set in the docker; stored in kritarc between sessions.

    ``values`` holds parameter values per mode (the same name can mean a
    different thing in another mode: an upscale's refine strength is not an
    img2img strength); ``prompts`` holds the prompt and negative prompt,
    which stay when the mode changes.
    """

    url: str = DEFAULT_URL
    token: str = ""
    ui_mode: str = "inpaint"
    choice: str = ""  # Choice.key: "engine/model"
    input_source: str = INPUT_VISIBLE
    resize_target: str = TargetKind.RESIZE.value  # RESIZE_TARGETS: where an upscale goes
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)

    def mode_values(self, ui_mode: str | None = None) -> dict[str, Any]:
        """The values of ``ui_mode`` (default: the current mode), prompts included."""
        out = dict(self.values.get(ui_mode or self.ui_mode, {}))
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
        if out.ui_mode not in wf.UI_MODE_BY_KEY:
            out.ui_mode = cls.ui_mode
        if out.input_source not in dict(INPUT_SOURCES):
            out.input_source = INPUT_VISIBLE
        if out.resize_target not in dict(RESIZE_TARGETS):
            out.resize_target = cls.resize_target
        out.values = {k: v for k, v in out.values.items() if isinstance(v, dict)}
        out.prompts = {k: v for k, v in out.prompts.items() if k in wf.PROMPT_PARAMS and isinstance(v, str)}
        return out


@dataclass
class Ticket:
    """A job sent from the docker: enough to put its result in the right place."""

    number: int
    settings: wf.JobSettings
    document: Any  # the Krita Document it came from (opaque here)
    document_size: tuple[int, int]
    job_id: str | None = None
    cancel_requested: bool = False


class PanelState:
    """Everything the docker shows, kept consistent in one place."""

    def __init__(self, settings: PanelSettings | None = None) -> None:
        self.settings = settings or PanelSettings()
        self.capabilities: Capabilities | None = None
        self.server_name = ""
        self.history = DocumentHistory()  # the active document's
        self.ticket: Ticket | None = None
        self._tickets = 0

    # -- connection --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.capabilities is not None

    def set_capabilities(self, caps: Capabilities | None, server_name: str = "") -> None:
        self.capabilities = caps
        self.server_name = server_name
        if caps is None:
            return
        modes = [m.key for m in wf.available_modes(caps)]
        if modes and self.settings.ui_mode not in modes:
            self.settings.ui_mode = modes[0]
        self._fix_choice()

    # -- mode, model, parameters --------------------------------------------------------

    def modes(self) -> list[wf.UiMode]:
        return wf.available_modes(self.capabilities) if self.capabilities else []

    def choices(self) -> list[wf.Choice]:
        return wf.model_choices(self.capabilities, self.settings.ui_mode) if self.capabilities else []

    def set_mode(self, ui_mode: str) -> None:
        if ui_mode not in wf.UI_MODE_BY_KEY:
            raise ValueError(f"unknown mode {ui_mode!r}")
        self.settings.ui_mode = ui_mode
        self._fix_choice()

    def set_choice(self, key: str) -> None:
        if key in [c.key for c in self.choices()]:
            self.settings.choice = key

    def _fix_choice(self) -> None:
        keys = [c.key for c in self.choices()]
        if keys and self.settings.choice not in keys:
            # Prefer a model of the engine chosen before (diffusers stays diffusers).
            engine = self.settings.choice.split("/", 1)[0]
            self.settings.choice = next((k for k in keys if k.startswith(engine + "/")), keys[0])

    def current_choice(self) -> wf.Choice | None:
        return next((c for c in self.choices() if c.key == self.settings.choice), None)

    def current_mode(self) -> ModeSpec | None:
        choice = self.current_choice()
        if choice is None or self.capabilities is None:
            return None
        return wf.find_mode(self.capabilities, choice.engine, self.settings.ui_mode)

    def value(self, name: str) -> Any:
        """The value the form shows for ``name``: the artist's, else the mode's default."""
        mode = self.current_mode()
        spec = next((p for p in mode.params if p.name == name), None) if mode else None
        values = self.settings.mode_values()
        if name in values:
            if spec is None:
                return values[name]
            try:
                return spec.check(values[name], name)
            except ProtocolError:
                pass
        return spec.default if spec is not None else None

    def set_value(self, name: str, value: Any) -> None:
        if name in wf.PROMPT_PARAMS:
            self.settings.prompts[name] = value
        else:
            self.settings.values.setdefault(self.settings.ui_mode, {})[name] = value

    def job_settings(self) -> wf.JobSettings:
        """The settings a Generate now would send; raises ValueError when not ready."""
        choice = self.current_choice()
        mode = self.current_mode()
        if choice is None or mode is None:
            raise ValueError("Connect to a server that offers this mode first.")
        return wf.JobSettings(self.settings.ui_mode, choice.engine, choice.model, wf.params_for_mode(mode, self.settings.mode_values()))

    def apply_job_settings(self, js: wf.JobSettings) -> None:
        """Put earlier settings (from the history) back into the panel."""
        self.settings.ui_mode = js.ui_mode
        self.settings.choice = wf.Choice(js.engine, js.model, "").key
        for name, value in js.params.items():
            self.set_value(name, value)
        self._fix_choice()

    # -- jobs ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.ticket is not None

    def start_job(self, settings: wf.JobSettings, document: Any, document_size: tuple[int, int]) -> Ticket:
        if self.ticket is not None:
            raise ValueError("A job is already running; cancel it or wait for it.")
        self._tickets += 1
        self.ticket = Ticket(self._tickets, settings, document, document_size)
        return self.ticket

    def finish_job(self, result: Result | None) -> tuple[Ticket, wf.Placement | None]:
        """End the job in flight. With a result, returns where its layers go
        (and records it in the history once the docker has written it)."""
        ticket = self.ticket
        if ticket is None:
            raise ValueError("no job in flight")
        self.ticket = None
        if result is None:
            return ticket, None
        return ticket, wf.place_result(result, ticket.document_size, wf.prompt_of(ticket.settings.params))

    def record(
        self, ticket: Ticket, result: Result, placement: wf.Placement, history: "DocumentHistory | None" = None, thumbnail: bytes = b"",
    ) -> wf.HistoryEntry:
        """Add the finished job to ``history`` (that of the job's document; default: the active one's)."""
        entry = wf.history_entry(ticket.job_id or result.job or "", ticket.settings, result, placement)
        (history if history is not None else self.history).record(entry, thumbnail)
        return entry


def describe_error(message: str, connected: bool) -> str:
    """The status line for a failure: what happened and, for a lost connection, what to do."""
    text = " ".join(message.split())
    if not connected:
        return f"Not connected: {text}"
    return f"Failed: {text}"


# A document's history as it is stored in the document (a Krita annotation, saved
# in the .kra): the entries, newest first, and a small PNG thumbnail per job.
HISTORY_FORMAT = 1
MAX_THUMBNAILS = wf.MAX_HISTORY


@dataclass
class DocumentHistory:
    """One document's history and the thumbnails of its results."""

    history: wf.History = field(default_factory=wf.History)
    thumbnails: dict[str, bytes] = field(default_factory=dict)  # job id -> PNG

    def record(self, entry: wf.HistoryEntry, thumbnail: bytes) -> None:
        self.history.add(entry)
        if thumbnail:
            self.thumbnails[entry.job_id] = thumbnail
        kept = {e.job_id for e in self.history.entries}
        self.thumbnails = {k: v for k, v in self.thumbnails.items() if k in kept}

    def thumbnail(self, entry: wf.HistoryEntry) -> bytes:
        return self.thumbnails.get(entry.job_id, b"")

    def to_bytes(self) -> bytes:
        obj = {
            "format": HISTORY_FORMAT, "entries": self.history.to_list(),
            "thumbnails": {k: base64.b64encode(v).decode("ascii") for k, v in self.thumbnails.items()},
        }
        return json.dumps(obj).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes | None) -> "DocumentHistory":
        """A stored history; anything unreadable gives an empty one (never an error at open)."""
        try:
            obj = json.loads((data or b"{}").decode("utf-8"))
        except ValueError:
            return cls()
        if not isinstance(obj, Mapping) or not isinstance(obj.get("entries"), list):
            return cls()
        thumbs: dict[str, bytes] = {}
        for key, value in (obj.get("thumbnails") or {}).items():
            try:
                thumbs[str(key)] = base64.b64decode(value, validate=True)
            except (ValueError, TypeError):
                continue
        return cls(wf.History.from_list(obj["entries"]), thumbs)
