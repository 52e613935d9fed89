"""systemd notifications (the sd_notify protocol), without libsystemd.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a datagram socket path, or an abstract
one starting with ``@``) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``).
We send ``READY=1`` once started, ``WATCHDOG=1`` from the main loop at half the watchdog
period (only while every stage is alive), ``STATUS=...`` lines, ``STOPPING=1`` on shutdown and
``EXTEND_TIMEOUT_USEC=...`` while a slow stop is still making progress. Without
``NOTIFY_SOCKET`` every call does nothing.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict | None = None):
        environ = os.environ if environ is None else environ
        self.address = environ.get("NOTIFY_SOCKET") or None
        if self.address and self.address.startswith("@"):
            self.address = "\0" + self.address[1:]          # abstract socket namespace
        self.watchdog_s = self._watchdog_period(environ)
        self._socket: socket.socket | None = None

    @staticmethod
    def _watchdog_period(environ) -> float | None:
        """Seconds between watchdog pings (half of WatchdogSec), or None if not watched."""
        usec = environ.get("WATCHDOG_USEC")
        pid = environ.get("WATCHDOG_PID")
        if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
            return None
        try:
            return max(int(usec) / 1e6 / 2, 0.05)
        except ValueError:
            return None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False if there is no socket or sending failed."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)     # never let a full socket stall the main loop
            self._socket.sendto("\n".join(lines).encode("utf-8"), self.address)
            return True
        except OSError as error:
            log.debug("sd_notify to %r failed: %s", self.address, error)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def extend_timeout(self, seconds: float) -> bool:
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None



class StopSignals:
    """SIGTERM and SIGINT ask the main loop to stop.

    The handler only sets a flag: taking a lock in a signal handler (``threading.Event.set``
    does) dead-locks when the signal lands while the main thread holds that same lock, for
    instance inside ``Event.wait``. The main loop (:func:`supervise`) polls the flag.
    """

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def install(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


def supervise(stop: threading.Event, signals: StopSignals, notifier: Notifier, period_s: float,
              problem: Callable[[], str], status: Callable[[], str],
              stalled: Callable[[], str] = lambda: "") -> int:
    """The main loop of a service: every ``period_s`` (at most half the watchdog period) ask
    ``problem()``; if it names one, log it and return 1 (systemd restarts the service) without
    pinging the watchdog again; else ping it and update the status line. Returns 0 when a
    signal or the stop event asks to stop.

    ``stalled()`` names a state the service is alive in but cannot get out of by itself (the disk
    full for too long): the watchdog is not pinged while it lasts, so systemd's ``WatchdogSec=``
    restarts the service; pinging resumes if it clears first.
    """
    if notifier.watchdog_s is not None:
        period_s = min(period_s, notifier.watchdog_s)
    next_check = time.monotonic() + period_s
    was_stalled = ""
    while not stop.is_set() and not signals.requested:
        time.sleep(min(0.05, period_s))
        if time.monotonic() < next_check:
            continue
        next_check = time.monotonic() + period_s
        trouble = problem()
        if trouble:
            log.error("%s; exiting so that the service restarts", trouble)
            return 1
        stuck = stalled()
        if stuck and not was_stalled:
            log.error("no progress: %s; no longer pinging the systemd watchdog, so that systemd restarts "
                      "the service", stuck)
        elif was_stalled and not stuck:
            log.info("progress again; pinging the systemd watchdog again")
        was_stalled = stuck
        if not stuck:
            notifier.watchdog()
        notifier.status(status())
    return 0
