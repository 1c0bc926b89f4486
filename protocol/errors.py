"""Stable error codes and the exception that carries them.

Every rejection the server sends is one of these codes. Clients may branch on
the code; the message is for people and may change between releases.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorCode(str, enum.Enum):
    """The closed set of error codes of protocol version 1."""

    BAD_FRAME = "bad_frame"  # not msgpack, not a map, or a binary frame was expected
    UNKNOWN_TYPE = "unknown_type"  # the message "type" is not one this side accepts
    BAD_MESSAGE = "bad_message"  # a field is missing or has the wrong type
    HELLO_REQUIRED = "hello_required"  # anything before hello, or a second hello
    UNSUPPORTED_VERSION = "unsupported_version"  # protocol versions do not overlap
    UNAUTHORIZED = "unauthorized"  # token missing or wrong
    TOO_LARGE = "too_large"  # message bytes or image pixels over the server's limits
    BAD_IMAGE = "bad_image"  # format, dimensions or byte count of an image are wrong
    BAD_MASK = "bad_mask"  # the mask is not l8 or not the image's size
    BAD_CROP = "bad_crop"  # a crop outside its canvas, or one that does not cover what the mode reads
    BAD_SEGMENT = "bad_segment"  # a shared-memory segment is missing, too small, foreign or badly named
    UNKNOWN_ENGINE = "unknown_engine"
    UNKNOWN_MODE = "unknown_mode"  # the engine has no such mode
    UNKNOWN_MODEL = "unknown_model"
    INVALID_PARAM = "invalid_param"  # unknown parameter, wrong type or out of range
    QUEUE_FULL = "queue_full"  # the client has too many jobs waiting, or the server does
    UNKNOWN_JOB = "unknown_job"  # cancel of a job this connection does not own or that is over
    ENGINE_FAILED = "engine_failed"  # the engine raised while running the job
    OUT_OF_MEMORY = "out_of_memory"  # the device ran out of memory for this job
    SHUTTING_DOWN = "shutting_down"  # the server is stopping; the job did not run
    INTERNAL = "internal"  # a bug in Paintwire; please report it


@dataclass
class ProtocolError(Exception):
    """A peer sent something this side must reject.

    ``field`` names the offending field with a dotted path (``"job.params.steps"``)
    where one can be pinned down.
    """

    code: ErrorCode
    message: str
    field: str | None = None
    ref: int | None = None  # the submit this rejects, when it is about a submit

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.code.value}: {self.message}{where}"
