"""The journal: one SQLite row per photo, its state and where its files are.

States, in order::

    seen -> segmented -> coded -> spooled -> published -> acknowledged
    (any) -> failed, with a reason (quarantined input, or too many refused sends)

Only ``seen``, ``segmented`` (mask file written), ``spooled`` (bundle file durable),
``published`` (every chunk acknowledged by the broker) and ``acknowledged`` (by the offshore
subscriber) are resumed from after a crash; ``coded`` marks a bundle that is still only in
memory, so a restart codes that photo again. Coding is deterministic in its bundle id (same
photo, same settings), so a photo coded twice is still one bundle: nothing arrives twice as
a different bundle.

A photo is identified by the SHA-256 of its file: the same photo found again (a rescan, the
card re-inserted at another mount point) is recognised; another photo reusing a file name
(cameras restart their numbering) is a new photo. WAL mode, ``synchronous=FULL``: a
committed state survives a power cut.

Given a :class:`~edge.daemon.diskspace.DiskSpace`, every write (and the opening) waits while
the disk is full and goes on when space returns; without one, SQLITE_FULL is raised.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.daemon.diskspace import DiskSpace

STATES = ("seen", "segmented", "coded", "spooled", "published", "acknowledged", "failed")
UNFINISHED = ("seen", "segmented", "coded")          # resumed through the coding pipeline
IN_SPOOL = ("spooled", "published")                   # resumed by the publisher

_SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL,          -- where the photo was last found
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    sha256       TEXT NOT NULL UNIQUE,   -- identity of the photo
    folder_key   TEXT NOT NULL DEFAULT '',  -- folder relative to the watched folder
    capture_time REAL,                   -- EXIF capture time (Unix seconds), else the file mtime
    surface      TEXT,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    fallback     INTEGER NOT NULL DEFAULT 0,  -- 1: send the source file (after a negative ack)
    sent_source  INTEGER NOT NULL DEFAULT 0,  -- 1: the spooled bundle carries the source file
    bundle_id    TEXT,
    bundle_size  INTEGER,
    source_copy  TEXT,                   -- spooled copy of the source (source_policy: spool)
    attempts     INTEGER NOT NULL DEFAULT 0,  -- sends of the current bundle
    published_at REAL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_file ON photos(path, size, mtime_ns);
CREATE INDEX IF NOT EXISTS photos_state ON photos(state);
CREATE TABLE IF NOT EXISTS bundles (         -- every bundle id a photo was sent as
    bundle_id TEXT PRIMARY KEY,
    photo_id  INTEGER NOT NULL REFERENCES photos(id)
);
"""

_COLUMNS = ("id", "path", "size", "mtime_ns", "sha256", "folder_key", "capture_time", "surface", "state",
            "reason", "fallback", "sent_source", "bundle_id", "bundle_size", "source_copy", "attempts", "published_at")


@dataclass(frozen=True)
class PhotoRecord:
    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    folder_key: str
    capture_time: float | None
    surface: str | None
    state: str
    reason: str
    fallback: bool
    sent_source: bool
    bundle_id: str | None
    bundle_size: int | None
    source_copy: str | None
    attempts: int
    published_at: float | None

    @property
    def source_path(self) -> Path:
        """Where to read the photo from: the spooled copy when there is one."""
        return Path(self.source_copy or self.path)


class Journal:
    """Thread-safe: one connection, one lock, every call one committed transaction."""

    def __init__(self, path: str | Path, disk: DiskSpace | None = None):
        self.path = Path(path)
        self.disk = disk
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._write(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()                   # a full disk: the next try opens it afresh
            raise
        self._db = db

    def _write(self, write: Callable[[], object]):
        """One write transaction; with a DiskSpace, it waits while the disk is full (the lock is
        held only while trying, so readers, e.g. the status topic, go on meanwhile)."""
        if self.disk is None:
            return write()
        return self.disk.retry(write, f"the journal {self.path}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args=()) -> list[PhotoRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM photos {sql}", args).fetchall()
        return [_record(row) for row in rows]

    def _one(self, sql: str, args=()) -> PhotoRecord | None:
        rows = self._rows(sql + " LIMIT 1", args)
        return rows[0] if rows else None

    # -- finding photos

    def get(self, photo_id: int) -> PhotoRecord:
        record = self._one("WHERE id = ?", (photo_id,))
        if record is None:
            raise KeyError(f"no photo {photo_id} in the journal {self.path}")
        return record

    def find_file(self, path: str, size: int, mtime_ns: int) -> PhotoRecord | None:
        """The photo last seen at this path with this size and mtime (a rescan finds it again)."""
        return self._one("WHERE path = ? AND size = ? AND mtime_ns = ?", (path, size, mtime_ns))

    def find_sha256(self, sha256: str) -> PhotoRecord | None:
        return self._one("WHERE sha256 = ?", (sha256,))

    def find_bundle(self, bundle_id: str) -> PhotoRecord | None:
        """The photo a bundle id (current or earlier) belongs to."""
        return self._one("WHERE id = (SELECT photo_id FROM bundles WHERE bundle_id = ?)", (bundle_id,))

    def in_states(self, *states: str) -> list[PhotoRecord]:
        marks = ",".join("?" * len(states))
        return self._rows(f"WHERE state IN ({marks}) ORDER BY id", states)

    def all(self) -> list[PhotoRecord]:
        return self._rows("ORDER BY id")

    def due_for_sending(self, now: float, ack_timeout_s: float, skip: set[int] = frozenset(),
                        limit: int = 8) -> list[PhotoRecord]:
        """Spooled bundles, then published ones whose acknowledgement is overdue.

        The wait doubles with each send (``ack_timeout_s * 2**(attempts-1)``, at most 64x).
        """
        due = [r for r in self.in_states("spooled") if r.id not in skip]
        for record in self.in_states("published"):
            wait = ack_timeout_s * 2 ** min(max(record.attempts - 1, 0), 6)
            if record.id not in skip and (record.published_at or 0) + wait <= now:
                due.append(record)
        return due[:limit]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM photos GROUP BY state").fetchall()
        return {state: count for state, count in rows}

    def spooled_bytes(self) -> int:
        with self._lock:
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(bundle_size), 0) FROM photos WHERE state IN ('spooled', 'published')"
            ).fetchone()
        return int(total)

    # -- changing photos

    def add_photo(self, path: str, size: int, mtime_ns: int, sha256: str, capture_time: float | None,
                  folder_key: str = "", state: str = "seen", reason: str = "",
                  source_copy: str | None = None) -> tuple[PhotoRecord, bool]:
        """Record a photo; returns (record, True) if new, (existing record, False) if its content
        is already known (its location is updated)."""
        _check_state(state)
        now = time.time()

        def insert() -> bool:
            with self._lock:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO photos (path, size, mtime_ns, sha256, folder_key, capture_time, state,"
                    " reason, source_copy, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (path, size, mtime_ns, sha256, folder_key, capture_time, state, reason, source_copy, now, now))
                if cursor.rowcount == 1:
                    return True
                self._db.execute("UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE sha256 = ?",
                                 (path, size, mtime_ns, sha256))
                return False

        new = self._write(insert)
        return self.find_sha256(sha256), new

    def set_state(self, photo_id: int, state: str, expect: tuple[str, ...] = (), **fields) -> bool:
        """Change a photo's state (and other columns); a bundle_id is also remembered in ``bundles``.

        With ``expect``, only if the photo is in one of those states (checked and changed in
        one transaction); returns whether it changed.
        """
        _check_state(state)
        allowed = {"surface", "reason", "fallback", "sent_source", "bundle_id", "bundle_size", "source_copy", "attempts",
                   "published_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot set journal columns {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in ("state", "updated_at", *fields))
        condition = f" AND state IN ({','.join('?' * len(expect))})" if expect else ""

        def update() -> int:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    changed = self._db.execute(f"UPDATE photos SET {assignments} WHERE id = ?{condition}",
                                               (state, time.time(), *fields.values(), photo_id, *expect)).rowcount
                    if changed and fields.get("bundle_id"):
                        self._db.execute("INSERT OR IGNORE INTO bundles (bundle_id, photo_id) VALUES (?, ?)",
                                         (fields["bundle_id"], photo_id))
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:     # SQLITE_FULL may have rolled it back already
                        self._db.execute("ROLLBACK")
                    raise
                return changed

        return bool(self._write(update))

    def set_surface(self, photo_ids: list[int], surface: str) -> None:
        def update() -> None:
            with self._lock:
                self._db.executemany("UPDATE photos SET surface = ? WHERE id = ?", [(surface, i) for i in photo_ids])

        self._write(update)


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown journal state {state!r} (states: {', '.join(STATES)})")


def _record(row) -> PhotoRecord:
    values = dict(zip(_COLUMNS, row))
    values["fallback"] = bool(values["fallback"])
    values["sent_source"] = bool(values["sent_source"])
    return PhotoRecord(**values)
