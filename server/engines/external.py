"""Engines from outside the server package, named in the configuration as
``module:Class`` (``engines = ["classical", "my_engines.poster:PosterEngine"]``).

A new engine, with modes of its own, is one importable module: the server
describes its modes in the capabilities and the plug-ins offer them, with no
change to the server or to any plug-in. The module must be importable by the
server's Python (installed, or on PYTHONPATH); it is trusted code, chosen by
whoever configures the server, like the server itself.
"""

from __future__ import annotations

import importlib
import logging

from ..config import ServerConfig
from .base import Engine

log = logging.getLogger(__name__)


def is_external(name: str) -> bool:
    return ":" in name


def load_engine(spec: str, config: ServerConfig) -> Engine | None:
    """The engine ``module:Class`` made with ``Class(config)``; None (and a warning
    saying what to fix) when it cannot be loaded."""
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        log.warning("engine %r not loaded (%s); check the module path and that it is importable", spec, exc)
        return None
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        log.warning("engine %r not loaded: %s is not a paintwire.server.engines.base.Engine subclass", spec, class_name)
        return None
    return cls(config)
