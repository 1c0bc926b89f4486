"""Building the plug-in bundles: paintwire.protocol, paintwire.hostkit and
pure-Python copies of msgpack and websockets, copied into a folder that a
plug-in puts on sys.path; and the reproducible zip both bundles are shipped in.

Krita and GIMP run their own Python (Debian's, or the one bundled with the
official Windows and macOS builds), where the user cannot pip install, so a
plug-in carries what it needs. Only .py files are copied: the compiled
speed-ups of msgpack and websockets are optional, and a .so built for this
machine would not load in another Python.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENDORED = ("msgpack", "websockets")
KIT = ("protocol", "hostkit")  # the paintwire packages both plug-ins carry
# Kit modules no plug-in imports and that need numpy: the in-memory document (a host for tests).
LEFT_OUT = frozenset({"hostkit/memory_document.py"})


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed in this Python; install paintwire first (pip install -e .).")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_python(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.relative_to(src.parent).as_posix() in LEFT_OUT:
            continue
        if path.suffix not in (".py", ".typed") and path.name != "LICENSE":
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def write_vendor(target: Path) -> Path:
    """Fill ``target`` (created, emptied first) with paintwire.protocol, paintwire.hostkit, msgpack and
    websockets as importable packages. Returns ``target``."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    # paintwire is a namespace package: no paintwire/__init__.py, so a vendored
    # copy and an installed server never fight over it.
    for package in KIT:
        _copy_python(REPO / package, target / "paintwire" / package)
    for name in VENDORED:
        _copy_python(_package_dir(name), target / name)
    return target


# Fixed timestamps keep the zip identical for identical sources (1980 is zip's epoch).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_zip(root: Path, archive: Path, executables: frozenset[str] = frozenset(), folder_entries: bool = False) -> Path:
    """Zip every file under ``root`` (names relative to it, in sorted order, fixed
    times and modes) into ``archive``, written whole or not at all.

    ``executables`` are names (relative paths) that keep their run bit (GIMP runs
    its entry file); ``folder_entries`` adds an entry per folder, which Krita's
    importer needs to find the package.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = path.relative_to(root).as_posix()
            if path.is_dir():
                if folder_entries:
                    info = zipfile.ZipInfo(name + "/", ZIP_TIME)
                    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10  # 0x10: the MS-DOS directory flag
                    zf.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | (0o755 if name in executables else 0o644)) << 16
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, archive)
    return archive
