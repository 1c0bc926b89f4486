"""Giving memory back to the system when the work that needed it is over.

Two things keep a server's RSS high after a job: objects that live in
reference cycles until a collection happens, and glibc's allocator, which
keeps freed buffers in its heaps for the next allocation. ``release_now``
collects cycles and trims the heaps, soon after a connection ends
(``release_memory``); ``trim_heaps`` only trims, once the engine has been idle
for a moment (the scheduler's ``on_idle``).

glibc's mmap threshold is left to adapt, on purpose. Pinning it low
(M_MMAP_THRESHOLD at 1 MiB, which this server once did so that freed buffers
went straight back) maps and unmaps every tensor of a megabyte or more, so
each denoising step faulted in fresh zeroed pages for all its activations:
137,000 minor page faults per live frame against 15,500 without the pin, and
the engine ran up to 1.8x slower in the server than called directly
(docs/performance.md, "The engine in the server"). Instead every thread
allocates from one arena (``configure_allocator``): malloc_trim gives back the
free top of the main arena only, so with the usual arena per thread the
engine thread's heaps kept what its last job freed (60 MiB after a few big
upscales) for as long as the server ran.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
RELEASE_DELAY_SECONDS = 0.5  # several connections ending together cost one collection

_libc: ctypes.CDLL | None = None
_pending: asyncio.TimerHandle | None = None


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name or "libc.so.6")
            libc.malloc_trim  # only glibc has it
            libc.mallopt
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def configure_allocator() -> None:
    """One malloc arena for every thread, so that a trim returns what they all freed
    (glibc only; elsewhere a no-op). Call it before the server starts its threads."""
    libc = _glibc()
    if libc is not None and not libc.mallopt(M_ARENA_MAX, 1):
        log.debug("mallopt(M_ARENA_MAX) refused")


def trim_heaps() -> None:
    """Give the allocator's free pages back to the system (glibc only)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def release_now() -> None:
    gc.collect()
    trim_heaps()


def release_memory() -> None:
    """Collect and trim shortly, once for any number of calls in the meantime."""
    global _pending
    if _pending is not None and not _pending.cancelled():
        return
    loop = asyncio.get_running_loop()

    def run() -> None:
        global _pending
        _pending = None
        release_now()

    _pending = loop.call_later(RELEASE_DELAY_SECONDS, run)
