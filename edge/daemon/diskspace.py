"""A full disk under the spool is a state the daemon waits in, not an error.

The journal, the spool and the quarantine write through :meth:`DiskSpace.retry`. A write that
fails for lack of space (ENOSPC, EDQUOT, SQLite's SQLITE_FULL) is tried again every
``RETRY_S`` until it succeeds, so each stage waits where it is, holding its item, and goes on
by itself when space comes back (acknowledged bundles deleted, the disk grown, files removed
by hand). No restart is needed and nothing is dropped.

One warning starts an episode and one line ends it; a shortage that starts again within
``QUIET_S`` of the last one continues the episode silently (a nearly full disk may flap with
every acknowledgement). The state, since when and what could not be written, goes to the
status topic, the systemd STATUS line and the health check (:func:`edge.service.health.supervise`
stops pinging the watchdog when it lasts longer than ``spool.disk_full_restart_s``).
"""
from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

RETRY_S = 1.0     # how often a waiting write is tried again
QUIET_S = 60.0    # a new shortage within this long after the last one is the same episode

T = TypeVar("T")


class DiskWaitStopped(Exception):
    """The daemon is stopping while a write waits for space; the item stays in the journal."""


def is_disk_full(error: BaseException) -> bool:
    """Whether an error means "no space left" (file system or SQLite)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(error)
    return False


class DiskSpace:
    """Shared by every writer of one daemon; thread-safe.

    ``on_wait`` is called from a waiting writer's thread about every ``RETRY_S`` (start-up uses it
    to keep systemd's start timeout from running out and to notice SIGTERM).
    """

    def __init__(self, stop: threading.Event | None = None):
        self.stop_event = stop or threading.Event()
        self.on_wait: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._waiting: dict[int, str] = {}        # waiting writer -> what it cannot write
        self._since_wall: float | None = None     # start of the current shortage
        self._since: float | None = None
        self._quiet_until = 0.0                   # monotonic end of the last episode + QUIET_S
        self._warned = False                      # the current episode's warning was logged
        self._back_said = False                   # ... and its end
        self.episodes = 0

    # -- state

    @property
    def full(self) -> bool:
        return bool(self._waiting)

    def full_for(self) -> float:
        """Seconds the current shortage has lasted (0 when there is none)."""
        since = self._since
        return time.monotonic() - since if self._waiting and since is not None else 0.0

    def status(self) -> dict:
        """For the status topic."""
        with self._lock:
            waiting = sorted(set(self._waiting.values()))
            return {"disk_full": bool(waiting), "disk_full_since": self._since_wall if waiting else None,
                    "disk_full_writing": waiting}

    def describe(self) -> str:
        """One line for the systemd STATUS and the watchdog message, "" when there is space."""
        with self._lock:
            if not self._waiting:
                return ""
            what = ", ".join(sorted(set(self._waiting.values())))
        return f"disk full for {self.full_for():.0f} s: waiting to write {what}"

    # -- writing

    def retry(self, write: Callable[[], T], what: str) -> T:
        """``write()``, tried again while it fails for lack of space; raises
        :class:`DiskWaitStopped` if the daemon stops meanwhile. Other errors propagate."""
        token = object()
        waiting = False
        try:
            while True:
                try:
                    return write()
                except (OSError, sqlite3.Error) as error:
                    if not is_disk_full(error):
                        raise
                    if not waiting:
                        self._enter(id(token), what, error)
                        waiting = True
                if self.on_wait is not None:
                    self.on_wait()
                if self.stop_event.wait(RETRY_S):
                    raise DiskWaitStopped(f"stopped while waiting for disk space to write {what}")
        finally:
            if waiting:
                self._leave(id(token))

    def _enter(self, token: int, what: str, error: BaseException) -> None:
        with self._lock:
            if not self._waiting:
                self._since, self._since_wall = time.monotonic(), time.time()
                if time.monotonic() >= self._quiet_until:
                    self._warned = False
            self._waiting[token] = what
            if self._warned:
                log.debug("still no space: cannot write %s", what)
                return
            self._warned, self._back_said = True, False
            self.episodes += 1
        reason = getattr(error, "strerror", None) or str(error)
        log.warning("no space left on the disk: cannot write %s (%s); waiting for space, retrying every %.0f s "
                    "(photos stay on the card, none is dropped)", what, reason, RETRY_S)

    def _leave(self, token: int) -> None:
        with self._lock:
            self._waiting.pop(token, None)
            if self._waiting:
                return
            lasted = time.monotonic() - (self._since or time.monotonic())
            self._quiet_until = time.monotonic() + QUIET_S
            announce = self._warned and not self._back_said
            self._back_said = True
        if announce:
            log.info("disk space is back after %.0f s: writing again", lasted)
