"""Shared-memory segments for clients on the server's own machine (Linux).

A segment is a file in /dev/shm, which is what POSIX ``shm_open`` makes on
Linux. Files are used directly rather than ``multiprocessing.shared_memory``:
before Python 3.13 that module registers every segment with a resource-tracker
process started from ``sys.executable``, which inside Krita is Krita itself,
and it maps the segment, so a peer that shrinks it turns a read into SIGBUS.
Reading with ``preadv`` instead can only come up short, which is checked.

The writer (a client) makes a segment with a random name under ``PREFIX``,
readable by its own user only, and reuses it job after job (an ``Arena``, which
maps its own segment to write it with one copy: see there how it keeps clear of
SIGBUS); the reader (the server) takes a segment only if its name has the prefix
and no path characters, it is a regular file owned by the server's own user and
it holds the declared bytes, and reads it into fresh memory of its own
(``new_buffer``). The client removes its segment when it closes; the server
removes the segments a connection named when that connection ends (those of its
own user only, by name, never following a link), so a client that crashed leaves
nothing behind. Elsewhere (Windows, macOS) ``available()`` is False and pixels go
in the websocket frame.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys

try:
    import mmap
except ImportError:  # a host's embedded Python built without it: no shared memory, pixels go in the frame
    mmap = None  # type: ignore[assignment]

from .errors import ErrorCode, ProtocolError

SHM_DIR = "/dev/shm"
PREFIX = "paintwire-"
_NAME = re.compile(r"paintwire-[A-Za-z0-9_-]{8,64}")
PROBE_BYTES = 16
# Reads of this size and more go into memory of their own with huge pages (below).
LARGE_READ = 2 << 20


def available() -> bool:
    """Whether this machine has /dev/shm segments (Linux)."""
    return mmap is not None and sys.platform.startswith("linux") and os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


def new_name() -> str:
    return PREFIX + secrets.token_urlsafe(18)


def write_segment(parts: list, name: str | None = None) -> tuple[str, list[int]]:
    """A new segment holding ``parts`` one after another; returns its name and their offsets."""
    name = name or new_name()
    fd = os.open(os.path.join(SHM_DIR, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        return name, _write_parts(fd, parts)
    except BaseException:
        remove(name)
        raise
    finally:
        os.close(fd)


def _write_parts(fd: int, parts: list) -> list[int]:
    """Write ``parts`` one after another from the start of ``fd``; returns their offsets."""
    offsets, at = [], 0
    for part in parts:
        view = memoryview(part).cast("B")
        offsets.append(at)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], at + done)
        at += len(view)
    return offsets


class Arena:
    """A client's one segment, reused for every job of a connection, and kept mapped
    in the client: a job's pixels then go in with one plain copy. Writing with
    ``pwrite`` instead costs the kernel's page-cache bookkeeping per 4 KiB on top of
    the copy (1.5-2x a copy), and a new segment per job a page allocation per 4 KiB.

    A mapped file that shrinks turns a copy into SIGBUS, so the segment is never
    shrunk by this side, its pages are allocated up front (``posix_fallocate``: a full
    /dev/shm is an OSError here, never a fault on a hole), and each write first checks
    that the name still holds this file, as large as the mapping. The server only
    reads the segment, and removes it when the connection ends. The Arena holds no
    descriptor of its own: the mapping is all there is, and it goes with the Arena."""

    def __init__(self) -> None:
        self.name: str | None = None
        self._map: mmap.mmap | None = None
        self._inode = -1

    def write(self, parts: list) -> tuple[str, list[int]]:
        """Put ``parts`` one after another at the start of the segment (made at the first
        call); returns its name and their offsets. Raises OSError when the segment cannot
        be made, grown or written (no room, or someone else removed or replaced it)."""
        views = [memoryview(part).cast("B") for part in parts]
        try:
            mapped = self._ensure(max(1, sum(len(view) for view in views)))
        except OSError:
            self.close()  # the caller sends its pixels in the frame; nothing is left behind
            raise
        offsets, at = [], 0
        for view in views:
            offsets.append(at)
            mapped[at:at + len(view)] = view
            at += len(view)
        assert self.name is not None
        return self.name, offsets

    def _ensure(self, need: int) -> mmap.mmap:
        """The mapping, over at least ``need`` bytes of allocated pages, once the file is checked."""
        if self._map is not None:
            assert self.name is not None
            info = os.stat(os.path.join(SHM_DIR, self.name), follow_symlinks=False)  # FileNotFoundError once removed
            if info.st_ino != self._inode:
                raise FileNotFoundError(f"Shared-memory segment {self.name!r} was replaced.")
            if info.st_size >= len(self._map) >= need:
                return self._map
            self._map.close()  # shrunk by someone, or too small: map it again below
            self._map = None
            name, flags = self.name, os.O_RDWR
        else:
            name, flags = new_name(), os.O_RDWR | os.O_CREAT | os.O_EXCL
        fd = os.open(os.path.join(SHM_DIR, name), flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            self.name = name
            info = os.fstat(fd)
            if self._inode not in (-1, info.st_ino):
                raise FileNotFoundError(f"Shared-memory segment {name!r} was replaced.")
            self._inode = info.st_ino
            size = max(need, info.st_size)
            os.posix_fallocate(fd, 0, size)  # the pages exist before anything touches them
            self._map = mmap.mmap(fd, size)  # keeps a descriptor of its own until it goes
            return self._map
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self.name is not None:
            remove(self.name)
            self.name = None
        self._inode = -1


def remove(name: str) -> None:
    """Remove a segment this side made (gone already is fine)."""
    if _NAME.fullmatch(name):
        try:
            os.unlink(os.path.join(SHM_DIR, name))
        except OSError:
            pass


def remove_named(name: str) -> None:
    """Remove entry ``name`` that a peer named, if this process's user owns it (gone
    already is fine). Only the name goes: a link is removed, never followed, and a
    directory only when it is ours and empty. Another user's entry is never touched."""
    if not _NAME.fullmatch(name):
        return
    path = os.path.join(SHM_DIR, name)
    try:
        info = os.lstat(path)
        if info.st_uid != os.geteuid():
            return
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(path)  # fails on a directory that holds anything: nothing below it is removed
        else:
            os.unlink(path)
    except OSError:
        pass


def read_segment(name: str, offset: int, size: int, field: str = "shm") -> memoryview:
    """``size`` bytes at ``offset`` of segment ``name``. Raises ProtocolError(BAD_SEGMENT)
    with a sentence for every way a peer can lie. (Which segments are removed, and when,
    is ``SegmentReads``'s business.)"""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProtocolError(ErrorCode.BAD_SEGMENT, f"Segment names are {PREFIX!r} and 8 to 64 letters, digits, '_' or '-'; got {name!r:.80}.", f"{field}.name")
    path = os.path.join(SHM_DIR, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProtocolError(ErrorCode.BAD_SEGMENT, f"No segment {name!r} on the server's machine; a client elsewhere must send pixels in the frame.", f"{field}.name") from None
    except OSError as exc:
        raise ProtocolError(ErrorCode.BAD_SEGMENT, f"Segment {name!r} cannot be opened ({exc.strerror}).", f"{field}.name") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ProtocolError(ErrorCode.BAD_SEGMENT, f"Segment {name!r} is not a plain shared-memory file.", f"{field}.name")
        if info.st_uid != os.geteuid():
            raise ProtocolError(ErrorCode.BAD_SEGMENT, f"Segment {name!r} belongs to another user; the server reads only its own user's segments.", f"{field}.name")
        if offset + size > info.st_size:
            raise ProtocolError(
                ErrorCode.BAD_SEGMENT, f"Segment {name!r} holds {info.st_size} bytes; the image needs {size} at offset {offset}.", f"{field}.offset",
            )
        out = new_buffer(size)
        view, done = memoryview(out), 0
        while done < size:
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:  # shrunk while being read
                raise ProtocolError(ErrorCode.BAD_SEGMENT, f"Segment {name!r} shrank while it was read; keep it until the server answers.", f"{field}.name")
            done += got
        return memoryview(out).toreadonly()  # a view, so that nothing downstream copies it again
    finally:
        os.close(fd)


def new_buffer(size: int) -> bytearray | mmap.mmap:
    """Writable memory of ``size`` bytes for a segment's pixels, owned by this process.

    A large read spends most of its time on fresh memory, not on the copy: a bytearray is
    zeroed by Python (one page fault per 4 KiB, then the memset) before ``preadv`` writes
    it again. A private anonymous mapping is zeroed by the kernel as it is touched, and
    with huge pages that is a fault per 2 MiB. It is unmapped when its last view goes.
    This maps the server's own memory, never a peer's segment (see the module notes)."""
    if size < LARGE_READ or mmap is None or not hasattr(mmap, "MAP_PRIVATE"):
        return bytearray(size)
    out = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            out.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # a kernel without transparent huge pages: 4 KiB pages, still no memset
            pass
    return out


# Names one connection remembers to remove: far more than a client that reuses one
# segment needs, and a bound on what a client naming new ones without end can hold.
MAX_NAMED = 4096


class SegmentReads:
    """A server connection's segment reader (a transfer.SegmentReader): reads images
    from segments and remembers every segment its messages named (read, refused or
    not even read), to remove them all when the connection ends (``release``, by the
    rules of ``remove_named``)."""

    def __init__(self) -> None:
        self._named: dict[str, None] = {}  # an ordered set

    def named(self, name: str) -> None:
        if len(self._named) < MAX_NAMED and _NAME.fullmatch(name) and os.path.lexists(os.path.join(SHM_DIR, name)):
            self._named[name] = None

    def __call__(self, name: str, offset: int, size: int, field: str) -> memoryview:
        self.named(name)
        return read_segment(name, offset, size, field)

    def release(self) -> None:
        for name in self._named:
            remove_named(name)
        self._named.clear()


def probe(token_bytes: int = PROBE_BYTES) -> tuple[str, str] | None:
    """A probe segment holding a random token (for hello), or None without shared memory."""
    if not available():
        return None
    token = secrets.token_hex(token_bytes)
    try:
        name, _ = write_segment([bytes.fromhex(token)])
    except OSError:
        return None
    return name, token


def check_probe(name: str, token: str) -> str:
    """Read a client's probe; "" when it holds the token, else why shared memory is off.
    The probe holds the bytes the hex text ``token`` encodes (``00ff``: the two bytes 0x00
    0xff), not the text; it is removed once it proved the token, and left to its
    client otherwise (it may be someone else's)."""
    if not available():
        return "This server's machine has no shared memory (/dev/shm)."
    try:
        expected = bytes.fromhex(token)
    except ValueError:
        return "The probe token is not hex text."
    if len(expected) < PROBE_BYTES:
        return f"The probe token must be at least {2 * PROBE_BYTES} hex digits ({PROBE_BYTES} random bytes): a shorter one proves little."
    try:
        got = bytes(read_segment(name, 0, len(expected), "transfer.shm"))
    except ProtocolError as exc:
        return exc.message
    if got == expected:
        remove_named(name)
        return ""
    if got == token.encode("ascii")[:len(expected)]:
        return ("The probe segment holds the token's hex text; it must hold the bytes that text encodes "
                f"({len(expected)} bytes for {len(token)} hex digits).")
    return "The probe segment does not hold the token's bytes (another program's segment of that name?); send pixels in the frame."
