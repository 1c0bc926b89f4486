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
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # plugins/ for bundle.py

from bundle import write_vendor  # noqa: E402

NAME = "paintwire_krita"
DEFAULT_OUTPUT = HERE.parent.parent / "dist" / "paintwire-krita.zip"
# Entries get this fixed time so that two builds of the same tree are byte-identical.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


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
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = stage(Path(tmp))
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                name = path.relative_to(root).as_posix()
                if path.is_dir():
                    # Krita's importer finds the package by its directory entry
                    # ("paintwire_krita/"), so folders get entries of their own.
                    info = zipfile.ZipInfo(name + "/", ZIP_TIME)
                    info.external_attr = (0o40755 << 16) | 0x10
                    zf.writestr(info, b"")
                    continue
                info = zipfile.ZipInfo(name, ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"the zip to write (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    out = build(args.output)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
