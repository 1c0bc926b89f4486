"""Shared-memory segments (protocol/shm.py) against a client that lies: every
refusal is a BAD_SEGMENT with a sentence, and nothing is read out of bounds."""

from __future__ import annotations

import mmap
import os
import shutil
from pathlib import Path

import pytest

from paintwire.protocol import ErrorCode, ProtocolError, shm

pytestmark = pytest.mark.skipif(not shm.available(), reason="no /dev/shm on this machine (Linux only)")


@pytest.fixture
def segment():
    arena = shm.Arena()
    name, offsets = arena.write([b"\x01" * 1000, b"\x02" * 24])
    assert offsets == [0, 1000]
    yield name
    arena.close()


def refused(name: str, offset: int = 0, size: int = 10, reads: shm.SegmentReads | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        (reads or shm.read_segment)(name, offset, size, "job.image.shm")
    assert info.value.code is ErrorCode.BAD_SEGMENT
    assert info.value.message.endswith(".")
    return info.value


def test_a_segment_is_read_at_its_offset(segment: str) -> None:
    assert bytes(shm.read_segment(segment, 1000, 24)) == b"\x02" * 24
    assert bytes(shm.read_segment(segment, 990, 20))[:10] == b"\x01" * 10


def test_the_arena_reuses_its_segment() -> None:
    arena = shm.Arena()
    try:
        first, _ = arena.write([b"a" * 100])
        second, _ = arena.write([b"b" * 50])
        assert first == second
        assert bytes(shm.read_segment(first, 0, 100)) == b"b" * 50 + b"a" * 50
    finally:
        arena.close()
    assert not os.path.exists(os.path.join(shm.SHM_DIR, first))


def test_the_arena_grows_its_segment_and_keeps_every_byte() -> None:
    arena = shm.Arena()
    try:
        first, _ = arena.write([b"a" * 100])
        big = os.urandom(3 << 20)  # over LARGE_READ: the server reads it into memory of its own
        name, offsets = arena.write([big, b"m" * 4096])
        assert name == first and offsets == [0, len(big)]
        assert bytes(shm.read_segment(name, 0, len(big))) == big
        assert bytes(shm.read_segment(name, len(big), 4096)) == b"m" * 4096
    finally:
        arena.close()


def test_the_arena_writes_again_after_its_segment_was_shrunk() -> None:
    """Another process of the user shrinks the segment between two jobs: the next write
    maps it again at its full size instead of copying past the end (SIGBUS)."""
    arena = shm.Arena()
    try:
        name, _ = arena.write([b"a" * 10000])
        os.truncate(os.path.join(shm.SHM_DIR, name), 100)
        assert arena.write([b"b" * 10000]) == (name, [0])
        assert bytes(shm.read_segment(name, 0, 10000)) == b"b" * 10000
    finally:
        arena.close()


def test_an_arena_whose_segment_was_removed_raises_os_error_and_cleans_up() -> None:
    """The client's cue to send its pixels in the frame (protocol/client.py)."""
    arena = shm.Arena()
    name, _ = arena.write([b"a" * 100])
    os.unlink(os.path.join(shm.SHM_DIR, name))
    with pytest.raises(OSError):
        arena.write([b"b" * 100])
    assert arena.name is None
    fresh, _ = arena.write([b"c" * 100])  # a later write makes a new segment
    assert fresh != name and bytes(shm.read_segment(fresh, 0, 100)) == b"c" * 100
    arena.close()
    assert not os.path.exists(os.path.join(shm.SHM_DIR, fresh))


def test_an_arena_whose_segment_was_replaced_raises_os_error() -> None:
    arena = shm.Arena()
    name, _ = arena.write([b"a" * 100])
    path = os.path.join(shm.SHM_DIR, name)
    other = path + "-other"
    with open(other, "wb") as f:
        f.write(b"z" * 1000)
    os.rename(other, path)  # another file under the segment's name
    try:
        with pytest.raises(OSError):
            arena.write([b"b" * 100])
    finally:
        arena.close()
    assert not os.path.exists(path)


def test_an_arena_holds_no_descriptor_of_its_own() -> None:
    """Only the mapping's (Python's mmap keeps one), which goes with it: an Arena that is
    dropped without close() leaks no descriptor."""
    before = len(os.listdir("/proc/self/fd"))
    arena = shm.Arena()
    arena.write([b"a" * 100])
    arena.write([b"b" * 100000])  # grown: mapped again
    assert len(os.listdir("/proc/self/fd")) <= before + 1
    name = arena.name
    del arena
    assert len(os.listdir("/proc/self/fd")) == before
    assert name is not None
    shm.remove(name)


def test_a_full_dev_shm_is_an_os_error_not_a_fault(monkeypatch) -> None:
    """Pages are allocated before the mapping is written: no room is an OSError the
    client answers by sending the frame, and the half-made segment is removed."""
    made: list[str] = []
    real_new_name = shm.new_name

    def fallocate_fails(fd: int, offset: int, size: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shm, "new_name", lambda: made.append(real_new_name()) or made[-1])
    monkeypatch.setattr(shm.os, "posix_fallocate", fallocate_fails)
    arena = shm.Arena()
    with pytest.raises(OSError):
        arena.write([b"a" * 100])
    assert arena.name is None and made and not os.path.exists(os.path.join(shm.SHM_DIR, made[0]))


def test_large_reads_are_exact_and_read_only() -> None:
    data = os.urandom(shm.LARGE_READ + 12345)
    arena = shm.Arena()
    try:
        name, offsets = arena.write([b"x" * 7, data])
        got = shm.read_segment(name, offsets[1], len(data))
        assert got.readonly and bytes(got) == data
        assert isinstance(got.obj, mmap.mmap)  # the server's own memory, not a bytearray zeroed first
        small = shm.read_segment(name, 0, 7)
        assert small.readonly and bytes(small) == b"x" * 7
    finally:
        arena.close()


@pytest.mark.parametrize("name", ["", "paintwire-", "paintwire-short", "other-abcdefghijkl", "paintwire-../../etc/passwd",
                                  "paintwire-abc/defghijk", "/dev/shm/paintwire-abcdefghijk", "paintwire-" + "a" * 65, "paintwire-abcdefgh\x00"])
def test_names_outside_the_pattern_are_refused(name: str) -> None:
    assert refused(name).field == "job.image.shm.name"


def test_a_missing_segment_is_refused() -> None:
    assert "No segment" in refused(shm.new_name()).message


def test_a_segment_too_small_is_refused_and_still_released(segment: str) -> None:
    reads = shm.SegmentReads()
    error = refused(segment, 1000, 25, reads)
    assert error.field == "job.image.shm.offset" and "1024 bytes" in error.message
    refused(segment, 1 << 40, 1)
    reads.release()  # removed with the connection's other segments
    assert not os.path.lexists(os.path.join(shm.SHM_DIR, segment))


def test_links_and_directories_are_refused(tmp_path) -> None:
    link = shm.new_name()
    target = tmp_path / "secret"
    target.write_bytes(b"x" * 100)
    os.symlink(target, os.path.join(shm.SHM_DIR, link))
    directory = shm.new_name()
    os.mkdir(os.path.join(shm.SHM_DIR, directory))
    try:
        refused(link)  # O_NOFOLLOW: a link is never followed out of /dev/shm
        refused(directory)
    finally:
        os.unlink(os.path.join(shm.SHM_DIR, link))
        os.rmdir(os.path.join(shm.SHM_DIR, directory))


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's segment needs root")
def test_another_users_segment_is_refused_and_never_removed(segment: str) -> None:
    os.chown(os.path.join(shm.SHM_DIR, segment), 12345, 12345)
    reads = shm.SegmentReads()
    assert "another user" in refused(segment, reads=reads).message
    reads.release()
    assert os.path.lexists(os.path.join(shm.SHM_DIR, segment))  # never removed by the server


def test_a_segment_that_shrinks_after_the_check_is_refused(segment: str, monkeypatch) -> None:
    """The read can only come up short (preadv, not a mapping that would SIGBUS): the segment
    is truncated between the size check and the read, as a lying client would do."""
    real_fstat = os.fstat

    def fstat_then_shrink(fd: int):
        info = real_fstat(fd)
        os.truncate(os.path.join(shm.SHM_DIR, segment), 10)  # the client shrinks it right after the check
        return info

    monkeypatch.setattr(shm.os, "fstat", fstat_then_shrink)
    assert "shrank" in refused(segment, 0, 1000).message


def test_the_probe_proves_a_shared_segment() -> None:
    made = shm.probe()
    assert made is not None
    name, token = made
    assert shm.check_probe(name, token) == ""
    assert not os.path.exists(os.path.join(shm.SHM_DIR, name))  # read once, then removed
    assert shm.check_probe(name, token) != ""  # gone
    other = shm.probe()
    assert other is not None
    assert "does not hold the token" in shm.check_probe(other[0], "00" * 16)
    assert os.path.exists(os.path.join(shm.SHM_DIR, other[0]))  # not proven to be the client's: left alone
    assert "hex" in shm.check_probe(other[0], "zz")
    shm.remove(other[0])


def test_a_probe_holding_the_hex_text_is_told_so() -> None:
    """The probe holds the bytes the token's hex encodes; one holding the text itself is a
    client on this machine that misread the rule, and the sentence says that, not "elsewhere"."""
    token = "0123456789abcdef" * 2
    name, _ = shm.write_segment([token.encode("ascii")])
    try:
        note = shm.check_probe(name, token)
        assert "hex text" in note and "16 bytes" in note and "not on this machine" not in note
    finally:
        shm.remove(name)
    assert "at least 32 hex digits" in shm.check_probe(shm.new_name(), "00ff")  # too short to prove anything


def test_release_removes_every_named_segment_by_name_only(tmp_path) -> None:
    """Section 6.7: every segment a connection named goes when it ends, whether it was read or
    not, and whatever it is: a link is removed without following it, an empty directory of ours
    is removed, and nothing below a directory is ever touched."""
    plain = shm.write_segment([b"x" * 10])[0]
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    link = shm.new_name()
    os.symlink(target, os.path.join(shm.SHM_DIR, link))
    empty, full = shm.new_name(), shm.new_name()
    os.mkdir(os.path.join(shm.SHM_DIR, empty))
    os.mkdir(os.path.join(shm.SHM_DIR, full))
    (Path(shm.SHM_DIR) / full / "inside").write_bytes(b"y")
    try:
        reads = shm.SegmentReads()
        for name in (plain, link, empty, full, shm.new_name(), "paintwire-../../tmp/x", "other-abcdefghijk"):
            reads.named(name)  # e.g. in a message refused with too_large before anything was read
        refused(link)
        reads.release()
        for name in (plain, link, empty):
            assert not os.path.lexists(os.path.join(shm.SHM_DIR, name)), name
        assert target.read_bytes() == b"keep me"  # the link went, not what it pointed at
        assert (Path(shm.SHM_DIR) / full / "inside").read_bytes() == b"y"  # never emptied, so never removed
    finally:
        for name in (plain, link):
            if os.path.lexists(os.path.join(shm.SHM_DIR, name)):
                os.unlink(os.path.join(shm.SHM_DIR, name))
        for name in (empty, full):
            shutil.rmtree(os.path.join(shm.SHM_DIR, name), ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's entries needs root")
def test_release_never_removes_another_users_entries() -> None:
    """A hostile client may name another user's segment, link or directory: the server (here
    root, whom no sticky bit stops) removes none of them."""
    made = []
    try:
        file = shm.write_segment([b"theirs"])[0]
        link, directory = shm.new_name(), shm.new_name()
        os.symlink("/etc/passwd", os.path.join(shm.SHM_DIR, link))
        os.mkdir(os.path.join(shm.SHM_DIR, directory))
        made = [file, link, directory]
        for name in made:
            os.lchown(os.path.join(shm.SHM_DIR, name), 12345, 12345)
        reads = shm.SegmentReads()
        for name in made:
            reads.named(name)
        reads.release()
        assert all(os.path.lexists(os.path.join(shm.SHM_DIR, name)) for name in made)
    finally:
        for name in made:
            path = os.path.join(shm.SHM_DIR, name)
            os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)


def test_segment_reads_release_what_the_connection_named(segment: str) -> None:
    reads = shm.SegmentReads()
    reads(segment, 0, 10, "f")
    reads(segment, 10, 10, "f")
    reads.release()
    assert not os.path.exists(os.path.join(shm.SHM_DIR, segment))


def test_without_the_mmap_module_there_is_no_shared_memory(monkeypatch) -> None:
    """A host's embedded Python without mmap: the client sends frames, the server reads into bytearrays."""
    monkeypatch.setattr(shm, "mmap", None)
    assert not shm.available() and shm.probe() is None
    assert isinstance(shm.new_buffer(shm.LARGE_READ), bytearray)
