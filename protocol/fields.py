"""Field readers for wire maps: one sentence per failure, naming the field.

Shared by every module that reads messages or objects (messages.py, controls.py),
so that a missing or mistyped field is reported the same way everywhere.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ErrorCode, ProtocolError

MAX_NAME = 200  # client names, model names, job ids: short identifiers, not documents


def read(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, required: bool = True, default: Any = None) -> Any:
    """``obj[key]`` checked against ``kind``; nil counts as absent. ``where`` is the dotted
    path of ``obj`` with a trailing dot ("job.")."""
    if key not in obj or obj[key] is None:
        if required:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Missing required field {key!r}.", f"{where}{key}")
        return default
    value = obj[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Field {key!r} has the wrong type (got a boolean).", f"{where}{key}")
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Field {key!r} must be {want}, got {type(value).__name__}.", f"{where}{key}")
    return value


def read_name(obj: Mapping[str, Any], key: str, where: str, required: bool = True, limit: int = MAX_NAME) -> Any:
    """A short identifier: a str of 1 to ``limit`` characters."""
    value = read(obj, key, str, where, required)
    if value is not None and not (0 < len(value) <= limit):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Field {key!r} must be 1 to {limit} characters long.", f"{where}{key}")
    return value


def read_ref(obj: Mapping[str, Any]) -> int:
    """A request's ``ref``: a non-negative integer below 2**53 (it survives a JavaScript number)."""
    ref = read(obj, "ref", int, "")
    if not 0 <= ref < 2**53:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "ref must be a non-negative integer below 2**53.", "ref")
    return ref
