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


def install_stop_signals(stop: Callable[[], None]) -> dict:
    """SIGTERM and SIGINT call ``stop`` (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for number in (signal.SIGTERM, signal.SIGINT):
        previous[number] = signal.signal(number, lambda signum, frame: stop())
    return previous


def restore_signals(previous: dict) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)
