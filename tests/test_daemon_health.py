"""systemd integration: sd_notify over a datagram socket, READY/WATCHDOG/STOPPING from the real
`edge run` and `edge subscribe` commands, and no watchdog ping once a stage has died."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from tests.daemon_helpers import config_yaml, edge_config, offshore_config, retained, write_photo
from edge.cli import main
from edge.comms.topics import Topics
from edge.daemon.pipeline import run_daemon
from edge.service.health import Notifier


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    yield path, server
    server.close()


def test_notifier_sends_each_message_as_one_datagram(notify_socket):
    path, server = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
    assert notifier.watchdog_s == 1.5
    assert notifier.ready("up")
    assert server.recv(4096) == b"READY=1\nSTATUS=up"
    notifier.watchdog()
    assert server.recv(4096) == b"WATCHDOG=1"
    notifier.extend_timeout(2.5)
    assert server.recv(4096) == b"EXTEND_TIMEOUT_USEC=2500000"
    notifier.stopping()
    assert server.recv(4096) == b"STOPPING=1"


def test_notifier_abstract_socket_and_absent_systemd():
    name = f"edge-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("x")
        assert server.recv(100) == b"STATUS=x"
    finally:
        server.close()
    silent = Notifier({})
    assert not silent.enabled and not silent.ready() and silent.watchdog_s is None
    # WATCHDOG_PID names another process: the watchdog is not ours to ping.
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_s is None


def run_command_until_pinged(argv: list[str], server: socket.socket, pings: int = 2,
                             timeout: float = 60.0) -> tuple[int, list[str]]:
    """Run a command in this (main) thread; a helper thread records the notifications and,
    after READY=1 and ``pings`` WATCHDOG=1, sends this process SIGTERM (the command's handler
    turns it into a clean stop). Returns the exit status and the messages."""
    messages: list[str] = []
    finished = threading.Event()

    def listen():
        deadline = time.monotonic() + timeout
        server.settimeout(0.2)
        while time.monotonic() < deadline and not finished.is_set():
            try:
                messages.append(server.recv(4096).decode())
            except socket.timeout:
                continue
            if any("READY=1" in m for m in messages) and sum(m == "WATCHDOG=1" for m in messages) >= pings:
                break
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        code = main(argv)
    finally:
        finished.set()
        listener.join(5)
    try:
        while True:
            messages.append(server.recv(4096).decode())
    except OSError:
        pass
    return code, messages


@pytest.mark.broker
def test_edge_run_tells_systemd_ready_watchdog_and_stopping(tmp_path, broker, notify_socket, monkeypatch):
    path, server = notify_socket
    config = edge_config(tmp_path, broker.port)
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(config_yaml(config))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")      # ping every 0.2 s
    code, messages = run_command_until_pinged(["run", "--config", str(config_path)], server)
    assert code == 0
    ready = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    pings = [i for i, m in enumerate(messages) if m == "WATCHDOG=1"]
    assert len(pings) >= 2 and pings[0] > ready
    assert any(m.startswith("STOPPING=1") for m in messages[pings[-1]:])
    topics = Topics(config.mqtt.topic_root)
    assert retained(broker.port, topics.availability(config.device)) == b"stopped"


@pytest.mark.broker
def test_edge_subscribe_tells_systemd_ready_and_watchdog(tmp_path, broker, notify_socket, monkeypatch):
    path, server = notify_socket
    config = offshore_config(tmp_path, broker.port)
    config_path = tmp_path / "offshore.yaml"
    config_path.write_text(config_yaml(config))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    code, messages = run_command_until_pinged(["subscribe", "--config", str(config_path)], server)
    assert code == 0
    assert messages[0].startswith("READY=1")
    assert messages.count("WATCHDOG=1") >= 2 and any(m.startswith("STOPPING=1") for m in messages)


class SegmenterCrash(BaseException):  # noqa: N818
    """Escapes the stage's error handling, as a bug that kills a thread would."""


@pytest.mark.broker
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_stage_stops_the_watchdog_and_exits_1(tmp_path, broker, notify_socket):
    path, server = notify_socket

    def broken_segmenter(paths):
        raise SegmenterCrash()

    config = edge_config(tmp_path, broker.port)
    write_photo(config.watch.folders[0], 0)
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"})
    messages: list[str] = []
    done = threading.Event()

    def listen():                        # read as systemd does: the socket queue is short
        server.settimeout(0.1)
        while not done.is_set():
            try:
                messages.append(server.recv(4096).decode())
            except socket.timeout:
                pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        assert run_daemon(config, segmenter=broken_segmenter, notifier=notifier, tick_s=0.1) == 1
        time.sleep(0.3)
    finally:
        done.set()
        listener.join(5)
    assert messages[0].startswith("READY=1") and "WATCHDOG=1" in messages
    last_ping = max(i for i, m in enumerate(messages) if m == "WATCHDOG=1")
    stopping = next(i for i, m in enumerate(messages) if m.startswith("STOPPING=1"))
    assert last_ping < stopping                        # no ping after the stage died
