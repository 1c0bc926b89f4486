"""What a painting-program plug-in does between its document and the protocol.

Host-neutral and sans-I/O, like the rest of the package: the Krita and GIMP
plug-ins read their document into a :class:`Snapshot`, call
:func:`build_request`, send the request with the blocking client, and turn the
:class:`~paintwire.protocol.messages.Result` into a :class:`Placement` that
they write as new layers. The same rules then hold in every host: what counts
as the mask when nothing is selected, which parameters go with which mode, how
result layers are named, what a history entry records.

Standard library only; Python 3.10+.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from .errors import ErrorCode, ProtocolError
from .images import ImagePayload, PixelFormat
from .messages import Capabilities, JobRequest, Result
from .params import ModeSpec, ParamType

# --- the artist's modes ------------------------------------------------------------------


@dataclass(frozen=True)
class UiMode:
    """A mode as the plug-ins name it, and the server mode that does it."""

    key: str
    label: str
    server_mode: str
    help: str


# In the order the plug-ins list them. A mode is offered only when some engine
# of the connected server has its ``server_mode``.
UI_MODES: tuple[UiMode, ...] = (
    UiMode("generate", "Generate", "txt2img", "A new picture from the prompt, the size of the canvas."),
    UiMode("refine", "Refine (img2img)", "img2img", "Rework the picture (or the selected part) guided by the prompt."),
    UiMode("inpaint", "Inpaint", "inpaint", "Regenerate what is selected; the rest stays as it is."),
    UiMode(
        "sketch", "Inpaint sketch", "inpaint_sketch",
        "Paint rough colour strokes, select around them (or choose their layer as the sketch layer), and regenerate.",
    ),
    UiMode("expand", "Expand (outpaint)", "outpaint", "Grow the picture beyond its edges."),
    UiMode("upscale", "Upscale", "upscale", "Enlarge the picture; the result opens as a new document."),
)
UI_MODE_BY_KEY = {m.key: m for m in UI_MODES}

# Models of these kinds modify another model; they are not chosen as "the model".
ADD_ON_KINDS = frozenset({"lora", "embedding", "vae", "textual_inversion"})

# Parameter names the plug-ins show as text boxes of their own above the form.
PROMPT = "prompt"
NEGATIVE_PROMPT = "negative_prompt"
PROMPT_PARAMS = (PROMPT, NEGATIVE_PROMPT)
SEED = "seed"

MAX_LAYER_NAME = 80  # Krita and GIMP accept longer names, but the layer list truncates them


def available_modes(caps: Capabilities) -> list[UiMode]:
    """The UI modes some engine of the server can do, in display order."""
    offered = {m.name for e in caps.engines for m in e.modes}
    return [m for m in UI_MODES if m.server_mode in offered]


@dataclass(frozen=True)
class Choice:
    """One entry of the model list: which engine runs it, and the model to name in the request."""

    engine: str
    model: str | None
    label: str

    @property
    def key(self) -> str:
        return f"{self.engine}/{self.model or ''}"


def model_choices(caps: Capabilities, ui_mode: str) -> list[Choice]:
    """The models that can run ``ui_mode``, each with its engine.

    Engines that can do the mode but list no model appear once under their own
    label (the server then uses the engine's default).
    """
    server_mode = UI_MODE_BY_KEY[ui_mode].server_mode
    out: list[Choice] = []
    for engine in caps.engines:
        if engine.mode(server_mode) is None:
            continue
        models = [m for m in caps.models if m.engine == engine.name and m.kind not in ADD_ON_KINDS]
        if models:
            out.extend(Choice(engine.name, m.name, m.label or m.name) for m in models)
        else:
            out.append(Choice(engine.name, None, engine.label))
    return out


def find_mode(caps: Capabilities, engine: str, ui_mode: str) -> ModeSpec | None:
    info = caps.engine(engine)
    return info.mode(UI_MODE_BY_KEY[ui_mode].server_mode) if info is not None else None


# --- reading the document --------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What a plug-in read from its document, in 8-bit form.

    ``pixels`` is the whole canvas (or the chosen layer, canvas-sized) in
    ``pixel_format``; ``selection`` is one byte per canvas pixel (0 = not
    selected, 255 = selected, feathering in between) or None when nothing is
    selected; ``mask_layer`` is a canvas-sized l8 mask read from a layer the
    artist chose, which replaces the selection.
    """

    width: int
    height: int
    pixels: bytes
    pixel_format: PixelFormat
    selection: bytes | None = None
    mask_layer: bytes | None = None
    document_name: str = ""

    def __post_init__(self) -> None:
        ImagePayload(self.width, self.height, self.pixel_format, self.pixels).validate("snapshot.pixels")
        for name in ("selection", "mask_layer"):
            data = getattr(self, name)
            if data is not None and len(data) != self.width * self.height:
                raise ValueError(f"snapshot.{name} must be {self.width * self.height} bytes (one per pixel), got {len(data)}")

    def image(self) -> ImagePayload:
        return ImagePayload(self.width, self.height, self.pixel_format, self.pixels)

    def mask(self) -> bytes:
        """The mask a job uses: the chosen mask layer, else the selection, else the whole canvas."""
        if self.mask_layer is not None:
            return self.mask_layer
        if self.selection is not None and any(self.selection):
            return self.selection
        return whole_canvas_mask(self.width, self.height)

    @property
    def has_selection(self) -> bool:
        return self.selection is not None and any(self.selection)


def whole_canvas_mask(width: int, height: int) -> bytes:
    """The mask used when nothing is selected: everything."""
    return b"\xff" * (width * height)


def alpha_of(pixels: bytes) -> bytes:
    """The alpha channel of 4-channel 8-bit pixels (rgba8 or bgra8) as an l8 mask."""
    return pixels[3::4]


def mask_from_layer(pixels: bytes) -> bytes:
    """An l8 mask from a layer's 4-channel 8-bit pixels.

    A layer with transparency (strokes painted on an empty layer) masks where
    it is painted: its alpha. A fully opaque layer (a greyscale mask painted
    white on black) masks by its grey level; the green byte stands for grey,
    as it sits at the same place in rgba8 and bgra8.
    """
    alpha = pixels[3::4]
    if alpha.count(255) != len(alpha):
        return alpha
    return pixels[1::4]


# Krita's and GIMP's colour depths, and how a plug-in brings them to 8 bits.
DEPTH_BYTES = {"U8": 1, "U16": 2, "F16": 2, "F32": 4}
SUPPORTED_DEPTHS = ("U8", "U16")
UNSUPPORTED_DEPTH_HINT = (
    "Paintwire works on 8-bit and 16-bit integer RGBA documents. Convert this one with "
    "Image > Convert Image Color Space (RGB/Alpha, 8 or 16 bits integer) first."
)


def to_8bit(data: bytes, depth: str) -> bytes:
    """Pixels of ``depth`` (little-endian channels) brought to 8 bits, keeping channel order.

    16-bit integers keep their high byte (exact for values that came from 8 bits).
    Raises ValueError for float depths, which carry linear light and need a
    colour-managed conversion that the host does better.
    """
    if depth == "U8":
        return bytes(data)
    if depth == "U16":
        return bytes(data[1::2])
    raise ValueError(UNSUPPORTED_DEPTH_HINT)


def from_8bit(data: bytes, depth: str) -> bytes:
    """8-bit pixels widened to ``depth`` for writing into such a document (v -> v * 257 for U16)."""
    if depth == "U8":
        return bytes(data)
    if depth == "U16":
        out = bytearray(len(data) * 2)
        out[0::2] = data
        out[1::2] = data
        return bytes(out)
    raise ValueError(UNSUPPORTED_DEPTH_HINT)


# --- building the request --------------------------------------------------------------


@dataclass(frozen=True)
class JobSettings:
    """What the artist chose in the panel: everything but the pixels."""

    ui_mode: str
    engine: str
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"ui_mode": self.ui_mode, "engine": self.engine, "model": self.model, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "JobSettings":
        return cls(str(obj["ui_mode"]), str(obj["engine"]), obj.get("model"), dict(obj.get("params") or {}))


def params_for_mode(mode: ModeSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that ``mode`` takes, in its order; values for other modes are dropped.

    Unknown names are an error on the server, so a panel that keeps values
    across mode switches sends only those of the current mode. Values whose
    type does not fit (an old setting of a parameter that changed type) are
    left out, so the server's default applies.
    """
    out: dict[str, Any] = {}
    for spec in mode.params:
        if spec.name not in values:
            continue
        try:
            out[spec.name] = spec.check(values[spec.name], f"job.params.{spec.name}")
        except ProtocolError:
            continue
    return out


def build_request(
    snapshot: Snapshot,
    caps: Capabilities,
    settings: JobSettings,
    output_format: PixelFormat = PixelFormat.RGBA8,
) -> JobRequest:
    """A JobRequest for ``settings`` applied to ``snapshot``.

    The image goes along when the mode takes one; the mask when the mode takes
    one (the selection, or the whole canvas when nothing is selected and the
    mode needs a mask). A mode without an input image that has width and
    height parameters left at 0 is given the canvas size, so "Generate" fills
    the canvas. Raises ProtocolError (UNKNOWN_ENGINE, UNKNOWN_MODE) when the
    server does not offer the choice.
    """
    engine = caps.engine(settings.engine)
    if engine is None:
        raise ProtocolError(ErrorCode.UNKNOWN_ENGINE, f"The server has no engine {settings.engine!r} (any more).", "job.engine")
    ui = UI_MODE_BY_KEY.get(settings.ui_mode)
    mode = engine.mode(ui.server_mode) if ui is not None else None
    if mode is None:
        raise ProtocolError(ErrorCode.UNKNOWN_MODE, f"Engine {engine.label!r} cannot do {settings.ui_mode!r}.", "job.mode")
    params = params_for_mode(mode, settings.params)
    specs = {s.name: s for s in mode.params}
    if not mode.needs_image:
        for name, size in (("width", snapshot.width), ("height", snapshot.height)):
            if name in specs and not params.get(name, specs[name].default):
                params[name] = size
    image = snapshot.image() if (mode.needs_image or _takes_image(mode)) else None
    mask = None
    if mode.mask_allowed and image is not None:
        if mode.needs_mask or snapshot.has_selection or snapshot.mask_layer is not None:
            mask = ImagePayload(snapshot.width, snapshot.height, PixelFormat.L8, snapshot.mask())
    return JobRequest(
        engine=engine.name, mode=mode.name, image=image, mask=mask, model=settings.model, params=params, output_format=output_format
    )


def _takes_image(mode: ModeSpec) -> bool:
    # ModeSpec says what a mode needs; a mode that only accepts a mask also
    # accepts the image the mask applies to.
    return mode.mask_allowed


# --- results ---------------------------------------------------------------------------


def layer_name(prompt: str | None, seed: int | None, fallback: str) -> str:
    """A result layer's name: the prompt's start and the seed ("a red fox [seed 42]")."""
    text = " ".join((prompt or "").split()) or fallback or "Paintwire"
    suffix = f" [seed {seed}]" if seed is not None else ""
    room = MAX_LAYER_NAME - len(suffix)
    if len(text) > room:
        text = text[: max(1, room - 1)].rstrip() + "\u2026"
    return text + suffix


@dataclass(frozen=True)
class PlacedLayer:
    """A result layer ready to write: its pixels at (x, y) on the target canvas."""

    name: str
    x: int
    y: int
    width: int
    height: int
    pixels: bytes
    pixel_format: PixelFormat
    seed: int | None


@dataclass(frozen=True)
class Placement:
    """Where a job's result goes.

    ``new_document`` is set when the result canvas differs in size from the
    document (upscale, expand): the layers then go into a new document of
    ``width`` x ``height`` and the artist's document is left as it was.
    ``group`` names the group layer that holds the layers when there are
    several; None puts the single layer straight into the document.
    """

    width: int
    height: int
    new_document: bool
    group: str | None
    layers: tuple[PlacedLayer, ...]


def place_result(result: Result, document_size: tuple[int, int], prompt: str | None = None) -> Placement:
    """Decide names, positions and grouping of a result's layers. Layers are
    listed bottom to top, in the server's order."""
    placed = []
    for layer in result.layers:
        img = layer.image
        placed.append(
            PlacedLayer(layer_name(prompt, layer.seed, layer.name), layer.x, layer.y, img.width, img.height, img.data, img.format, layer.seed)
        )
    new_document = (result.width, result.height) != tuple(document_size)
    group = None
    if len(placed) > 1:
        seeds = [p.seed for p in placed if p.seed is not None]
        base = layer_name(prompt, None, result.layers[0].name)
        group = f"{base} [{len(placed)} results" + (f", seeds {seeds[0]}-{seeds[-1]}]" if seeds else "]")
        if len(group) > MAX_LAYER_NAME:
            group = layer_name(prompt, None, result.layers[0].name)
    return Placement(result.width, result.height, new_document, group, tuple(placed))


class TargetKind(str, enum.Enum):
    """Where a host puts a result (the words of the protocol's result placements)."""

    LAYERS = "layers"  # new layers in the same document
    GROW = "grow"  # the canvas grows in place; the old canvas's top-left corner lands at an offset
    RESIZE = "resize"  # the document is scaled to the result's size
    NEW_DOCUMENT = "new_document"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    offset_x: int = 0  # GROW: where the old canvas's top-left corner lands on the result
    offset_y: int = 0


# The Expand mode's parameters that say how far the canvas grows to the left and top.
GROW_LEFT, GROW_TOP = "left", "top"


def result_target(settings: JobSettings, result: Result, document_size: tuple[int, int], resize_target: str = "new_document") -> Target:
    """Where ``result`` goes: new layers when it has the document's size; the same
    canvas grown in place when it holds the document at an offset (an expand);
    else the document resized or a new document, as ``resize_target`` says
    (a TargetKind value; hosts that cannot resize pass new_document)."""
    width, height = document_size
    if (result.width, result.height) == (width, height):
        return Target(TargetKind.LAYERS)
    ox = int(getattr(result, "offset_x", 0) or settings.params.get(GROW_LEFT) or 0)
    oy = int(getattr(result, "offset_y", 0) or settings.params.get(GROW_TOP) or 0)
    grows = settings.ui_mode == "expand" and 0 <= ox and 0 <= oy and ox + width <= result.width and oy + height <= result.height
    if grows:
        return Target(TargetKind.GROW, ox, oy)
    if resize_target == TargetKind.RESIZE.value:
        return Target(TargetKind.RESIZE)
    return Target(TargetKind.NEW_DOCUMENT)


def clip_to_canvas(layer: PlacedLayer, width: int, height: int) -> PlacedLayer | None:
    """The part of ``layer`` inside a ``width`` x ``height`` canvas, or None if none is."""
    x0, y0 = max(layer.x, 0), max(layer.y, 0)
    x1, y1 = min(layer.x + layer.width, width), min(layer.y + layer.height, height)
    if x1 <= x0 or y1 <= y0:
        return None
    if (x0, y0, x1, y1) == (layer.x, layer.y, layer.x + layer.width, layer.y + layer.height):
        return layer
    bpp = layer.pixel_format.channels
    stride = layer.width * bpp
    rows = []
    for row in range(y0 - layer.y, y1 - layer.y):
        start = row * stride + (x0 - layer.x) * bpp
        rows.append(layer.pixels[start : start + (x1 - x0) * bpp])
    return replace(layer, x=x0, y=y0, width=x1 - x0, height=y1 - y0, pixels=b"".join(rows))


# --- history ---------------------------------------------------------------------------

MAX_HISTORY = 50  # entries kept in the panel; each keeps its result's pixels for "apply again"


@dataclass
class HistoryEntry:
    """One finished job: the settings that made it and what came back.

    ``result`` (pixels) lives only in memory; ``to_dict`` keeps the rest so a
    host can store the list between sessions.
    """

    job_id: str
    settings: JobSettings
    seeds: tuple[int | None, ...]
    layer_names: tuple[str, ...]
    width: int
    height: int
    created: float = field(default_factory=time.time)
    result: Result | None = None

    @property
    def summary(self) -> str:
        ui = UI_MODE_BY_KEY.get(self.settings.ui_mode)
        prompt = str(self.settings.params.get(PROMPT) or "").strip()
        seeds = ", ".join(str(s) for s in self.seeds if s is not None)
        parts = [ui.label if ui else self.settings.ui_mode, self.settings.model or self.settings.engine]
        if prompt:
            parts.append(f"\u201c{prompt[:40]}\u201d")
        if seeds:
            parts.append(f"seed {seeds}")
        return " \u00b7 ".join(parts)

    def rerun_settings(self, index: int = 0) -> JobSettings:
        """The settings to make this result again: the same, with the seed of result ``index`` fixed."""
        params = dict(self.settings.params)
        if 0 <= index < len(self.seeds) and self.seeds[index] is not None:
            params[SEED] = self.seeds[index]
        return replace(self.settings, params=params)

    def to_dict(self) -> dict:
        return {
            "job_id": self.job_id, "settings": self.settings.to_dict(), "seeds": list(self.seeds),
            "layer_names": list(self.layer_names), "width": self.width, "height": self.height, "created": self.created,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "HistoryEntry":
        return cls(
            job_id=str(obj["job_id"]), settings=JobSettings.from_dict(obj["settings"]), seeds=tuple(obj.get("seeds") or ()),
            layer_names=tuple(obj.get("layer_names") or ()), width=int(obj["width"]), height=int(obj["height"]),
            created=float(obj.get("created") or 0.0),
        )


def history_entry(job_id: str, settings: JobSettings, result: Result, placement: Placement) -> HistoryEntry:
    return HistoryEntry(
        job_id=job_id, settings=settings, seeds=tuple(l.seed for l in result.layers),
        layer_names=tuple(l.name for l in placement.layers), width=result.width, height=result.height, result=result,
    )


class History:
    """The newest-first list of finished jobs, bounded by ``limit``."""

    def __init__(self, entries: Iterable[HistoryEntry] = (), limit: int = MAX_HISTORY) -> None:
        self.limit = limit
        self.entries: list[HistoryEntry] = list(entries)[:limit]

    def add(self, entry: HistoryEntry) -> None:
        self.entries.insert(0, entry)
        del self.entries[self.limit :]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> HistoryEntry:
        return self.entries[index]

    def to_list(self) -> list[dict]:
        return [e.to_dict() for e in self.entries]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]], limit: int = MAX_HISTORY) -> "History":
        entries = []
        for item in items:
            try:
                entries.append(HistoryEntry.from_dict(item))
            except (KeyError, TypeError, ValueError):
                continue  # an entry from an older plug-in: drop it rather than fail to start
        return cls(entries, limit)


def prompt_of(params: Mapping[str, Any]) -> str | None:
    value = params.get(PROMPT)
    return value if isinstance(value, str) and value.strip() else None


def seed_param(mode: ModeSpec) -> str | None:
    """The name of the mode's seed parameter, if it has one."""
    return next((p.name for p in mode.params if p.type is ParamType.SEED), None)


__all__ = [
    "ADD_ON_KINDS", "Choice", "History", "HistoryEntry", "JobSettings", "PlacedLayer",
    "Placement", "Snapshot", "UI_MODES", "UiMode", "alpha_of", "available_modes", "build_request", "clip_to_canvas",
    "find_mode", "from_8bit", "history_entry", "layer_name", "mask_from_layer", "model_choices", "params_for_mode",
    "place_result", "prompt_of", "result_target", "seed_param", "Target", "TargetKind", "to_8bit", "whole_canvas_mask",
]
