"""Build the GIMP plug-in bundle: a folder for GIMP's plug-ins directory, and a zip of it.

    python plugins/gimp/build.py -o dist/paintwire-gimp

makes ``dist/paintwire-gimp/paintwire/`` (paintwire.py, its modules and
``vendor/`` with paintwire.protocol, msgpack and websockets) and
``dist/paintwire-gimp.zip`` holding the ``paintwire/`` folder. A user unpacks
the zip into GIMP's plug-ins folder (Edit > Preferences > Folders > Plug-ins).
"""

from __future__ import annotations

import argparse
import shutil
import stat
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "paintwire"
sys.path.insert(0, str(HERE.parent))
from bundle import write_vendor, write_zip  # noqa: E402

NAME = "paintwire"  # GIMP requires the folder and the entry file to share this name


def build(out: Path) -> tuple[Path, Path]:
    """Write the plug-in folder into ``out`` and the zip beside it. Returns (folder, zip)."""
    out = out.resolve()
    folder = out / NAME
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in sorted(SOURCE.glob("*.py")):
        shutil.copy2(path, folder / path.name)
    entry = folder / f"{NAME}.py"
    entry.chmod(entry.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    write_vendor(folder / "vendor")
    archive = out.with_suffix(".zip") if out.suffix != ".zip" else out
    write_zip(folder.parent, archive, executables=frozenset({f"{NAME}/{NAME}.py"}))
    return folder, archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("dist/paintwire-gimp"), help="output folder (the zip goes beside it)")
    args = parser.parse_args(argv)
    folder, archive = build(args.output)
    print(f"GIMP plug-in: {folder}")
    print(f"zip:          {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
