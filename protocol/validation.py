"""Checks of a job request against what a server offers: the one place for them.

The server runs ``check_job`` on every submit; clients may run it too, to
report a mistake before sending megabytes of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .controls import MAX_CONTROL_STRENGTH, ControlInput
from .crops import bytes_bounds, needed_box, reads_whole
from .rect import Rect
from .errors import ErrorCode, ProtocolError
from .images import Encoding
from .messages import Capabilities, EngineInfo, JobRequest
from .params import ModeSpec, Scalar, validate_params
from .vocabulary import InputKind


@dataclass(frozen=True)
class CheckedJob:
    request: JobRequest
    mode: ModeSpec
    params: dict[str, Scalar]  # every parameter of the mode, defaults filled in
    # Per control of the request: its parameters with defaults filled in, and its preprocessor.
    controls: tuple["CheckedControl", ...] = ()


@dataclass(frozen=True)
class CheckedControl:
    control: ControlInput
    preprocessor: str  # the kind's default when the control named none
    params: dict[str, Scalar]


def check_job(request: JobRequest, caps: Capabilities, images: bool = True) -> CheckedJob:
    """``images=False`` checks everything but the presence of the image and mask a
    mode needs: for a live stream's start, whose pixels come with each state."""
    engine = caps.engine(request.engine)
    if engine is None:
        known = ", ".join(e.name for e in caps.engines)
        raise ProtocolError(ErrorCode.UNKNOWN_ENGINE, f"No engine named {request.engine!r}; this server has: {known}.", "job.engine")
    mode = engine.mode(request.mode)
    if mode is None and engine.starting:
        raise ProtocolError(ErrorCode.UNKNOWN_MODE, engine.notice or f"Engine {engine.name!r} is still starting; try again in a moment.", "job.mode")
    if mode is None:
        known = ", ".join(m.name for m in engine.modes)
        raise ProtocolError(ErrorCode.UNKNOWN_MODE, f"Engine {engine.name!r} has no mode {request.mode!r}; it has: {known}.", "job.mode")
    if request.model is not None:
        names = [m.name for m in caps.models if m.engine == engine.name]
        if request.model not in names:
            hint = f"; installed: {', '.join(names)}" if names else "; this engine has no models installed"
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"No model {request.model!r} for engine {engine.name!r}{hint}.", "job.model")
    if images and mode.needs_image and request.image is None:
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"Mode {mode.name!r} needs an input image.", "job.image")
    if images and mode.needs_mask and request.mask is None:
        raise ProtocolError(ErrorCode.BAD_MASK, f"Mode {mode.name!r} needs a mask (l8, the image's size).", "job.mask")
    if request.mask is not None and not mode.mask_allowed:
        raise ProtocolError(ErrorCode.BAD_MASK, f"Mode {mode.name!r} takes no mask.", "job.mask")
    for name, img in (("image", request.image), ("mask", request.mask)):
        if img is not None and max(img.width, img.height) > caps.limits.max_side:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"The {name} is {img.width}x{img.height}; this server's maximum side is {caps.limits.max_side}.", f"job.{name}"
            )
    params: dict[str, Any] = validate_params(mode.params, request.params)
    controls: tuple[CheckedControl, ...] = ()
    if request.controls:
        if not any(i.kind is InputKind.CONTROL for i in mode.inputs):
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"Mode {mode.name!r} takes no control layers; leave job.controls out.", "job.controls")
        controls = tuple(check_control(c, engine, caps, f"job.controls.{i}", request) for i, c in enumerate(request.controls))
    check_crop(request, mode, params)
    return CheckedJob(request, mode, params, controls)


def check_control(control: ControlInput, engine: EngineInfo, caps: Capabilities, where: str, request: JobRequest | None = None,
                  needs_model: bool = True) -> CheckedControl:
    """Check one control layer against what ``engine`` publishes (and, in a job, against
    the job's image); ``where`` is its dotted path ("job.controls.0"). A preprocessor
    preview (``needs_model`` false) works for a kind whose model is missing."""
    spec = engine.control(control.kind)
    if spec is None:
        known = ", ".join(c.name for c in engine.controls) or "none"
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"Engine {engine.name!r} has no control kind {control.kind!r}; it takes: {known}.", f"{where}.kind")
    if spec.problem and needs_model and control.model is None:  # a named model is checked below
        raise ProtocolError(ErrorCode.UNKNOWN_MODEL, spec.problem, f"{where}.kind")
    if control.model is not None:
        names = [m.name for m in caps.models if m.engine == engine.name]
        if control.model not in names:
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"No model {control.model!r} for engine {engine.name!r}; "
                                "leave the control's model out to let the server pick one.", f"{where}.model")
    preprocessor = control.preprocessor or spec.default_preprocessor
    if preprocessor not in spec.preprocessors:
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"The {spec.name} control has no preprocessor {preprocessor!r}; "
                            f"it offers: {', '.join(spec.preprocessors)}.", f"{where}.preprocessor")
    for name, value, hi in (("strength", control.strength, MAX_CONTROL_STRENGTH), ("start", control.start, 1.0), ("end", control.end, 1.0)):
        if not 0.0 <= value <= hi:  # NaN fails this too
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"The control's {name} must be between 0 and {hi:g}, got {value:g}.", f"{where}.{name}")
    if control.start >= control.end:
        raise ProtocolError(ErrorCode.INVALID_PARAM, f"The control's start ({control.start:g}) must be below its end ({control.end:g}).", f"{where}.start")
    image = control.image
    if max(image.width, image.height) > caps.limits.max_side:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"The control image is {image.width}x{image.height}; this server's maximum side is {caps.limits.max_side}.",
                            f"{where}.image")
    if request is not None and request.image is not None and (image.width, image.height) != (request.image.width, request.image.height):
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"The control image is {image.width}x{image.height} but the image is "
                            f"{request.image.width}x{request.image.height}; send the control layer at the image's size.", f"{where}.image")
    params = validate_params(spec.params, control.params, f"{where}.params")
    return CheckedControl(control, preprocessor, params)


def check_crop(request: JobRequest, mode: ModeSpec, params: dict[str, Any]) -> None:
    """A cropped image must be one the mode can work from: not for a mode (or these
    parameters) that reads the whole canvas, and covering ``needed_box`` for the mask
    it came with. Raises BAD_CROP with the rectangle to send."""
    crop, image, mask = request.crop, request.image, request.mask
    if crop is None or image is None or crop.is_whole(image.width, image.height):
        return
    canvas = f"{crop.canvas_width}x{crop.canvas_height}"
    if reads_whole(mode.crop, params, mask is not None):
        if mode.crop.whole:
            why = ""
        elif mask is None:
            why = " without a mask"
        else:
            why = " with " + ", ".join(f"{k}={v!r}" for k, v in mode.crop.whole_if if params.get(k) == v)
        raise ProtocolError(
            ErrorCode.BAD_CROP, f"Mode {mode.name!r} reads the whole canvas{why}: send all {canvas} of it, without a crop.",
            "job.crop",
        )
    if mask is None or mask.encoding is not Encoding.RAW:
        return  # a PNG mask's bounds are known once the server decodes it (region.py checks then)
    inner = bytes_bounds(mask.data, mask.width, mask.height)
    if inner is None:  # nothing selected: refused here, at submit, rather than failing with bad_mask once queued
        raise ProtocolError(
            ErrorCode.BAD_CROP, f"The mask selects nothing (every pixel 0), so mode {mode.name!r} reads the whole canvas: "
            f"send all {canvas} of it, without a crop.", "job.crop",
        )
    bounds = Rect(inner.x + crop.x, inner.y + crop.y, inner.width, inner.height)
    need = needed_box(mode.crop, params, bounds, crop.canvas_width, crop.canvas_height)
    have = crop.rect(image.width, image.height)
    if not have.contains(need):
        raise ProtocolError(
            ErrorCode.BAD_CROP,
            f"The crop {have.width}x{have.height} at ({have.x}, {have.y}) does not cover what mode {mode.name!r} reads for this mask: "
            f"{need.width}x{need.height} at ({need.x}, {need.y}) of the {canvas} canvas (the mask's bounds, its padding and context). "
            "Send at least that rectangle.",
            "job.crop",
        )
