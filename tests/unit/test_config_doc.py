"""docs/configuration.md documents every setting the server has, and no other, and
says in which section of ServerConfig each one lives."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from paintwire.server.config import SETTINGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _part(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_setting_is_documented():
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", _part("Settings"), re.M))
    names = set(SETTINGS)
    assert rows == names, f"undocumented: {names - rows}; documented but gone: {rows - names}"


def test_the_sections_table_matches_the_code():
    # "`history` (as `enabled`)": the setting, then the field's own name in parentheses.
    documented = {section: set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", settings)))
                  for section, settings in re.findall(r"^\| `([a-z]+)` \| ([^|]+) \|", _part("In Python"), re.M)}
    actual: dict[str, set[str]] = defaultdict(set)
    for name, setting in SETTINGS.items():
        if setting.section:
            actual[setting.section].add(name)
    assert documented == actual
