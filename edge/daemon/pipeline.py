"""The edge daemon: its stages, the queues between them, start-up, shutdown and the main loop.

::

    watcher --file--> intake --photo--> grouper --surface--> segmenter --photo id--> coder(s)
        --bundle--> spooler --journal--> publisher <--MQTT--> broker <--> offshore subscriber
                                             \\--refused: photo id--> coder(s)

Every queue is bounded (back-pressure: a full spool stops coding, which stops segmentation
...), except the small one of refused bundles. One stop event ends every stage; ``stop()``
joins them in the reverse order of ``start()``. What is in flight is in the journal: a
restart resumes it.

A full disk under the journal or the spool is waited out where it happens
(:mod:`edge.daemon.diskspace`), at start-up too; it shows in the status topic and the systemd
STATUS line, and when it lasts longer than ``spool.disk_full_restart_s`` the watchdog is no
longer pinged, so systemd restarts the service.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

from edge.config import EdgeConfig, check_secrets
from edge.daemon.coding import Coder, resolve_coder
from edge.daemon.diskspace import DiskSpace, DiskWaitStopped
from edge.daemon.grouping import SurfaceGrouper
from edge.daemon.journal import IN_SPOOL, UNFINISHED, Journal, PhotoRecord
from edge.daemon.publisher import Publisher, StartupStatus
from edge.daemon.segmentation import Segmenter, make_segmenter
from edge.daemon.spool import Spool
from edge.daemon.stages import Coding, Grouper, Intake, Segmentation, Spooling
from edge.daemon.watcher import Watcher
from edge.service.health import Notifier, StopSignals, supervise

log = logging.getLogger(__name__)


class EdgeDaemon:
    """``start()`` and ``stop()`` the whole edge side.

    The codec can be injected: a ``coder(path, settings, mask)`` function with its ``settings``,
    or the codec's loaded models (``coders``, an ``edge.codec.photo.Coders``); so can the
    ``segmenter``. By default they come from the config.
    """

    def __init__(self, config: EdgeConfig, coder: Coder | None = None, settings: Any = None,
                 segmenter: Segmenter | None = None, coders: Any = None):
        self.config = config
        self.stop_event = threading.Event()
        self.disk = DiskSpace(self.stop_event)                 # shared by every writer: one disk-full state
        self.started = False
        self.coder, self.settings = resolve_coder(config.coding, coder, settings, coders, config.runtime)
        self.segmenter = segmenter or make_segmenter(config.segmentation, config.runtime)
        # The queues between stages. Items are paths and photo ids, except the two bundles
        # that may wait for the spooler.
        self.files: queue.Queue = queue.Queue(maxsize=256)     # watcher -> intake
        self.photos: queue.Queue = queue.Queue(maxsize=64)     # intake -> grouper
        self.groups: queue.Queue = queue.Queue(maxsize=2)      # grouper -> segmenter
        self.to_code: queue.Queue = queue.Queue(maxsize=8)     # segmenter -> coders
        self.recode: queue.Queue = queue.Queue()               # publisher (refused bundles) -> coders
        self.to_spool: queue.Queue = queue.Queue(maxsize=2)    # coders -> spooler
        self.journal: Journal | None = None
        self.spool: Spool | None = None
        self.publisher: Publisher | None = None
        self.watcher: Watcher | None = None
        self.stages: list = []                                 # in start order

    # -- start and stop

    def start(self) -> None:
        """Start the stages, consumers before producers."""
        self._open_state()           # 1. journal and spool; leftovers of a crash cleaned up
        self._start_publisher()      # 2. MQTT: sends spooled bundles, receives acknowledgements
        self._start_spooler()        # 3. bundle -> spool file -> 'spooled'
        self._start_coders()         # 4. photo + mask -> bundle -> 'coded'
        self._start_segmenter()      # 5. surface group -> masks -> 'segmented'
        self._start_grouper()        # 6. photos -> surface groups
        self._start_intake()         # 7. file -> 'seen' (or quarantined); resumes unfinished photos
        self._start_watcher()        # 8. watched folders -> complete files
        self.started = True
        log.info("edge daemon %s started: %s", self.config.device, ", ".join(self.stage_names()))

    def stop(self, progress: Callable[[float], Any] = lambda seconds: None) -> None:
        """Stop every stage in reverse order; ``progress(seconds)`` is called before each wait
        (systemd's EXTEND_TIMEOUT_USEC)."""
        self.stop_event.set()
        for stage in reversed(self.stages):
            progress(30.0)
            stage.stop()
        self.stages.clear()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.started:                     # nothing to claim for a start that did not finish
            log.info("edge daemon %s stopped", self.config.device)
            self.started = False

    def request_stop(self) -> None:
        self.stop_event.set()

    def stage_names(self) -> list[str]:
        return [getattr(stage, "name", type(stage).__name__.lower()) for stage in self.stages]

    def dead_stages(self) -> list[str]:
        return [name for name, stage in zip(self.stage_names(), self.stages) if not stage.alive]

    # -- the steps of start()

    def _open_state(self) -> None:
        self.spool = Spool(self.config.spool.folder, int(self.config.spool.max_bytes), self.disk)
        self.journal = Journal(self.config.journal_path, self.disk)
        removed = self.spool.remove_temporary_files()
        live = {record.bundle_id for record in self.journal.in_states(*IN_SPOOL)}
        for path in self.spool.bundles.iterdir():
            if path.is_file() and path.stem not in live:
                self.spool.delete_bundle(path.stem)    # acknowledged, replaced, or never journaled
                removed += 1
        for record in self.journal.in_states(*IN_SPOOL):
            if not self.spool.has_bundle(record.bundle_id):
                log.warning("%s: spooled bundle %s is missing; coding the photo again", record.path,
                            record.bundle_id)
                self.journal.set_state(record.id, "seen")
        needed = {record.source_copy for record in self.journal.in_states(*UNFINISHED, *IN_SPOOL)}
        for path in self.spool.sources.iterdir():
            if path.is_file() and str(path) not in needed:
                self.spool.delete_source_copy(str(path))   # its photo was acknowledged
                removed += 1
        for path in [*self.spool.work.glob("*.mask.png"), *self.spool.work.glob("*.unsure")]:
            photo_id = path.name.split(".", 1)[0]
            try:
                done = self.journal.get(int(photo_id)).state in ("acknowledged", "failed")
            except (KeyError, ValueError):
                done = True                            # a photo the journal does not know
            if done:
                path.unlink(missing_ok=True)
        if removed:
            log.info("spool: removed %d leftover files", removed)

    def _start_publisher(self) -> None:
        self.publisher = Publisher(self.config, self.journal, self.spool, self.stop_event,
                                   recode=self._recode, status_source=self.queue_status)
        self._add(self.publisher)

    def _start_spooler(self) -> None:
        self._add(Spooling(self.journal, self.spool, self.stop_event, self.to_spool, self.publisher.wake))

    def _start_coders(self) -> None:
        for index in range(self.config.coding.workers):
            self._add(Coding(self.config, self.coder, self.settings, self.journal, self.spool, self.stop_event,
                             self.to_code, self.recode, self.to_spool, index))

    def _start_segmenter(self) -> None:
        self._add(Segmentation(self.segmenter, self.journal, self.spool, self.stop_event, self.groups,
                               self.to_code))

    def _start_grouper(self) -> None:
        self._add(Grouper(SurfaceGrouper(self.config.grouping), self.journal, self.stop_event, self.photos,
                          self.groups))

    def _start_intake(self) -> None:
        self._add(Intake(self.config, self.journal, self.spool, self.stop_event, self.files, self.photos,
                         self.to_code))

    def _start_watcher(self) -> None:
        self.watcher = Watcher(self.config.watch, self.files, self.stop_event)
        self._add(self.watcher)

    def _add(self, stage) -> None:
        stage.start()
        self.stages.append(stage)

    # -- glue

    def _recode(self, record: PhotoRecord) -> None:
        self.recode.put(record.id)

    def queue_status(self) -> dict:
        """Queue depths for the status topic."""
        return {"queues": {"files": self.files.qsize(), "photos": self.photos.qsize(),
                           "groups": self.groups.qsize(), "to_code": self.to_code.qsize(),
                           "recode": self.recode.qsize(), "to_spool": self.to_spool.qsize()},
                **self.disk.status()}

    def status_line(self) -> str:
        counts = self.journal.counts() if self.journal is not None else {}
        spooled = counts.get("spooled", 0) + counts.get("published", 0)
        disk = self.disk.describe()
        return (f"{counts.get('acknowledged', 0)} delivered, {spooled} in the spool, "
                f"{counts.get('failed', 0)} failed; broker "
                f"{'connected' if self.publisher and self.publisher.link.connected else 'not connected'}"
                + (f"; {disk}" if disk else ""))

    def stalled(self) -> str:
        """Why the daemon cannot make progress and a restart is due, or "" (see supervise)."""
        limit = self.config.spool.disk_full_restart_s
        if limit and self.disk.full_for() > limit:
            return f"{self.disk.describe()} (longer than spool.disk_full_restart_s = {limit:.0f} s)"
        return ""


def run_daemon(config: EdgeConfig, coder: Coder | None = None, settings: Any = None,
               segmenter: Segmenter | None = None, coders: Any = None, notifier: Notifier | None = None,
               tick_s: float = 1.0) -> int:
    """Run until SIGTERM/SIGINT (0) or until a stage dies (1, so systemd restarts us).

    Tells systemd READY=1 once started, pings its watchdog from this loop while every stage
    is alive and the disk has not been full for too long, and says STOPPING=1 before the
    reverse-order shutdown. A full disk at start-up is waited out (the start timeout extended).
    """
    check_secrets(config)            # a missing password fails here, before anything starts
    notifier = notifier or Notifier()
    daemon = EdgeDaemon(config, coder, settings, segmenter, coders)
    signals = StopSignals().install()
    early = StartupStatus(config)

    def starting() -> None:          # called while start-up waits for disk space
        notifier.extend_timeout(10.0)
        notifier.status(f"starting: {daemon.disk.describe()}")
        early.report(daemon.disk.status())
        if signals.requested:
            daemon.request_stop()

    try:
        daemon.disk.on_wait = starting
        try:
            daemon.start()
        except DiskWaitStopped:
            return 0                 # asked to stop while waiting for space to start
        finally:
            daemon.disk.on_wait = None
            early.close()
        notifier.ready(daemon.status_line())

        def problem() -> str:
            dead = daemon.dead_stages()
            return f"stage(s) {', '.join(dead)} stopped unexpectedly" if dead else ""

        return supervise(daemon.stop_event, signals, notifier, tick_s, problem, daemon.status_line,
                         stalled=daemon.stalled)
    finally:
        notifier.stopping("stopping: finishing the photo in hand")
        daemon.stop(progress=notifier.extend_timeout)
        signals.restore()
        notifier.close()
