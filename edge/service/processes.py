"""The daemon and the subscriber as child processes (for `edge demo` and the crash tests).

:class:`ServiceProcess` starts ``python -m edge.daemon`` or ``python -m edge.offshore`` with a
config file, gives it a private ``NOTIFY_SOCKET`` so the caller learns when it is READY (the
same notification systemd gets), and stops it with SIGTERM (clean) or SIGKILL (crash).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def terminate(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM a child and wait for it; SIGKILL when it is not gone after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


MODULES = {"daemon": "edge.daemon", "subscriber": "edge.offshore"}


class ServiceProcess:
    def __init__(self, kind: str, config_path: Path, log_path: Path | None = None, env: dict | None = None):
        if kind not in MODULES:
            raise ValueError(f"kind must be one of {sorted(MODULES)}, not {kind!r}")
        self.kind = kind
        self.config_path = Path(config_path)
        self.log_path = Path(log_path) if log_path else None
        self.env = env
        self.process: subprocess.Popen | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="edge-notify-")
        self.notify_path = Path(self._folder.name) / "notify.sock"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self.notify_path))

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> "ServiceProcess":
        """Spawn the process; with ``wait_ready``, return once it sent READY=1 (or raise)."""
        env = dict(os.environ if self.env is None else self.env, NOTIFY_SOCKET=str(self.notify_path),
                   PYTHONUNBUFFERED="1")
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen([sys.executable, "-m", MODULES[self.kind], "--config",
                                             str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        if wait_ready and not self.wait_ready(timeout):
            code = self.process.poll()
            self.kill()
            raise RuntimeError(f"the {self.kind} did not report READY=1 within {timeout} s "
                               f"({'exited with ' + str(code) if code is not None else 'still starting'}); "
                               f"see {self.log_path or 'its output'}")
        return self

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            self._notify.settimeout(min(0.5, max(deadline - time.monotonic(), 0.01)))
            try:
                if b"READY=1" in self._notify.recv(4096):
                    return True
            except socket.timeout:
                continue
        return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit status."""
        if self.process is None:
            return None
        return terminate(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash at whatever point the process is."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.kill()
        self._notify.close()
        self._folder.cleanup()
