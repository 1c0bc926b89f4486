"""Giving memory back to the system when clients leave.

Two things keep a server's RSS high after the work that needed it is over:
objects that live in reference cycles until a collection happens, and glibc's
allocator, which after a large free raises its mmap threshold (up to 32 MiB)
and from then on serves multi-megabyte buffers from its heaps, which it rarely
returns. ``configure_allocator`` pins the threshold so that big pixel buffers
are always mapped and unmapped on free; ``release_memory`` collects cycles and
trims the heaps, soon after a connection ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20  # buffers of a megabyte and more: images, frames, tensors
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
    """Keep big buffers out of the heaps (glibc only; elsewhere a no-op)."""
    libc = _glibc()
    if libc is not None and not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")


def release_now() -> None:
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


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
