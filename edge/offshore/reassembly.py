"""Chunks back into bundles, on disk, safe for several subscriber processes sharing one folder.

Layout under the output folder::

    .incoming/BUNDLE_ID-SHA16/meta.json      device, count, sizes (written by the first chunk)
    .incoming/BUNDLE_ID-SHA16/INDEX.part     one file per chunk (temporary name, then renamed)
    .state/done/BUNDLE_ID.json               the bundle was decoded and written (or was a duplicate)
    .state/locks/XX.lock                     flock stripes: one decoder per bundle and per photo

A bundle's parts are keyed by its id *and* its SHA-256, so two codings of the same photo
that differ by a few bits never mix. Chunks are written as they arrive (before paho
acknowledges them to the broker), so a subscriber that restarts keeps what it had; parts
older than ``incoming_max_age_s`` are swept away (the edge re-sends unacknowledged bundles).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from edge.codec.container import write_file_atomically
from edge.comms.messages import Chunk
from edge.errors import BundleError


def _write(path: Path, data: bytes) -> None:
    """Temporary name then rename: readers never see half a file (no fsync: the edge re-sends)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


class ChunkStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.incoming = self.folder / ".incoming"
        self.done_folder = self.folder / ".state" / "done"
        self.locks = self.folder / ".state" / "locks"
        for sub in (self.incoming, self.done_folder, self.locks):
            sub.mkdir(parents=True, exist_ok=True)

    def _part_folder(self, bundle_id: str, bundle_sha256: str) -> Path:
        return self.incoming / f"{bundle_id}-{bundle_sha256[:16]}"

    def add(self, device: str, chunk: Chunk) -> Path | None:
        """Store a (checksum-verified) chunk; returns the parts folder once every chunk is there."""
        folder = self._part_folder(chunk.bundle_id, chunk.bundle_sha256)
        folder.mkdir(exist_ok=True)
        meta = folder / "meta.json"
        if not meta.exists():
            _write(meta, json.dumps({"bundle_id": chunk.bundle_id, "device": device, "count": chunk.count,
                                     "bundle_size": chunk.bundle_size, "bundle_sha256": chunk.bundle_sha256,
                                     "source": chunk.source, "surface": chunk.surface}).encode("utf-8"))
        _write(folder / f"{chunk.index}.part", chunk.payload)
        return folder if self.complete(folder) else None

    def complete(self, folder: Path) -> bool:
        try:
            meta = self.meta(folder)
            parts = {name for name in os.listdir(folder) if name.endswith(".part")}
        except (OSError, ValueError):
            return False
        return all(f"{index}.part" in parts for index in range(meta["count"]))

    @staticmethod
    def meta(folder: Path) -> dict:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))

    def assemble(self, folder: Path) -> bytes:
        """The whole bundle; :class:`BundleError` (section ``transport``) if it is not what the edge sent."""
        meta = self.meta(folder)
        data = b"".join((folder / f"{index}.part").read_bytes() for index in range(meta["count"]))
        if len(data) != meta["bundle_size"] or hashlib.sha256(data).hexdigest() != meta["bundle_sha256"]:
            raise BundleError(f"reassembled {len(data)} bytes do not match the {meta['bundle_size']} bytes and "
                              f"SHA-256 the edge announced", section="transport", bundle=meta["bundle_id"])
        return data

    def discard(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def sweep(self, max_age_s: float) -> int:
        """Drop parts folders no chunk was added to for ``max_age_s``; returns how many."""
        removed = 0
        now = time.time()
        for folder in self.incoming.iterdir():
            try:
                newest = max([p.stat().st_mtime for p in folder.iterdir()] + [folder.stat().st_mtime])
            except OSError:
                continue
            if now - newest > max_age_s:
                self.discard(folder)
                removed += 1
        return removed

    # -- done markers

    def done_path(self, bundle_id: str) -> Path:
        return self.done_folder / f"{bundle_id}.json"

    def is_done(self, bundle_id: str) -> bool:
        return self.done_path(bundle_id).exists()

    def mark_done(self, bundle_id: str, record: dict) -> None:
        write_file_atomically(self.done_path(bundle_id), json.dumps(record, sort_keys=True).encode("utf-8"))

    @contextmanager
    def lock(self, key: str):
        """An exclusive lock shared by every process using this folder (256 stripes)."""
        stripe = hashlib.sha256(key.encode()).hexdigest()[:2]
        with open(self.locks / f"{stripe}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
