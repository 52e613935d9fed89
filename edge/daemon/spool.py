"""The spool: coded bundles on disk until the offshore side acknowledged them.

Layout under ``spool.folder``::

    bundles/BUNDLE_ID.edgb     one file per bundle (temporary name, fsync, rename, fsync folder)
    work/PHOTO_ID.mask.png     blade masks between segmentation and coding
    sources/SHA256.EXT         copies of source photos (source_policy: spool)

A bundle is written durably *before* the journal says ``spooled``; a crash between the two
leaves a file the journal does not know; coding that photo again writes the same file name
(bundle ids are stable), so nothing is left twice. Nothing is ever dropped for lack of room: when the quota
would be exceeded, :meth:`Spool.wait_for_room` logs one clear warning and blocks until
acknowledgements free space (the photos wait on the card meanwhile).

The quota is ours; a full *disk* is not (other files, a small partition): with a
:class:`~edge.daemon.diskspace.DiskSpace`, every write here waits while the disk is full and
goes on when space returns, and so does :func:`quarantine_file`.
"""
from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Callable, TypeVar

import cv2
import numpy as np

from edge.codec.container import SUFFIX, write_file_atomically
from edge.daemon.diskspace import DiskSpace, is_disk_full
from edge.errors import InputError

log = logging.getLogger(__name__)
T = TypeVar("T")


def _waiting(disk: DiskSpace | None, write: Callable[[], T], what: str) -> T:
    """``write()``, waiting for space when a DiskSpace is given."""
    return write() if disk is None else disk.retry(write, what)


class Spool:
    def __init__(self, folder: Path, max_bytes: int, disk: DiskSpace | None = None):
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.disk = disk
        self.bundles = self.folder / "bundles"
        self.work = self.folder / "work"
        self.sources = self.folder / "sources"
        for sub in (self.bundles, self.work, self.sources):
            _waiting(disk, lambda: sub.mkdir(parents=True, exist_ok=True), f"the spool folder {sub}")
        self._room = threading.Condition()
        self._full_warned = False
        self.used_bytes = self._measure()

    def _measure(self) -> int:
        return sum(path.stat().st_size for sub in (self.bundles, self.sources) for path in sub.iterdir()
                   if path.is_file())

    def remove_temporary_files(self) -> int:
        """Delete half-written temporary files left by a crash; returns how many."""
        removed = 0
        for sub in (self.bundles, self.work, self.sources):
            for path in sub.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        self.used_bytes = self._measure()
        return removed

    # -- bundles

    def bundle_path(self, bundle_id: str) -> Path:
        return self.bundles / f"{bundle_id}{SUFFIX}"

    def wait_for_room(self, size: int, stop: threading.Event) -> bool:
        """Block until ``size`` more bytes fit the quota; False if ``stop`` was set first."""
        with self._room:
            while self.used_bytes + size > self.max_bytes and self.used_bytes > 0:
                if not self._full_warned:
                    log.warning("spool %s is full (%d of %d bytes used, %d more needed): coding waits for "
                                "acknowledgements from offshore; photos stay on the card, none is dropped",
                                self.folder, self.used_bytes, self.max_bytes, size)
                    self._full_warned = True
                if stop.is_set():
                    return False
                self._room.wait(0.5)
            if self._full_warned:
                log.info("spool has room again (%d of %d bytes used)", self.used_bytes, self.max_bytes)
                self._full_warned = False
            return True

    @property
    def full(self) -> bool:
        return self._full_warned

    def write_bundle(self, bundle_id: str, data: bytes) -> Path:
        """Durably store a bundle (call :meth:`wait_for_room` first)."""
        path = self.bundle_path(bundle_id)
        old = path.stat().st_size if path.exists() else 0
        _waiting(self.disk, lambda: write_file_atomically(path, data), f"bundle {path}")
        self._account(len(data) - old)
        return path

    def read_bundle(self, bundle_id: str) -> bytes:
        return self.bundle_path(bundle_id).read_bytes()

    def has_bundle(self, bundle_id: str) -> bool:
        return self.bundle_path(bundle_id).is_file()

    def delete_bundle(self, bundle_id: str) -> None:
        self._delete(self.bundle_path(bundle_id))

    def _delete(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self._account(-size)

    def _account(self, delta: int) -> None:
        with self._room:
            self.used_bytes += delta
            self._room.notify_all()

    # -- masks between stages

    def mask_path(self, photo_id: int) -> Path:
        return self.work / f"{photo_id}.mask.png"

    def write_mask(self, photo_id: int, mask: np.ndarray) -> Path:
        ok, encoded = cv2.imencode(".png", np.asarray(mask, dtype=np.uint8) * 255)
        if not ok:
            raise InputError("cannot encode the mask as PNG", path=str(self.mask_path(photo_id)))
        path = self.mask_path(photo_id)
        _waiting(self.disk, lambda: write_file_atomically(path, encoded.tobytes()), f"mask {path}")
        return path

    def read_mask(self, photo_id: int) -> np.ndarray | None:
        path = self.mask_path(photo_id)
        if not path.is_file():
            return None
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        return None if mask is None else mask > 127

    def delete_mask(self, photo_id: int) -> None:
        self.mask_path(photo_id).unlink(missing_ok=True)

    # -- source copies

    def copy_source(self, source: Path, sha256: str) -> Path:
        """Durable copy of a source photo (source_policy: spool)."""
        target = self.sources / f"{sha256}{source.suffix.lower()}"
        if not target.exists():
            with open(source, "rb") as handle:
                data = handle.read()
            _waiting(self.disk, lambda: write_file_atomically(target, data), f"source copy {target}")
            self._account(len(data))
        return target

    def delete_source_copy(self, path: str | None) -> None:
        if path:
            self._delete(Path(path))


def quarantine_file(path: Path, folder: Path, reason: str, sha256: str = "",
                    disk: DiskSpace | None = None) -> Path:
    """Copy an unusable input into the quarantine folder with a ``.reason.txt`` beside it.

    The original stays where it is (the card is never written to for a bad file). With ``disk``,
    a full disk is waited out (a half copy is removed before the next try)."""
    stem = f"{sha256[:12]}-{path.name}" if sha256 else path.name
    target = folder / stem

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        note = reason
        try:
            shutil.copyfile(path, target)
        except OSError as error:
            target.unlink(missing_ok=True)
            if disk is not None and is_disk_full(error):
                raise                                # waited out, then copied
            note += f" (the file could not be copied: {error.strerror})"
        write_file_atomically(folder / f"{stem}.reason.txt", f"{path}\n{note}\n".encode("utf-8"))

    _waiting(disk, write, f"quarantine {target}")
    return target
