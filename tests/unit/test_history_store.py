"""The history store (server/history/store.py) and the model hashes (hashes.py), on a real SQLite file."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from pathlib import Path

from paintwire.server.history import hashes
from paintwire.server.history.store import Filters, HistoryStore, NewRecord


def record(n: int, **kw) -> NewRecord:
    fields = dict(created=1_700_000_000.0 + n, client="test", engine="classical", mode="inpaint", model="", prompt=f"prompt {n}",
                  seed=n, width=8, height=8, settings={"params": {"n": n}}, png=b"P" * 100, thumb=b"T" * 10)
    fields.update(kw)
    return NewRecord(**fields)


def test_add_get_and_files(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    rid = store.add(record(1, prompt="a \u732b"))
    got = store.get(rid)
    assert got is not None and got.prompt == "a \u732b" and got.settings == {"params": {"n": 1}} and not got.starred
    assert store.image_path(rid).read_bytes() == b"P" * 100 and store.thumb_path(rid).read_bytes() == b"T" * 10
    assert store.totals() == (1, 110)
    assert store.get(rid + 1) is None


def test_keyset_pages_cover_everything_once_newest_first(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    ids = [store.add(record(i, mode="inpaint" if i % 2 else "upscale")) for i in range(25)]
    seen, cursor = [], None
    while True:
        page, cursor = store.list(Filters(), limit=7, before=cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    page, _ = store.list(Filters(mode="upscale"), limit=100)
    assert len(page) == 13 and {r.mode for r in page} == {"upscale"}


def test_filters_combine_and_text_is_literal(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    a = store.add(record(1, prompt="red fox 100%", model="m1"))
    store.add(record(2, prompt="red fox", model="m2"))
    c = store.add(record(3, prompt="blue bird", model="m1"))
    store.star(c, True)
    assert [r.id for r in store.list(Filters(text="100%"))[0]] == [a]  # % is not a wildcard
    assert [r.id for r in store.list(Filters(text="E_B"))[0]] == []  # _ neither
    assert [r.id for r in store.list(Filters(text="RED", model="m1"))[0]] == [a]
    assert [r.id for r in store.list(Filters(starred=True))[0]] == [c]
    assert [r.id for r in store.list(Filters(since=1_700_000_002.0, until=1_700_000_003.0))[0]] == [a + 1]


def test_limits_remove_the_oldest_unstarred_with_their_files(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, max_count=3)
    first = store.add(record(0))
    store.star(first, True)
    ids = [store.add(record(i)) for i in range(1, 6)]
    kept = [r.id for r in store.list()[0]]
    assert kept == [ids[-1], ids[-2], first]
    for gone in ids[:3]:
        assert not store.image_path(gone).exists() and not store.thumb_path(gone).exists()
    by_size = HistoryStore(tmp_path / "b", max_bytes=250)  # each record is 110 bytes
    for i in range(4):
        by_size.add(record(i))
    assert by_size.totals() == (2, 220)


def test_only_starred_left_are_kept_over_the_limit(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, max_count=1)
    a = store.add(record(0))
    store.star(a, True)
    b = store.add(record(1))
    store.star(b, True)  # too late for b: it was the oldest unstarred when it was added
    assert [r.id for r in store.list()[0]] == [a]


def test_delete_removes_row_and_files(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    rid = store.add(record(1))
    assert store.delete(rid) and not store.image_path(rid).exists() and store.get(rid) is None
    assert not store.delete(rid) and not store.star(rid, True)


def test_maintain_finds_orphans_both_ways_and_compacts(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    ids = [store.add(record(i, png=b"P" * 20000)) for i in range(30)]
    for rid in ids[:25]:
        store.delete(rid)
    stray = tmp_path / "images" / "000" / "999999.png"
    stray.write_bytes(b"x")
    (tmp_path / "thumbs" / "000" / "notes.txt").write_text("hi")
    store.image_path(ids[-1]).unlink()  # a record whose image was removed by hand
    report = store.maintain()
    assert report.records_without_file == [ids[-1]] and store.get(ids[-1]) is None
    assert sorted(report.files_without_record) == ["images/000/999999.png", "thumbs/000/notes.txt"]
    assert not stray.exists() and not store.thumb_path(ids[-1]).exists()
    assert report.bytes_after < report.bytes_before  # VACUUM gave the deleted rows' pages back
    assert store.totals()[0] == 4
    assert store.maintain().files_without_record == []


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(20):
                store.add(record(k * 100 + i))
                store.list(Filters(text="prompt"), limit=5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.totals()[0] == 80


def test_model_hashes_are_the_webuis_and_cached(tmp_path: Path, monkeypatch) -> None:
    store = HistoryStore(tmp_path / "h")
    model = tmp_path / "model.safetensors"
    header = json.dumps({"__metadata__": {"name": "x"}}).encode()
    body = bytes(range(256)) * 40
    model.write_bytes(struct.pack("<Q", len(header)) + header + body)
    whole = hashlib.sha256(model.read_bytes()).hexdigest()
    assert hashes.short_hash(model, hashes.MODEL, store) == whole[:10]
    assert hashes.short_hash(model, hashes.LORA, store) == hashlib.sha256(body).hexdigest()[:12]

    calls = []
    real = hashes.sha256_file
    monkeypatch.setattr(hashes, "sha256_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert hashes.short_hash(model, hashes.MODEL, HistoryStore(tmp_path / "h")) == whole[:10]
    assert calls == []  # cached by (path, size, mtime), across restarts
    model.write_bytes(model.read_bytes() + b"more")
    assert hashes.short_hash(model, hashes.MODEL, store) == hashlib.sha256(model.read_bytes()).hexdigest()[:10]
    assert len(calls) == 1
    folder = tmp_path / "diffusers"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"unet")
    assert hashes.short_hash(folder, hashes.MODEL, store) == hashlib.sha256(b"unet").hexdigest()[:10]
    assert hashes.short_hash(tmp_path / "empty-folder-that-is-not-there", hashes.MODEL, store) is None
