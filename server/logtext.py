"""Log lines that a client cannot forge.

Clients choose their name, prompts, model names and the text of some errors.
Written to a log as is, a newline starts a forged log line and a terminal
escape sequence rewrites what an operator sees. ``quoted`` is for call sites
that log such a string; ``SafeFormatter`` is the net under everything else:
no record can produce a line that does not start with a record's own prefix.
"""

from __future__ import annotations

import logging

MAX_LOGGED_CHARS = 200  # a prompt can be long; the log needs only enough to recognise it


def quoted(text: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``text`` as a quoted Python literal: control characters, line and paragraph
    separators and escape sequences are written as escapes; cut at ``limit``."""
    s = str(text)
    if len(s) > limit:
        return repr(s[:limit]) + f"...({len(s)} chars)"
    return repr(s)


def escape_controls(text: str) -> str:
    """Every non-printable character (newlines included) as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class SafeFormatter(logging.Formatter):
    """Escapes control characters in each record's message; a traceback keeps its
    lines, each indented by a bar so that none can pass for a record."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_text
        record.exc_text = None  # render the traceback here, not reuse another handler's text
        try:
            return super().format(record)
        finally:
            record.exc_text = saved

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join("  | " + escape_controls(line) for line in text.splitlines())


def configure(level: int) -> None:
    """Log to stderr through SafeFormatter (the server's logging set-up)."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
