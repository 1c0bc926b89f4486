"""docs/configuration.md documents every setting the server has, and no other."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from paintwire.server.config import ServerConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented():
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(encoding="utf-8"), re.M))
    fields = {f.name for f in dataclasses.fields(ServerConfig)}
    assert rows == fields, f"undocumented: {fields - rows}; documented but gone: {rows - fields}"
