"""The history's storage: one SQLite database and two files per result.

Layout of the data folder::

    history.sqlite3            the records (WAL journal beside it)
    images/<id // 1000>/<id>.png    the result, with its settings in the PNG's text chunks
    thumbs/<id // 1000>/<id>.webp   at most 256 px on its longer side

A record is inserted and its files written inside one transaction, so a record
never points at files that were not written; deleting removes the row and then
its files in the same call. What a crash can still leave (a file without a row,
a row whose file was removed by hand) is what :meth:`HistoryStore.maintain` finds.

Thread-safe: one connection behind a lock. Calls take milliseconds; the server
makes them from worker threads, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    client TEXT NOT NULL DEFAULT '',
    engine TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    prompt TEXT NOT NULL DEFAULT '',
    seed INTEGER,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    starred INTEGER NOT NULL DEFAULT 0,
    parent INTEGER,
    bytes INTEGER NOT NULL,
    settings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_model ON results (model, id);
CREATE INDEX IF NOT EXISTS results_mode ON results (mode, id);
CREATE INDEX IF NOT EXISTS results_starred ON results (starred, id);
CREATE INDEX IF NOT EXISTS results_created ON results (created);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (path, kind)
);
"""

# Columns a listing returns (the full settings only come with one record).
_COLUMNS = "id, created, client, engine, mode, model, prompt, seed, width, height, starred, parent"
MAX_PAGE = 500  # items per listing page: a page is a few hundred thumbnails at most


@dataclass(frozen=True)
class Record:
    """One stored result, as a listing shows it."""

    id: int
    created: float
    client: str
    engine: str
    mode: str
    model: str
    prompt: str
    seed: int | None
    width: int
    height: int
    starred: bool
    parent: int | None
    settings: dict[str, Any] | None = None  # only from get()


@dataclass(frozen=True)
class NewRecord:
    """What the recorder hands the store: the record's fields and its two files' bytes."""

    created: float
    client: str
    engine: str
    mode: str
    model: str
    prompt: str
    seed: int | None
    width: int
    height: int
    settings: dict[str, Any]
    png: bytes
    thumb: bytes
    parent: int | None = None


@dataclass(frozen=True)
class Filters:
    """A listing's filters; they combine (AND)."""

    model: str | None = None
    mode: str | None = None
    starred: bool = False
    text: str | None = None  # a substring of the prompt, any case
    since: float | None = None  # unix time, inclusive
    until: float | None = None  # unix time, exclusive


@dataclass
class MaintenanceReport:
    """What ``maintain`` found and did."""

    files_without_record: list[str] = field(default_factory=list)  # deleted
    records_without_file: list[int] = field(default_factory=list)  # deleted
    bytes_before: int = 0
    bytes_after: int = 0


class HistoryStore:
    def __init__(self, folder: Path, max_count: int = 0, max_bytes: int = 0) -> None:
        self.folder = Path(folder)
        self.max_count = max_count
        self.max_bytes = max_bytes
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        (self.folder / "thumbs").mkdir(parents=True, exist_ok=True)
        self.db_path = self.folder / "history.sqlite3"
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, int, int, str], str] = {}  # model hashes seen by this process (a dict: thread-safe reads)
        # A maintenance run in another process holds the write lock while it scans: wait for it.
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=60.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps the database whole on a crash; the last record may be lost
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- paths ------------------------------------------------------------------------

    def image_path(self, record_id: int) -> Path:
        return self.folder / "images" / f"{record_id // 1000:03d}" / f"{record_id}.png"

    def thumb_path(self, record_id: int) -> Path:
        return self.folder / "thumbs" / f"{record_id // 1000:03d}" / f"{record_id}.webp"

    # -- writing ----------------------------------------------------------------------

    def add(self, new: NewRecord) -> int:
        """Store a result and its files; returns its id. Then applies the limits."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO results (created, client, engine, mode, model, prompt, seed, width, height, parent, bytes, settings)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new.created, new.client, new.engine, new.mode, new.model, new.prompt, new.seed, new.width, new.height,
                     new.parent, len(new.png) + len(new.thumb), json.dumps(new.settings, ensure_ascii=False, default=str)),
                )
                record_id = int(cur.lastrowid)
                _write(self.image_path(record_id), new.png)
                _write(self.thumb_path(record_id), new.thumb)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                if "record_id" in locals():
                    self._unlink(record_id)
                raise
            self._enforce_limits()
        return record_id

    def star(self, record_id: int, starred: bool) -> bool:
        """False when there is no such record."""
        with self._lock:
            cur = self._db.execute("UPDATE results SET starred = ? WHERE id = ?", (int(starred), record_id))
            return cur.rowcount > 0

    def delete(self, record_id: int) -> bool:
        """Remove a record and its files; False when there is no such record."""
        with self._lock:
            cur = self._db.execute("DELETE FROM results WHERE id = ?", (record_id,))
            if cur.rowcount:
                self._unlink(record_id)
            return cur.rowcount > 0

    def _unlink(self, record_id: int) -> None:
        for path in (self.image_path(record_id), self.thumb_path(record_id)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _over(self, count: int, total: int) -> bool:
        return bool((self.max_count and count > self.max_count) or (self.max_bytes and total > self.max_bytes))

    def _enforce_limits(self) -> None:
        """Delete the oldest unstarred records while over a limit (called with the lock held)."""
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM results").fetchone()
        while self._over(count, total):
            rows = self._db.execute("SELECT id, bytes FROM results WHERE starred = 0 ORDER BY id LIMIT 500").fetchall()
            if not rows:
                return  # only starred results left: they are kept, whatever the limits
            doomed: list[int] = []
            for record_id, size in rows:
                if not self._over(count, total):
                    break
                doomed.append(record_id)
                count, total = count - 1, total - size
            self._db.execute(f"DELETE FROM results WHERE id IN ({','.join('?' * len(doomed))})", doomed)
            for record_id in doomed:
                self._unlink(record_id)
            log.info("history: removed %d old result(s) to stay within its limits", len(doomed))

    # -- reading ----------------------------------------------------------------------

    def get(self, record_id: int) -> Record | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS}, settings FROM results WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            return None
        return _record(row[:-1], json.loads(row[-1]))

    def list(self, filters: Filters = Filters(), limit: int = 100, before: int | None = None) -> tuple[list[Record], int | None]:
        """Newest first, at most ``limit``, older than the record ``before`` (keyset
        pagination: a page costs the same however deep it is). Returns the page and
        the cursor of the next one (None at the end)."""
        limit = max(1, min(limit, MAX_PAGE))
        where, args = ["1 = 1"], []  # type: ignore[var-annotated]
        if before is not None:
            where.append("id < ?")
            args.append(before)
        if filters.model:
            where.append("model = ?")
            args.append(filters.model)
        if filters.mode:
            where.append("mode = ?")
            args.append(filters.mode)
        if filters.starred:
            where.append("starred = 1")
        if filters.text:
            where.append("prompt LIKE ? ESCAPE '\\'")
            args.append("%" + filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if filters.since is not None:
            where.append("created >= ?")
            args.append(filters.since)
        if filters.until is not None:
            where.append("created < ?")
            args.append(filters.until)
        sql = f"SELECT {_COLUMNS} FROM results WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        items = [_record(r) for r in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    def totals(self) -> tuple[int, int]:
        """Records and bytes stored."""
        with self._lock:
            count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM results").fetchone()
        return int(count), int(total)

    # -- file hashes (the model hash cache) ----------------------------------------------

    def cached_hash(self, path: str, size: int, mtime_ns: int, kind: str) -> str | None:
        found = self.remembered_hash(path, size, mtime_ns, kind)
        if found is not None:
            return found
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, hash FROM file_hashes WHERE path = ? AND kind = ?", (path, kind)).fetchone()
        if not row or (row[0], row[1]) != (size, mtime_ns):
            return None
        self._hashes[(path, size, mtime_ns, kind)] = row[2]
        return row[2]

    def remembered_hash(self, path: str, size: int, mtime_ns: int, kind: str) -> str | None:
        """A hash this process has seen, without touching the database (whose lock a
        recording may hold): what a running job may ask for."""
        return self._hashes.get((path, size, mtime_ns, kind))

    def remember_hash(self, path: str, size: int, mtime_ns: int, kind: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?)", (path, size, mtime_ns, kind, value))
        self._hashes[(path, size, mtime_ns, kind)] = value

    # -- maintenance ------------------------------------------------------------------

    def maintain(self) -> MaintenanceReport:
        """Delete files without a record and records without their image, then compact
        the database (VACUUM). Safe while a server records into the same folder: the
        scan runs inside a write transaction, which a server's ``add`` (files written
        inside its own) waits for."""
        report = MaintenanceReport()
        with self._lock:
            report.bytes_before = _size(self.db_path)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = {r[0] for r in self._db.execute("SELECT id FROM results")}
                for path in self._files():
                    stem = path.stem
                    if path.suffix == ".part" or not stem.isdigit() or int(stem) not in ids:
                        path.unlink()
                        report.files_without_record.append(path.relative_to(self.folder).as_posix())
                report.records_without_file = [i for i in sorted(ids) if not self.image_path(i).exists()]
                for record_id in report.records_without_file:
                    self._db.execute("DELETE FROM results WHERE id = ?", (record_id,))
                    self._unlink(record_id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            report.bytes_after = _size(self.db_path)
        return report

    def _files(self) -> Iterator[Path]:
        for sub in ("images", "thumbs"):
            for path in (self.folder / sub).rglob("*"):
                if path.is_file():
                    yield path


def _record(row: tuple, settings: dict[str, Any] | None = None) -> Record:
    rid, created, client, engine, mode, model, prompt, seed, width, height, starred, parent = row
    return Record(rid, created, client, engine, mode, model, prompt, seed, width, height, bool(starred), parent, settings)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # never a half-written file under the final name


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def now() -> float:
    return time.time()
