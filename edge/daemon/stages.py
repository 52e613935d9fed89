"""The pipeline's stages: one thread each (coding may have several), bounded queues between.

Every stage takes one item, does its job, records the result in the journal, and hands the
item on; on the shared stop event it finishes the item in hand and returns. Whatever sits in a
queue at that moment is only a photo id or a path: the journal holds its durable state and the
next start resumes it (:meth:`Intake.resume`).
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.codec.imageio import decode_image_bytes
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.sourcefile import CODER as SOURCE_FILE
from edge.config import EdgeConfig
from edge.daemon.coding import Coder, CodedPhoto, code_photo, coders_used
from edge.daemon.diskspace import DiskWaitStopped
from edge.daemon.grouping import GroupMember, SurfaceGrouper, capture_time_from_exif
from edge.daemon.journal import UNFINISHED, Journal
from edge.daemon.segmentation import Segmenter, unsure_flag
from edge.daemon.spool import Spool, quarantine_file
from edge.daemon.watcher import FoundFile
from edge.errors import InputError

log = logging.getLogger(__name__)

POLL_S = 0.2            # how long a stage waits for input before looking at the stop event again
MISSING_RETRY_S = 5.0   # how often a coder looks again for a photo whose file is gone (card out)


def put(target: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up when ``stop`` is set (back-pressure without dead-locking a stop)."""
    while not stop.is_set():
        try:
            target.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


class Stage:
    """A named thread running :meth:`step` until the stop event; an unexpected error in one
    step is logged and the stage goes on (the item stays in the journal for the next start)."""

    name = "stage"

    def __init__(self, journal: Journal, stop: threading.Event):
        self.journal = journal
        self.stop_event = stop
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wait for the thread (the shared stop event is already set)."""
        if self._thread is not None:
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.step()
            except DiskWaitStopped:
                return                   # stopping while the disk was full: the journal has the item
            except Exception:
                log.exception("%s: unexpected error; going on", self.name)
                self.stop_event.wait(1.0)

    def step(self) -> None:
        raise NotImplementedError

    def _get(self, source: queue.Queue):
        try:
            return source.get(timeout=POLL_S)
        except queue.Empty:
            return None


class Intake(Stage):
    """Complete file -> journal ``seen``: hash it, check it decodes, read its capture time;
    unusable files are quarantined with the reason.

    Some writers close a file between pieces, so "closed" is not always "complete": a file
    that does not decode is tried again every ``watch.stable_s`` and quarantined only once it
    failed unchanged (same size and mtime) for that long. An empty file waits the same way.
    """

    name = "intake"

    def __init__(self, config: EdgeConfig, journal: Journal, spool: Spool, stop: threading.Event,
                 files: queue.Queue, photos: queue.Queue, to_code: queue.Queue):
        super().__init__(journal, stop)
        self.config = config
        self.spool = spool
        self.files = files
        self.photos = photos
        self.to_code = to_code
        self.resumed = 0
        self._failing: dict[Path, tuple[FoundFile, int, int, float]] = {}   # path -> (found, size, mtime, since)

    def _loop(self) -> None:
        self.resume()
        super()._loop()

    def resume(self) -> None:
        """Hand on every photo a previous run left unfinished, from its last durable state."""
        for record in self.journal.in_states(*UNFINISHED):
            if record.state == "seen":
                ok = put(self.photos, GroupMember(record.id, record.capture_time, record.folder_key), self.stop_event)
            else:
                ok = put(self.to_code, record.id, self.stop_event)
            if not ok:
                return
            self.resumed += 1
        if self.resumed:
            log.info("resuming %d unfinished photos from the journal", self.resumed)

    def step(self) -> None:
        found = self._get(self.files) or self._due_again()
        if found is not None:
            self.take(found)

    def _due_again(self) -> FoundFile | None:
        """A file that did not decode, due for another try (with its current size and mtime)."""
        now = time.monotonic()
        stable_s = self.config.watch.stable_s
        for path, (found, _, _, since) in list(self._failing.items()):
            if now - since >= stable_s:
                try:
                    info = path.stat()
                except OSError:
                    del self._failing[path]      # gone (renamed, deleted): nothing to take
                    continue
                return FoundFile(path, found.folder, info.st_size, info.st_mtime_ns)
        return None

    def _still_writing(self, found: FoundFile, data: bytes, info: os.stat_result) -> bool:
        """Whether a file that does not decode may still be being written: it changed while we
        read it, or it has not stayed unchanged for ``stable_s`` since it first failed."""
        now = time.monotonic()
        current = (info.st_size, info.st_mtime_ns)
        earlier = self._failing.get(found.path)
        if len(data) != info.st_size or earlier is None or earlier[1:3] != current:
            self._failing[found.path] = (found, *current, now)
            return True
        if now - earlier[3] < self.config.watch.stable_s:
            return True
        del self._failing[found.path]
        return False

    def take(self, found: FoundFile) -> None:
        path = found.path
        if self.journal.find_file(str(path), found.size, found.mtime_ns) is not None:
            self._failing.pop(path, None)
            return
        try:
            data = path.read_bytes()
            info = path.stat()
        except OSError as error:
            self._failing.pop(path, None)
            log.warning("%s: cannot read (%s); it will be taken when it is found again", path, error.strerror)
            return
        # Every empty file would share one hash (the journal's identity): give each its own.
        sha256 = hashlib.sha256(data or b"empty file " + os.fsencode(path)).hexdigest()
        if data and self.journal.find_sha256(sha256) is not None:
            self._failing.pop(path, None)
            self.journal.add_photo(str(path), len(data), info.st_mtime_ns, sha256, None)   # moved: new location
            return
        folder_key = _relative_folder(path, found.folder)
        try:
            if not data:
                raise InputError("the file is empty (0 bytes)", str(path))
            decode_image_bytes(data, str(path))                  # decodes it all: a truncated file fails here
            metadata = source_metadata_from_bytes(data, path.name, str(path))
        except InputError as error:
            if self._still_writing(found, data, info):
                log.debug("%s does not decode yet (%s); trying again in %.1f s", path, error,
                          self.config.watch.stable_s)
                return
            target = quarantine_file(path, self.config.quarantine_folder, str(error), sha256, disk=self.spool.disk)
            self.journal.add_photo(str(path), len(data), info.st_mtime_ns, sha256, None, folder_key,
                                   state="failed", reason=f"quarantined: {error}")
            # An empty file was announced by the watcher already: one line is enough.
            log.log(logging.INFO if not data else logging.ERROR, "quarantined: %s, unchanged for %.1f s (copy in %s)",
                    error, self.config.watch.stable_s, target.parent)
            return
        self._failing.pop(path, None)
        capture_time = capture_time_from_exif(metadata.exif) or info.st_mtime_ns / 1e9
        copy = None
        if self.config.spool.source_policy == "spool":
            copy = str(self.spool.copy_source(path, sha256))
        record, new = self.journal.add_photo(str(path), len(data), info.st_mtime_ns, sha256, capture_time,
                                             folder_key, source_copy=copy)
        if new:
            log.info("%s: new photo (%d bytes)", path.name, len(data))
            put(self.photos, GroupMember(record.id, capture_time, folder_key), self.stop_event)


def _relative_folder(path: Path, folder: Path) -> str:
    try:
        return str(path.parent.relative_to(folder)).replace(os.sep, "/").strip(".")
    except ValueError:
        return ""


class Grouper(Stage):
    """Photos -> closed surface groups."""

    name = "grouper"

    def __init__(self, grouper: SurfaceGrouper, journal: Journal, stop: threading.Event,
                 photos: queue.Queue, groups: queue.Queue):
        super().__init__(journal, stop)
        self.grouper = grouper
        self.photos = photos
        self.groups = groups

    def step(self) -> None:
        member = self._get(self.photos)
        closed = self.grouper.add(member) if member is not None else []
        closed += self.grouper.expire()
        for group in closed:
            self.journal.set_surface([m.photo_id for m in group.members], group.surface)
            log.info("surface %s: %d photos", group.surface, len(group.members))
            if not put(self.groups, group, self.stop_event):
                return


class Segmentation(Stage):
    """Surface group -> a mask per photo (written to the spool's work folder) -> journal ``segmented``."""

    name = "segmenter"

    def __init__(self, segmenter: Segmenter, journal: Journal, spool: Spool, stop: threading.Event,
                 groups: queue.Queue, to_code: queue.Queue):
        super().__init__(journal, stop)
        self.segmenter = segmenter
        self.spool = spool
        self.groups = groups
        self.to_code = to_code

    def step(self) -> None:
        group = self._get(self.groups)
        if group is None:
            return
        records = [self.journal.get(member.photo_id) for member in group.members]
        try:
            masks = self.segmenter([record.source_path for record in records])
            if len(masks) != len(records):
                raise ValueError(f"the segmenter returned {len(masks)} masks for {len(records)} photos")
        except Exception as error:      # no mask is better than no photo: the coder copes
            log.error("segmenting surface %s failed (%s); coding its photos without masks", group.surface, error)
            masks = [None] * len(records)
        unsure = getattr(self.segmenter, "unsure", set())
        for record, mask in zip(records, masks):
            if mask is not None:
                self.spool.write_mask(record.id, mask)
            flag = unsure_flag(self.spool.work, record.id)
            if mask is not None and record.source_path in unsure:
                flag.touch()
            else:
                flag.unlink(missing_ok=True)
            self.journal.set_state(record.id, "segmented", expect=("seen",), surface=group.surface)
            if not put(self.to_code, record.id, self.stop_event):
                return


class Coding(Stage):
    """Photo (+ mask) -> encoded bundle -> journal ``coded``. Refused bundles come first."""

    name = "coder"

    def __init__(self, config: EdgeConfig, coder: Coder, settings: Any, journal: Journal, spool: Spool,
                 stop: threading.Event, to_code: queue.Queue, recode: queue.Queue, to_spool: queue.Queue,
                 index: int = 0):
        super().__init__(journal, stop)
        self.name = f"coder-{index}"
        self.config = config
        self.coder = coder
        self.settings = settings
        self.spool = spool
        self.to_code = to_code
        self.recode = recode
        self.to_spool = to_spool
        self.coded = 0
        self._missing: dict[int, float] = {}     # photo id -> when to look for its file again

    def step(self) -> None:
        now = time.monotonic()
        due = [photo_id for photo_id, when in self._missing.items() if when <= now]
        if due:
            photo_id = due[0]
        else:
            try:
                photo_id = self.recode.get_nowait()
            except queue.Empty:
                photo_id = self._get(self.to_code)
        if photo_id is not None:
            self.code(photo_id)

    def code(self, photo_id: int) -> None:
        self._missing.pop(photo_id, None)
        record = self.journal.get(photo_id)
        if record.state not in UNFINISHED:
            return                                   # acknowledged meanwhile (an earlier bundle arrived)
        source = record.source_path
        if not source.is_file():
            # The card is out: try again later rather than lose the photo; code the others meanwhile.
            log.warning("%s is not there (card removed?); looking again in %.0f s", source, MISSING_RETRY_S)
            self._missing[photo_id] = time.monotonic() + MISSING_RETRY_S
            return
        mask = self.spool.read_mask(photo_id)
        fallback_for = record.bundle_id if record.fallback and record.bundle_id else ""
        started = time.perf_counter()
        try:
            coded = self._code(source, mask, fallback_for,
                               self._blade_missed(source, mask) or self._unsure(photo_id, source, mask))
        except InputError as error:
            target = quarantine_file(source, self.config.quarantine_folder, str(error), record.sha256,
                                     disk=self.spool.disk)
            self.journal.set_state(photo_id, "failed", reason=f"quarantined: {error}")
            log.error("quarantined: %s (copy in %s)", error, target.parent)
            return
        if not self.journal.set_state(photo_id, "coded", expect=UNFINISHED):
            return
        self.coded += 1
        used = coders_used(coded.report)
        log.info("%s: coded as bundle %s (%d bytes%s) in %.2f s", source.name, coded.bundle_id, len(coded.data),
                 ", source file" if coded.sent_source else f"; {used}" if used else "", time.perf_counter() - started)
        put(self.to_spool, (photo_id, coded), self.stop_event)

    def _blade_missed(self, source: Path, mask) -> bool:
        """Whether the model's mask holds so little blade that the model more likely missed it.

        Inspection photos show a blade; coded with an (almost) empty mask, a missed blade would
        arrive at background quality. Masks from files are the user's word and are not second-guessed.
        """
        segmentation = self.config.segmentation
        if (mask is None or segmentation.mode != "model" or segmentation.if_no_blade != "send-source"
                or self.config.coding.mode in (SOURCE_FILE, "lossy", "lossless")):   # modes that ignore masks
            return False
        fraction = float(np.count_nonzero(mask)) / mask.size
        if fraction >= segmentation.min_blade_fraction:
            return False
        log.warning("%s: the segmentation found blade in %.2f %% of the photo (segmentation.min_blade_fraction "
                    "is %.2f %%): sending the source file, in case it missed the blade", source.name,
                    100 * fraction, 100 * segmentation.min_blade_fraction)
        return True

    def _unsure(self, photo_id: int, source: Path, mask) -> bool:
        """Whether the model's confidence guard called this photo's mask unsure (it sends the source)."""
        if (mask is None or self.config.segmentation.mode != "model"
                or self.config.coding.mode in (SOURCE_FILE, "lossy", "lossless")):
            return False
        if not unsure_flag(self.spool.work, photo_id).exists():
            return False
        log.warning("%s: the segmentation model is unsure of this photo's mask (confidence guard): "
                    "sending the source file", source.name)
        return True

    def _code(self, source: Path, mask, fallback_for: str, send_source: bool = False) -> CodedPhoto:
        """Code the photo (or send the file itself with ``send_source``); if the codec fails (the
        photo decoded fine at intake, so it is not the photo's fault: no mask, a model missing ...)
        send the file itself. Only when that fails too is the photo unusable (InputError: quarantine)."""
        try:
            return code_photo(source, mask, self.coder, self.settings, self.config.coding, fallback_for,
                              send_source)
        except Exception as error:
            if fallback_for:
                raise
            log.error("%s: coding failed (%s: %s); sending the source file instead", source.name,
                      type(error).__name__, error)
            return code_photo(source, mask, self.coder, self.settings, self.config.coding, send_source=True)


class Spooling(Stage):
    """Encoded bundle -> spool file (durable) -> journal ``spooled`` -> wake the publisher."""

    name = "spooler"

    def __init__(self, journal: Journal, spool: Spool, stop: threading.Event, to_spool: queue.Queue,
                 wake: Callable[[], None]):
        super().__init__(journal, stop)
        self.spool = spool
        self.to_spool = to_spool
        self.wake = wake

    def step(self) -> None:
        item = self._get(self.to_spool)
        if item is None:
            return
        photo_id, coded = item
        if not self.spool.wait_for_room(len(coded.data), self.stop_event):
            return                                   # stopping: the photo stays 'coded' and is resumed
        previous = self.journal.get(photo_id).bundle_id
        failing = False
        while True:
            try:
                self.spool.write_bundle(coded.bundle_id, coded.data)     # a full disk is waited out inside
                break
            except OSError as error:                 # another failure (I/O error ...): logged once, retried
                (log.debug if failing else log.error)("cannot write bundle %s to the spool (%s); retrying every "
                                                      "2 s", coded.bundle_id, error.strerror)
                failing = True
                if self.stop_event.wait(2.0):
                    return
        if failing:
            log.info("bundle %s written to the spool after all", coded.bundle_id)
        changed = self.journal.set_state(photo_id, "spooled", expect=UNFINISHED, bundle_id=coded.bundle_id,
                                         bundle_size=len(coded.data), sent_source=int(coded.sent_source),
                                         attempts=0, published_at=None)
        if not changed:                              # acknowledged meanwhile
            self.spool.delete_bundle(coded.bundle_id)
            return
        if previous and previous != coded.bundle_id:
            self.spool.delete_bundle(previous)       # the refused bundle it replaces
        self.wake()
