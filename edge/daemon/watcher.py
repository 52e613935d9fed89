"""Watching the camera's folders and handing over each photo once it is complete.

A watchdog observer per folder feeds paths into a pending set (its callbacks do nothing
else). The watcher's own thread takes a pending file when it is complete: closed after
writing (inotify's close-write event) and unchanged since, or, where no close event comes
(polling, FUSE, exFAT, network mounts), when its size and mtime did not change for
``stable_s``. The folder is rescanned in full at start-up and whenever it reappears (the card
removed and inserted again, maybe at another device), so nothing written while no observer
ran is missed. Paths already handed over are handed over again only if they changed; the
journal decides what is new.

An empty file is announced once and handed over only after it stayed empty for ``stable_s``
(the intake quarantines it if it is still empty); if it is written later it is taken then.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from edge.config import WatchConfig

log = logging.getLogger(__name__)

# File systems whose changes inotify does not report (written by another machine or through FUSE).
NO_EVENT_FILESYSTEMS = ("fuse", "fuseblk", "exfat", "vfat", "msdos", "nfs", "nfs4", "cifs", "smb3",
                        "smbfs", "9p", "sshfs", "davfs", "ceph", "glusterfs", "virtiofs")
_IGNORED_EVENTS = {"opened", "closed_no_write", "deleted"}


@dataclass(frozen=True)
class FoundFile:
    """A complete file in a watched folder."""

    path: Path
    folder: Path          # the watched folder it lies in
    size: int
    mtime_ns: int


def filesystem_type(path: Path) -> str:
    """Type of the file system holding ``path`` (from /proc/self/mounts), or "" if unknown."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    target = os.path.realpath(path)
    best, kind = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, parts[2]
    return kind


def choose_observer(mode: str, folder: Path) -> str:
    """``inotify`` or ``polling`` for a folder, resolving ``auto`` by its file system type."""
    if mode != "auto":
        return mode
    kind = filesystem_type(folder)
    return "polling" if kind.startswith(NO_EVENT_FILESYSTEMS) else "inotify"


class _Pending:
    """Files seen by events or scans but not yet handed over.

    ``closed`` is True after a close-write event, False after a write (or any event but a
    close), None for a file found by a scan (no news about writing).
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.files: dict[Path, tuple[Path, bool | None]] = {}

    def add(self, path: Path, folder: Path, closed: bool | None = None) -> None:
        with self.lock:
            old = self.files.get(path)
            if closed is None and old is not None:
                closed = old[1]
            self.files[path] = (folder, closed)

    def take_all(self) -> dict[Path, tuple[Path, bool | None]]:
        with self.lock:
            files, self.files = self.files, {}
        return files


class _Handler(FileSystemEventHandler):
    """Observer callback: record the path, nothing more."""

    def __init__(self, watcher: "Watcher", folder: Path):
        self.watcher = watcher
        self.folder = folder

    def on_any_event(self, event) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        path = Path(os.fsdecode(event.dest_path or event.src_path if event.event_type == "moved"
                                else event.src_path))
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                self.watcher.request_rescan(self.folder)     # a folder copied or moved in: no events inside
            return
        if self.watcher.wanted(path):
            # A file closed after writing, or renamed into place, is complete; any other event is a write.
            self.watcher.pending.add(path, self.folder, closed=event.event_type in ("closed", "moved"))


@dataclass
class _Candidate:
    folder: Path
    size: int
    mtime_ns: int
    since: float          # when size and mtime were last seen to change
    closed: bool


@dataclass
class _FolderState:
    observer: object = None
    identity: tuple | None = None     # (st_dev, st_ino) of the folder while present
    kind: str = ""


class Watcher:
    """Puts :class:`FoundFile` values on ``output`` (blocking when it is full)."""

    def __init__(self, config: WatchConfig, output: queue.Queue, stop: threading.Event):
        self.config = config
        self.output = output
        self.stop_event = stop
        self.pending = _Pending()
        self._candidates: dict[Path, _Candidate] = {}
        self._handed: dict[Path, tuple[int, int]] = {}      # path -> (size, mtime_ns) handed over
        self._empty: set[Path] = set()                       # empty files already announced
        self._folders = {Path(folder): _FolderState() for folder in config.folders}
        self._rescan_requests: set[Path] = set()
        self._rescan_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.scans = 0

    # -- filters

    def wanted(self, path: Path) -> bool:
        name = path.name.lower()
        if any(fnmatch.fnmatch(name, pattern.lower()) for pattern in self.config.exclude):
            return False
        return any(fnmatch.fnmatch(name, pattern.lower()) for pattern in self.config.patterns)

    def request_rescan(self, folder: Path) -> None:
        with self._rescan_lock:
            self._rescan_requests.add(folder)

    # -- life cycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
        for state in self._folders.values():
            self._stop_observer(state)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        interval = min(self.config.poll_interval_s, 0.5)
        while not self.stop_event.is_set():
            for folder, state in self._folders.items():
                self._check_folder(folder, state)
            with self._rescan_lock:
                requests, self._rescan_requests = self._rescan_requests, set()
            for folder in requests:
                self._scan(folder)
            self._settle()
            self.stop_event.wait(interval)

    # -- folders

    def _check_folder(self, folder: Path, state: _FolderState) -> None:
        """Start observing a folder that (re)appeared; stop when it went away."""
        try:
            info = folder.stat()
            identity = (info.st_dev, info.st_ino) if folder.is_dir() else None
        except OSError:
            identity = None
        if identity == state.identity and (identity is None or state.observer is not None):
            return
        self._stop_observer(state)
        state.identity = identity
        if identity is None:
            log.warning("watched folder %s is not there (card removed?); waiting for it", folder)
            return
        state.kind = choose_observer(self.config.observer, folder)
        observer = PollingObserver(timeout=self.config.poll_interval_s) if state.kind == "polling" else Observer()
        try:
            observer.schedule(_Handler(self, folder), str(folder), recursive=self.config.recursive)
            observer.start()
        except OSError as error:
            log.warning("cannot watch %s (%s); retrying", folder, error)
            state.identity = None
            return
        state.observer = observer
        log.info("watching %s (%s observer); rescanning it", folder, state.kind)
        # A re-inserted card may hold other files under the same names: let the journal decide again.
        self._handed = {path: stat for path, stat in self._handed.items() if folder not in path.parents}
        self._scan(folder)                   # after the observer started: nothing falls between

    def _stop_observer(self, state: _FolderState) -> None:
        if state.observer is not None:
            try:
                state.observer.stop()
                state.observer.join(timeout=5)
            except Exception:                # an observer whose folder vanished may fail to stop cleanly
                log.debug("observer stop failed", exc_info=True)
            state.observer = None

    def _scan(self, folder: Path) -> None:
        self.scans += 1
        walker = os.walk(folder) if self.config.recursive else [(str(folder), [], os.listdir(folder))]
        try:
            for root, dirs, files in walker:
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    path = Path(root) / name
                    if self.wanted(path):
                        self.pending.add(path, folder)
        except OSError as error:
            log.warning("rescan of %s failed: %s", folder, error)

    # -- stability

    def _settle(self) -> None:
        now = time.monotonic()
        for path, (folder, closed) in self.pending.take_all().items():
            candidate = self._candidates.get(path)
            if candidate is None:
                self._candidates[path] = _Candidate(folder, -1, -1, now, bool(closed))
            elif closed is not None:
                candidate.closed = closed        # the latest event: closed after writing, or written again
        for path in list(self._candidates):
            candidate = self._candidates[path]
            try:
                info = path.stat()
            except OSError:
                del self._candidates[path]   # deleted or renamed away (the move event brings the new name)
                continue
            changed = (info.st_size, info.st_mtime_ns) != (candidate.size, candidate.mtime_ns)
            if changed:
                candidate.size, candidate.mtime_ns, candidate.since = info.st_size, info.st_mtime_ns, now
            steady = not changed and now - candidate.since >= self.config.stable_s
            if info.st_size == 0:
                if path not in self._empty:
                    self._empty.add(path)
                    log.warning("%s is empty (0 bytes): waiting for it to be written; quarantined if it stays "
                                "empty", path)
                if not steady:
                    continue                 # closed or not, an empty file waits stable_s
            else:
                self._empty.discard(path)
                if not (candidate.closed or steady):
                    continue
            del self._candidates[path]
            if self._handed.get(path) == (info.st_size, info.st_mtime_ns):
                continue                     # handed over already, unchanged
            self._handed[path] = (info.st_size, info.st_mtime_ns)
            found = FoundFile(path, candidate.folder, info.st_size, info.st_mtime_ns)
            while not self.stop_event.is_set():
                try:
                    self.output.put(found, timeout=0.2)
                    break
                except queue.Full:
                    continue
