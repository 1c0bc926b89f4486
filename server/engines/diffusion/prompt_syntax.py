"""The WebUI's prompt syntax, parsed into weighted fragments (no torch here).

Rules, as users of the Stable Diffusion WebUI write them:

- ``(words)`` multiplies the attention to ``words`` by 1.1; nested, it compounds.
- ``[words]`` divides it by 1.1.
- ``(words:1.3)`` sets the factor to 1.3 (any number, also below 1).
- ``\\(``, ``\\)``, ``\\[``, ``\\]`` and ``\\\\`` are the literal characters.
- A bracket left open weights everything after it; a closing one with no
  opening is kept as text.
- ``BREAK`` (upper case, a word of its own) ends the current 75-token chunk.

The LoRA tags ``<lora:name:weight>`` are taken out before this (lora.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UP, DOWN = 1.1, 1 / 1.1  # the WebUI's factors for ( ) and [ ]

_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]                       # an escaped bracket or backslash
    | \\                               # a lone backslash
    | \(                               # open: weight up
    | \[                               # open: weight down
    | :\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)  # ":1.3)" closes a ( with that weight
    | \)
    | \]
    | \bBREAK\b
    | [^\\()\[\]:B]+ | B | :           # text (B alone so that BREAK is seen at a word start)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Fragment:
    text: str
    weight: float = 1.0
    is_break: bool = False


BREAK = Fragment("", 1.0, is_break=True)


def parse(prompt: str) -> list[Fragment]:
    """Weighted fragments of ``prompt``, neighbours of equal weight merged:
    ``"a (red:1.5) [cat] BREAK dog"`` gives ``a `` 1.0, ``red`` 1.5, `` `` 1.0,
    ``cat`` 1/1.1, ``" "`` 1.0, a break, ``" dog"`` 1.0."""
    out: list[list] = []  # [text, weight] pairs, or BREAK
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for item in out[start:]:
            if item is not BREAK:
                item[1] *= factor

    for match in _TOKEN.finditer(prompt):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            out.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(out))
        elif token == "[":
            square_open.append(len(out))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            scale(round_open.pop(), UP)
        elif token == "]" and square_open:
            scale(square_open.pop(), DOWN)
        elif token == "BREAK":
            out.append(BREAK)
        else:
            out.append([token, 1.0])
    for start in round_open:
        scale(start, UP)
    for start in square_open:
        scale(start, DOWN)
    return _merge(out)


def _merge(items: list) -> list[Fragment]:
    merged: list[Fragment] = []
    for item in items:
        if item is BREAK:
            merged.append(BREAK)
            continue
        text, weight = item
        if merged and not merged[-1].is_break and merged[-1].weight == weight:
            merged[-1] = Fragment(merged[-1].text + text, weight)
        else:
            merged.append(Fragment(text, weight))
    return [f for f in merged if f.is_break or f.text] or [Fragment("")]
