"""Checks of a job request against what a server offers: the one place for them.

The server runs ``check_job`` on every submit; clients may run it too, to
report a mistake before sending megabytes of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ErrorCode, ProtocolError
from .messages import Capabilities, JobRequest
from .params import ModeSpec, Scalar, validate_params


@dataclass(frozen=True)
class CheckedJob:
    request: JobRequest
    mode: ModeSpec
    params: dict[str, Scalar]  # every parameter of the mode, defaults filled in


def check_job(request: JobRequest, caps: Capabilities, images: bool = True) -> CheckedJob:
    """``images=False`` checks everything but the presence of the image and mask a
    mode needs: for a live stream's start, whose pixels come with each state."""
    engine = caps.engine(request.engine)
    if engine is None:
        known = ", ".join(e.name for e in caps.engines)
        raise ProtocolError(ErrorCode.UNKNOWN_ENGINE, f"No engine named {request.engine!r}; this server has: {known}.", "job.engine")
    mode = engine.mode(request.mode)
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
    return CheckedJob(request, mode, params)
