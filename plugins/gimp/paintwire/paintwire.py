#!/usr/bin/env python3
"""Paintwire for GIMP 3: Filters > Paintwire.

GIMP runs this file in its own Python process. The folder it sits in holds the
plug-in's modules and ``vendor/`` with paintwire.protocol, msgpack and
websockets (pure Python), put there by plugins/gimp/build.py.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENDOR = os.path.join(HERE, "vendor")


def _set_up_path() -> None:
    # The bundled packages come first, so a system websockets or msgpack (Debian
    # has older ones) never shadows the versions the protocol was tested with.
    # This folder must not be on the path when paintwire.protocol is imported:
    # this file is "paintwire.py", and a module of that name would hide the
    # vendored "paintwire" namespace package. Once the namespace is imported it
    # is cached, and the folder can go back (at the end) for the sibling modules.
    sys.path[:] = [VENDOR] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]
    import paintwire.protocol  # noqa: F401

    sys.path.append(HERE)


_set_up_path()

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402

import procedures  # noqa: E402


class Paintwire(Gimp.PlugIn):
    def do_query_procedures(self):
        return procedures.names()

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        return procedures.create(self, name)


Gimp.main(Paintwire.__gtype__, sys.argv)
