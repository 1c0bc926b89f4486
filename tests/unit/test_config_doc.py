"""docs/configuration.md documents every setting the server has, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from paintwire.server.config import SETTINGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented():
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(encoding="utf-8"), re.M))
    names = set(SETTINGS)
    assert rows == names, f"undocumented: {names - rows}; documented but gone: {rows - names}"
