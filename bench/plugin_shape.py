"""How thin the plug-ins are: lines of Python per plug-in and the host kit, and their
longest functions (read with ast, nothing imported), now and at a git revision.

    ./run bench plugin_shape            this checkout
    ./run bench plugin_shape REV        this checkout beside REV (e.g. main, a commit)

Not a timing: the figures are exact, so one run says it all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("plugins/krita", "plugins/gimp", "hostkit")
LONGEST = 3


def _files(rev: str | None, part: str) -> dict[str, str]:
    """Path -> source of every .py file under ``part``, in the checkout or at ``rev``."""
    if rev is None:
        return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted((ROOT / part).rglob("*.py"))}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, part], cwd=ROOT, capture_output=True, text=True, check=True)
    out = {}
    for name in names.stdout.split():
        if name.endswith(".py"):
            out[name] = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out


def shape(rev: str | None, part: str) -> tuple[int, int, list[tuple[int, str]]]:
    """(files, lines, the longest functions as (lines, "file:name"))."""
    files = _files(rev, part)
    functions = []
    for path, source in files.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{Path(path).name}:{node.name}"))
    functions.sort(reverse=True)
    return len(files), sum(len(s.splitlines()) for s in files.values()), functions[:LONGEST]


def main() -> None:
    revs: list[str | None] = [None, *sys.argv[1:2]]
    for part in PARTS:
        for rev in revs:
            count, lines, longest = shape(rev, part)
            label = rev or "this checkout"
            top = ", ".join(f"{name} {n}" for n, name in longest)
            print(f"{part:14} {label:14} {count:3} files {lines:6} lines  longest: {top}")


if __name__ == "__main__":
    main()
