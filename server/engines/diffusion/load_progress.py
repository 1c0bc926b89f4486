"""Progress while a model loads, and no progress bars on the server's terminal.

diffusers draws its bars through one factory, ``diffusers.utils.logging.tqdm``,
which its loaders look up at each call. Replacing that factory once turns every
bar off (a server's log is not a terminal) and lets the loop over a pipeline's
components ("Loading pipeline components...") report each component to the job
that is loading the model, on the thread doing it. A cancel raised from that
report stops the load between components.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

Report = Callable[[int, int], None]  # (components loaded, components in all)

_local = threading.local()
_COMPONENT_LOOP = "pipeline components"


class _Silent:
    """What a bar is when nobody listens: iterates, counts nothing, prints nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._iterable = args[0] if args else kwargs.get("iterable")

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable if self._iterable is not None else ())

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


class _Reporting(_Silent):
    def __init__(self, items: list[Any], report: Report) -> None:
        super().__init__(items)
        self._items, self._report = items, report

    def __iter__(self) -> Iterator[Any]:
        total = len(self._items)
        self._report(0, total)
        for i, item in enumerate(self._items):
            yield item
            self._report(i + 1, total)


class _Bars:
    """Stands in for diffusers' tqdm factory."""

    def __call__(self, *args: Any, **kwargs: Any) -> _Silent:
        report: Report | None = getattr(_local, "report", None)
        iterable = args[0] if args else kwargs.get("iterable")
        if report is not None and iterable is not None and _COMPONENT_LOOP in str(kwargs.get("desc", "")):
            return _Reporting(list(iterable), report)
        return _Silent(*args, **kwargs)

    def set_lock(self, *args: Any, **kwargs: Any) -> None:
        return None

    def get_lock(self) -> None:
        return None


def install() -> None:
    """Replace diffusers' bar factory (idempotent)."""
    from diffusers.utils import logging as diffusers_logging

    if not isinstance(diffusers_logging.tqdm, _Bars):
        diffusers_logging.tqdm = _Bars()


@contextlib.contextmanager
def reporting(report: Report) -> Iterator[None]:
    """Send this thread's component-loading progress to ``report`` meanwhile."""
    install()
    previous = getattr(_local, "report", None)
    _local.report = report
    try:
        yield
    finally:
        _local.report = previous
