"""Which engines a server runs: the classical one always, the others when their
dependencies import (the diffusers engine needs torch), and engines of other
packages named ``module:Class`` (external.py)."""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Mapping

from ..config import ServerConfig
from .base import Engine
from .classical import ClassicalEngine
from .external import is_external, load_engine
from .starting import StartingEngine

log = logging.getLogger(__name__)

Builder = Callable[[], "Engine | None"]


class EnginesByName(Mapping[str, Engine]):
    """The server's engines by their names as they are now, for the parts that look one up
    by a job's ``engine``: a starting engine takes its engine's name once built (that of
    an engine named ``module:Class`` is known only then)."""

    def __init__(self, engines: list[Engine]) -> None:
        self._engines = engines

    def __getitem__(self, name: str) -> Engine:
        for engine in self._engines:
            if engine.name == name:
                return engine
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (engine.name for engine in self._engines)

    def __len__(self) -> int:
        return len(self._engines)


def build_engines(config: ServerConfig) -> list[Engine]:
    """Every configured engine, built now (blocking)."""
    return [engine for name in config.engines if (build := _builder(name, config)) is not None and (engine := build()) is not None]


def plan_engines(config: ServerConfig) -> list[Engine]:
    """Every configured engine: the classical one built now (it imports nothing slow), each
    other one as a StartingEngine, to be built after the server is listening (starting.py)."""
    engines: list[Engine] = []
    for name in config.engines:
        build = _builder(name, config)
        if build is None:
            continue
        if name == "classical":
            engine = build()
            if engine is not None:
                engines.append(engine)
        else:
            engines.append(StartingEngine(name, build))
    return engines


def _builder(name: str, config: ServerConfig) -> Builder | None:
    """Each built-in engine gets the sections it uses; an engine of another package
    (module:Class) the whole configuration, as its documented constructor takes."""
    if name == "classical":
        return ClassicalEngine
    if name == "diffusers":
        return lambda: _diffusers(config)
    if is_external(name):
        return lambda: load_engine(name, config)
    log.warning("unknown engine %r in the configuration; known: classical, diffusers, or module:Class", name)
    return None


def _diffusers(config: ServerConfig) -> Engine | None:
    try:
        from .diffusion import DiffusersEngine
    except ImportError as exc:
        log.warning("diffusers engine not loaded (%s); install paintwire[diffusers] for it", exc)
        return None
    return DiffusersEngine(config.device, config.models)
