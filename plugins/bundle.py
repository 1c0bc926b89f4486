"""Vendoring for the plug-in bundles: paintwire.protocol plus pure-Python copies
of msgpack and websockets, copied into a folder that a plug-in puts on sys.path.

Krita and GIMP run their own Python (Debian's, or the one bundled with the
official Windows and macOS builds), where the user cannot pip install, so a
plug-in carries what it needs. Only .py files are copied: the compiled
speed-ups of msgpack and websockets are optional, and a .so built for this
machine would not load in another Python.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENDORED = ("msgpack", "websockets")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed in this Python; install paintwire first (pip install -e .).")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_python(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.suffix not in (".py", ".typed") and path.name != "LICENSE":
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def write_vendor(target: Path) -> Path:
    """Fill ``target`` (created, emptied first) with paintwire.protocol, msgpack and
    websockets as importable packages. Returns ``target``."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    # paintwire is a namespace package: no paintwire/__init__.py, so a vendored
    # copy and an installed server never fight over it.
    _copy_python(REPO / "protocol", target / "paintwire" / "protocol")
    for name in VENDORED:
        _copy_python(_package_dir(name), target / name)
    return target
