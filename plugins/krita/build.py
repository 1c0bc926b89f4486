"""Build the Krita plug-in zip: ``python plugins/krita/build.py -o dist/paintwire-krita.zip``.

The zip is what Krita's Tools > Scripts > Import Python Plugin from File
expects: ``paintwire_krita.desktop``, ``paintwire_krita.action`` (the
Generate shortcut) and the ``paintwire_krita/`` package at its top level. The package carries ``vendor/`` (paintwire.protocol, msgpack,
websockets, pure Python, from plugins/bundle.py), so nothing is installed
into Krita's Python.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # plugins/ for bundle.py

from bundle import write_vendor, write_zip  # noqa: E402

NAME = "paintwire_krita"
DEFAULT_OUTPUT = HERE.parent.parent / "dist" / "paintwire-krita.zip"


def stage(target: Path) -> Path:
    """Lay out the plug-in as Krita installs it (desktop file + package) under ``target``."""
    shutil.copy2(HERE / f"{NAME}.desktop", target / f"{NAME}.desktop")
    # The Generate action's default shortcut (Krita's importer installs it into actions/).
    shutil.copy2(HERE / f"{NAME}.action", target / f"{NAME}.action")
    package = target / NAME
    shutil.copytree(HERE / NAME, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "vendor"))
    write_vendor(package / "vendor")
    return target


def build(output: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        # Krita's importer finds the package by its directory entry ("paintwire_krita/").
        return write_zip(stage(Path(tmp)), output, folder_entries=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"the zip to write (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    out = build(args.output)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
