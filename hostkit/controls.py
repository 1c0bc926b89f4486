"""Control layers: the artist's layers that guide a job (ControlNet line art,
depth, pose, ... and reference images), from the panel's list to
``job.controls``.

Both plug-ins keep a list of :class:`ControlLayer` (a layer of the document by
the host's name for it, a control kind, a strength and a range of the steps)
and turn it into ControlInputs here, once: which kinds the server offers
(``EngineInfo.controls``; nothing about kinds is written in a plug-in), what
"add the current layer" starts from, which choices still fit the engine and
the mode, and the control images at the job's geometry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from paintwire.protocol import Capabilities, ErrorCode, ImagePayload, InputKind, JobRequest, ModeSpec, ProtocolError
from paintwire.protocol.crops import crop_bytes
from paintwire.protocol.rect import Rect
from paintwire.protocol.controls import MAX_CONTROL_STRENGTH, MAX_CONTROLS, ControlInput, ControlKindSpec
from paintwire.protocol.vocabulary import Preprocessor

NO_PREPROCESSOR = Preprocessor.NONE.value  # the layer as it is
DEFAULT_STRENGTH = 1.0


@dataclass(frozen=True)
class ControlLayer:
    """One control input as the artist set it. ``layer`` is the host's name for a
    layer of the document (Krita: "Group/Layer"; GIMP: the layer's name);
    ``preprocessor`` empty means the kind's default; ``start`` and ``end`` are
    fractions of the steps during which the control acts."""

    layer: str
    kind: str
    strength: float = DEFAULT_STRENGTH
    start: float = 0.0
    end: float = 1.0
    preprocessor: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def to_dict(self) -> dict:
        return {
            "layer": self.layer, "kind": self.kind, "strength": self.strength, "start": self.start, "end": self.end,
            "preprocessor": self.preprocessor, "params": dict(self.params), "enabled": self.enabled,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str = "control") -> "ControlLayer":
        """A control from its stored or scripted form. Raises ValueError with a
        sentence naming the field when a value has the wrong type or range."""
        if not isinstance(obj, Mapping):
            raise ValueError(f"{where} must be an object such as {{\"layer\": \"Lines\", \"kind\": \"lineart\"}}.")
        unknown = sorted(set(obj) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{where} has unknown fields {', '.join(unknown)}; it takes {', '.join(cls.__dataclass_fields__)}.")
        for name in ("layer", "kind"):
            if not isinstance(obj.get(name), str) or not obj[name]:
                raise ValueError(f"{where}.{name} must be a non-empty string.")
        numbers = {}
        for name, default in (("strength", DEFAULT_STRENGTH), ("start", 0.0), ("end", 1.0)):
            value = obj.get(name, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}.{name} must be a number, got {value!r}.")
            numbers[name] = float(value)
        params = obj.get("params") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"{where}.params must be an object of the kind's parameters.")
        preprocessor = obj.get("preprocessor") or ""
        if not isinstance(preprocessor, str):
            raise ValueError(f"{where}.preprocessor must be a string.")
        control = cls(obj["layer"], obj["kind"], preprocessor=preprocessor, params=dict(params), enabled=bool(obj.get("enabled", True)), **numbers)
        problem = control.range_problem()
        if problem:
            raise ValueError(f"{where}: {problem}")
        return control

    def range_problem(self) -> str:
        """A sentence when strength or the step range cannot be sent, else ""."""
        if not 0.0 <= self.strength <= MAX_CONTROL_STRENGTH:
            return f"the strength must be between 0 and {MAX_CONTROL_STRENGTH:g}, got {self.strength:g}."
        if not 0.0 <= self.start < self.end <= 1.0:
            return f"the step range must satisfy 0 <= start < end <= 1, got {self.start:g} to {self.end:g}."
        return ""


def controls_to_json(controls: Sequence[ControlLayer]) -> str:
    return json.dumps([c.to_dict() for c in controls])


def controls_from_json(text: str | None, where: str = "controls") -> list[ControlLayer]:
    """A list written by :func:`controls_to_json` or by a script. Raises ValueError
    with a sentence naming the entry that is wrong."""
    try:
        items = json.loads((text or "").strip() or "[]")
    except ValueError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}.") from None
    if not isinstance(items, list):
        raise ValueError(f"{where} must be a JSON list of control layers, such as [{{\"layer\": \"Lines\", \"kind\": \"lineart\"}}].")
    if len(items) > MAX_CONTROLS:
        raise ValueError(f"{where} lists {len(items)} control layers; at most {MAX_CONTROLS} go with one job.")
    return [ControlLayer.from_dict(item, f"{where}[{i}]") for i, item in enumerate(items)]


def stored_controls(text: str | None) -> list[ControlLayer]:
    """A list stored by a plug-in (in a document, a settings file); what cannot be
    read any more is dropped rather than failing to open the document."""
    try:
        items = json.loads(text or "[]")
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(ControlLayer.from_dict(item))
        except ValueError:
            continue
    return out[:MAX_CONTROLS]


# -- what the server offers -----------------------------------------------------------------


def control_kinds(caps: Capabilities | None, engine: str) -> tuple[ControlKindSpec, ...]:
    """The control kinds ``engine`` offers, in the server's order (none when unknown)."""
    info = caps.engine(engine) if caps is not None else None
    return info.controls if info is not None else ()


def kind_spec(kinds: Sequence[ControlKindSpec], name: str) -> ControlKindSpec | None:
    return next((k for k in kinds if k.name == name), None)


def accepts_controls(mode: ModeSpec | None) -> bool:
    """Whether a job of ``mode`` may carry control layers (the mode lists a control input)."""
    return mode is not None and mode.input(InputKind.CONTROL) is not None


def new_control(kinds: Sequence[ControlKindSpec], layer: str, previous: ControlLayer | None = None) -> ControlLayer:
    """What "add the current layer" starts from: the kind of the control added
    before (the artist tends to add several of a kind) if still offered, else the
    first kind the server can run (one without a problem), else the first."""
    if not kinds:
        raise ValueError("This engine offers no control layers.")
    spec = kind_spec(kinds, previous.kind) if previous is not None else None
    if spec is None:
        spec = next((k for k in kinds if k.usable), kinds[0])
    return ControlLayer(layer, spec.name)


def kind_params(spec: ControlKindSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The kind's parameters from ``values``: names it does not take and values that
    no longer fit are left out, so the server's default applies."""
    out: dict[str, Any] = {}
    for param in spec.params:
        if param.name in values:
            try:
                out[param.name] = param.check(values[param.name], f"control.params.{param.name}")
            except ProtocolError:
                continue
    return out


def control_problem(control: ControlLayer, kinds: Sequence[ControlKindSpec], layers: Sequence[str] | None = None) -> str:
    """A sentence saying why ``control`` cannot go with a job, or "" when it can.
    ``layers`` (when given) are the document's layer names, to catch a layer that is gone."""
    spec = kind_spec(kinds, control.kind)
    if spec is None:
        offered = ", ".join(k.name for k in kinds) or "none"
        return f"The server offers no control kind {control.kind!r} here; it offers: {offered}."
    if spec.problem:
        return spec.problem
    if control.preprocessor and control.preprocessor not in spec.preprocessors:
        offered = ", ".join(spec.preprocessors) or NO_PREPROCESSOR
        return f"{spec.label or spec.name} has no preprocessor {control.preprocessor!r}; choose one of: {offered}."
    if layers is not None and control.layer not in layers:
        return f"The control layer {control.layer!r} is gone; choose another layer or remove the control."
    return control.range_problem()


def controls_for_job(
    mode: ModeSpec | None, kinds: Sequence[ControlKindSpec], controls: Sequence[ControlLayer], layers: Sequence[str] | None = None,
) -> list[ControlLayer]:
    """The enabled controls that go with a job of ``mode``. A mode without a control
    input takes none (the panel keeps the list for the modes that do). Raises
    ValueError with the first control's problem, so nothing half-guided runs."""
    chosen = [c for c in controls if c.enabled]
    if not chosen or not accepts_controls(mode):
        return []
    if len(chosen) > MAX_CONTROLS:
        raise ValueError(f"{len(chosen)} control layers are on; at most {MAX_CONTROLS} go with one job.")
    for index, control in enumerate(chosen):
        problem = control_problem(control, kinds, layers)
        if problem:
            raise ValueError(f"Control layer {index + 1} ({control.layer}): {problem}")
    return chosen


def check_for_script(mode: ModeSpec, kinds: Sequence[ControlKindSpec], controls: Sequence[ControlLayer], layers: Sequence[str]) -> None:
    """A script's explicit controls: for a mode without a control input that is an
    error, not a silent no-op. Raises ValueError with what to change."""
    if controls and not accepts_controls(mode):
        raise ValueError(f"{mode.label} takes no control layers; leave controls empty or choose a mode that does.")
    controls_for_job(mode, kinds, controls, layers)


# -- control images at the job's geometry -----------------------------------------------------


def control_input(control: ControlLayer, spec: ControlKindSpec, image: ImagePayload) -> ControlInput:
    """The ControlInput for ``control`` with ``image`` (the layer's pixels at the job's geometry)."""
    preprocessor = control.preprocessor or spec.default_preprocessor
    return ControlInput(
        kind=control.kind, image=image, model=None, strength=control.strength, start=control.start, end=control.end,
        preprocessor=preprocessor, params=kind_params(spec, control.params),
    )


def job_region(request: JobRequest, canvas: tuple[int, int]) -> Rect:
    """The canvas rectangle a control image must cover for ``request``: that of its
    image (a crop of the canvas when the request has one), or the whole canvas for
    a job that reads no pixels (Generate)."""
    if request.image is None:
        return Rect(0, 0, canvas[0], canvas[1])
    crop = getattr(request, "crop", None)  # a window of the canvas (protocol/crops.py), or None: all of it
    x, y = (crop.x, crop.y) if crop is not None else (0, 0)
    return Rect(x, y, request.image.width, request.image.height)


def crop_image(image: ImagePayload, region: Rect) -> ImagePayload:
    """The ``region`` of a canvas-sized raw image (row slices: no per-pixel work)."""
    if region == Rect(0, 0, image.width, image.height):
        return image
    return ImagePayload(region.width, region.height, image.format, crop_bytes(image.data, image.width, image.format.channels, region))


def with_controls(
    request: JobRequest, kinds: Sequence[ControlKindSpec], controls: Sequence[ControlLayer],
    read: Callable[[ControlLayer, Rect], ImagePayload], canvas: tuple[int, int],
) -> JobRequest:
    """``request`` with ``controls`` attached, each image read by ``read`` (the host's
    pixels of that layer in the job's region of the canvas) and checked against it."""
    if not controls:
        return request
    region = job_region(request, canvas)
    inputs = []
    for control in controls:
        spec = kind_spec(kinds, control.kind)
        if spec is None:
            raise ProtocolError(ErrorCode.INVALID_PARAM, control_problem(control, kinds), "job.controls")
        image = read(control, region)
        if (image.width, image.height) != (region.width, region.height):
            raise ProtocolError(
                ErrorCode.BAD_IMAGE,
                f"The control layer {control.layer!r} was read at {image.width}x{image.height}; the job is {region.width}x{region.height}.",
                "job.controls",
            )
        inputs.append(control_input(control, spec, image))
    return replace(request, controls=tuple(inputs))
