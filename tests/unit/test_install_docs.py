"""The README's install sections name the torch that the project pins, and the
commands they use exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pinned_torch() -> str:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]["diffusers"]
    return next(p.split("==")[1] for p in extra if p.startswith("torch=="))


def test_every_torch_in_the_readme_and_run_is_the_pinned_one():
    pinned = _pinned_torch()
    for name in ("README.md", "run"):
        found = set(re.findall(r"torch==([0-9][0-9a-z.+]*)", (ROOT / name).read_text(encoding="utf-8")))
        assert found == {pinned}, f"{name} installs torch {sorted(found)}; pyproject.toml pins {pinned}"


def test_the_install_sections_are_there_and_use_python_m():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for platform in ("Windows", "macOS (Apple silicon)", "Linux"):
        section = readme.split(f"### {platform}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        assert "-m paintwire serve" in section and '-m pip install -e ".[diffusers]"' in section, platform
        assert "torch==" in section, platform
    assert (ROOT / "paintwire" / "__main__.py").is_file()
    for script in ("plugins/krita/build.py", "plugins/gimp/build.py"):
        assert (ROOT / script).is_file()
