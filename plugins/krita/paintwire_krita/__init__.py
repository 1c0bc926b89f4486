"""Paintwire for Krita: a docker that sends the document to a Paintwire server
and puts the results back as new layers.

Krita imports this package at start-up when the plug-in is enabled. It puts
its own vendored packages (paintwire.protocol, msgpack, websockets) on
sys.path first, then registers the docker. Modules that touch Krita are
document.py (all document access) and docker.py / widgets.py (the UI);
state.py holds the UI-independent state and is tested without Krita.
"""

from __future__ import annotations

from .vendoring import use_vendored

VENDOR_PROBLEM = use_vendored()

try:
    # A name, not just the module: any folder called "krita" on sys.path would
    # import as an empty namespace package.
    from krita import Krita  # noqa: F401  (only inside Krita)
except ImportError:  # unit tests import the Krita-free modules of this package
    Krita = None

INSIDE_KRITA = Krita is not None

if INSIDE_KRITA:
    from .docker import register

    register()
