"""The WebUI prompt syntax: weights, escapes, BREAK, and chunks of 75 tokens."""

from __future__ import annotations

import pytest

from paintwire.server.engines.diffusion.prompt_syntax import BREAK, DOWN, UP, Fragment, parse


def weights(prompt: str) -> list[tuple[str, float]]:
    return [("BREAK", 0.0) if f.is_break else (f.text, round(f.weight, 6)) for f in parse(prompt)]


@pytest.mark.parametrize("prompt,expected", [
    ("a cat", [("a cat", 1.0)]),
    ("a (cat)", [("a ", 1.0), ("cat", 1.1)]),
    ("a ((cat))", [("a ", 1.0), ("cat", 1.21)]),
    ("a [cat]", [("a ", 1.0), ("cat", round(1 / 1.1, 6))]),
    ("a [[cat]]", [("a ", 1.0), ("cat", round(1 / 1.21, 6))]),
    ("a (cat:1.3)", [("a ", 1.0), ("cat", 1.3)]),
    ("a (cat: 0.5 )", [("a ", 1.0), ("cat", 0.5)]),
    ("a (cat:.5)", [("a ", 1.0), ("cat", 0.5)]),
    ("((a cat:1.5) in a hat)", [("a cat", 1.65), (" in a hat", 1.1)]),
    ("(a [cat])", [("a ", 1.1), ("cat", 1.0)]),
    ("a \\(cat\\) \\[x\\] \\\\", [("a (cat) [x] \\", 1.0)]),
    ("(open", [("open", 1.1)]),
    ("[open", [("open", round(1 / 1.1, 6))]),
    ("stray) and] closers", [("stray) and] closers", 1.0)]),
    ("ratio 16:9", [("ratio 16:9", 1.0)]),
    ("a cat BREAK a dog", [("a cat ", 1.0), ("BREAK", 0.0), (" a dog", 1.0)]),
    ("BREAKFAST and Break", [("BREAKFAST and Break", 1.0)]),
    ("", [("", 1.0)]),
])
def test_each_rule(prompt, expected):
    assert weights(prompt) == expected


def test_factors_are_the_webuis():
    assert UP == 1.1 and DOWN == pytest.approx(1 / 1.1)
    assert parse("(x)")[0].weight == parse("(x:1.1)")[0].weight


def test_a_break_is_its_own_fragment():
    assert parse("x BREAK y")[1] is BREAK and parse("x BREAK y")[0] == Fragment("x ", 1.0)
