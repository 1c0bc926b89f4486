"""Putting the plug-in's own copies of its dependencies on sys.path.

Krita's Python has no pip: the bundle carries paintwire.protocol, msgpack and
websockets in ``vendor/`` next to this file. The folder goes first on sys.path
so that an older system copy (Debian 12 ships websockets 10, without the
sync client) is not picked up; nothing already on the path is removed, and a
module that another plug-in imported earlier is left alone and only checked.
"""

from __future__ import annotations

import os
import sys

VENDOR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor")


def use_vendored() -> str | None:
    """Make the vendored packages importable. Returns None when all is well,
    else a sentence for the docker's status line."""
    if os.path.isdir(VENDOR_DIR) and VENDOR_DIR not in sys.path:
        sys.path.insert(0, VENDOR_DIR)
    try:
        import msgpack  # noqa: F401
        import websockets.sync.client  # noqa: F401

        import paintwire.protocol  # noqa: F401
    except ImportError as exc:
        loaded = getattr(sys.modules.get("websockets"), "__file__", None)
        where = f" (websockets was already loaded from {loaded})" if loaded else ""
        return f"Paintwire cannot load its network library: {exc}{where}. Reinstall the plug-in zip."
    return None
