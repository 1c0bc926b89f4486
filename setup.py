"""The package list, found rather than written: setuptools reads everything else from pyproject.toml.

The top-level folders are the project's rooms; inside Python they live in the
paintwire namespace (``protocol/`` is ``paintwire.protocol``). setuptools'
``packages.find`` cannot give found packages such a prefix, so each room is
searched here and its subpackages named under it: a new subpackage (a folder
with an ``__init__.py``) is in the wheel without anyone listing it.
"""

from setuptools import find_packages, setup

# Import name -> folder. paintwire/ holds only __main__.py (no __init__.py: an
# implicit namespace package), for ``python -m paintwire``.
ROOMS = {
    "paintwire": "paintwire",
    "paintwire.protocol": "protocol",
    "paintwire.hostkit": "hostkit",
    "paintwire.server": "server",
    "paintwire.cli": "cli",
}


def packages() -> list[str]:
    found = list(ROOMS)
    for name, folder in ROOMS.items():
        found += [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


if __name__ == "__main__":  # setuptools runs this file as a script; tests import packages()
    setup(package_dir=ROOMS, packages=packages())
