"""Which engines a server runs: the classical one always, the others when their
dependencies import (the diffusers engine needs torch), and engines of other
packages named ``module:Class`` (external.py)."""

from __future__ import annotations

import logging

from ..config import ServerConfig
from .base import Engine
from .classical import ClassicalEngine
from .external import is_external, load_engine

log = logging.getLogger(__name__)


def build_engines(config: ServerConfig) -> list[Engine]:
    engines: list[Engine] = []
    for name in config.engines:
        if name == "classical":
            engines.append(ClassicalEngine())
        elif name == "diffusers":
            try:
                from .diffusion import DiffusersEngine
            except ImportError as exc:
                log.warning("diffusers engine not loaded (%s); install paintwire[diffusers] for it", exc)
                continue
            engines.append(DiffusersEngine(config))
        elif is_external(name):
            engine = load_engine(name, config)
            if engine is not None:
                engines.append(engine)
        else:
            log.warning("unknown engine %r in the configuration; known: classical, diffusers, or module:Class", name)
    return engines
