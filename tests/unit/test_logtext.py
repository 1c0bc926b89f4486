"""Log lines a client cannot forge: quoting at the call site, escaping in the formatter."""

from __future__ import annotations

import io
import logging

from paintwire.server.logtext import MAX_LOGGED_CHARS, SafeFormatter, escape_controls, quoted

FORGED = "krita/1\n2026-01-01 00:00:00,000 WARNING paintwire.server.app: forged\x1b[2J\u2028x"


def log_through_safe_formatter(message: str, *args: object, exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("paintwire.test.logtext")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc is None:
            logger.warning(message, *args)
        else:
            try:
                raise exc
            except BaseException:
                logger.exception(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_quoted_escapes_line_breaks_and_escape_sequences_and_cuts_long_text():
    q = quoted(FORGED)
    assert "\n" not in q and "\x1b" not in q and "\u2028" not in q
    assert "\\n" in q and "\\x1b" in q
    assert quoted("é ok") == "'é ok'"  # printable text stays readable
    long = quoted("a" * 1000)
    assert len(long) < MAX_LOGGED_CHARS + 40 and long.endswith("(1000 chars)")


def test_formatter_keeps_one_record_per_line_whatever_the_arguments():
    out = log_through_safe_formatter("client %s connected", FORGED)
    assert out.count("\n") == 1 and out.startswith("WARNING paintwire.test.logtext: client krita/1\\n2026")
    assert "\x1b" not in out


def test_a_traceback_with_a_forged_line_cannot_pass_for_a_record():
    out = log_through_safe_formatter("job failed", exc=ValueError(FORGED))
    lines = out.splitlines()
    assert lines[0] == "WARNING paintwire.test.logtext: job failed".replace("WARNING", "ERROR")
    assert all(line.startswith("  | ") for line in lines[1:]), lines
    assert "\x1b" not in out


def test_escape_controls_leaves_printable_text_alone():
    assert escape_controls("plain text, ünïcode") == "plain text, ünïcode"
    assert escape_controls("a\tb\rc") == "a\\tb\\rc"
