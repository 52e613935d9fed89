"""Faults of the edge computer itself, against the real daemon and a real Mosquitto: the spool's
disk full at start-up and while running (a small tmpfs, grown later), a file written in pieces
and closed between them, an empty file, a text file named .jpg, a broker away for 30 s, and a
missing password variable."""
from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.daemon_helpers import (arrivals, config_yaml, edge_config, jpeg_bytes, offshore_config, retained, wait_for,
                            write_photo)
from edge.cli import main
from edge.comms.topics import Topics
from edge.daemon.pipeline import EdgeDaemon
from edge.doctor import FAIL, check_folder
from edge.offshore.subscriber import Subscriber
from edge.service.processes import ServiceProcess

pytestmark = pytest.mark.broker

NO_SPACE = "no space left on the disk"


class SmallDisk:
    """A tmpfs of a few hundred KiB: filled with a filler file, grown with a remount."""

    def __init__(self, folder: Path):
        self.folder = folder

    def fill(self) -> None:
        """Take every free block (the filler grows until the file system says ENOSPC)."""
        with open(self.folder / "filler", "ab", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError as error:
                assert error.errno == errno.ENOSPC
        assert os.statvfs(self.folder).f_bavail == 0

    def grow(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.folder)], check=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the spool needs root (mount -t tmpfs)")
    folder = tmp_path / "disk"
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield SmallDisk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], timeout=30)


def warnings_naming(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


# ---------------------------------------------------------------------------- a full disk

@pytest.mark.slow
def test_start_up_on_a_full_disk_waits_with_one_message_then_delivers(tmp_path, broker, small_disk, services):
    """The real daemon process starts with its spool's disk full: one clear line, no traceback;
    photos dropped meanwhile arrive once each after the tmpfs is grown, without a restart."""
    edge = edge_config(tmp_path, broker.port, spool={"folder": str(small_disk.folder / "spool")})
    offshore = offshore_config(tmp_path, broker.port)
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(config_yaml(edge))
    assert check_folder("spool", small_disk.folder, writable=True).status != FAIL
    small_disk.fill()
    assert check_folder("spool", small_disk.folder, writable=True).status == FAIL     # edge doctor sees it
    services(Subscriber(offshore))
    log_path = tmp_path / "daemon.log"
    daemon = ServiceProcess("daemon", config_path, log_path=log_path)
    try:
        daemon.start(wait_ready=False)
        card = edge.watch.folders[0]
        for index in range(3):
            write_photo(card, index)
        wait_for(lambda: NO_SPACE in log_path.read_text(), 60, "the disk-full message")
        status_topic = Topics(edge.mqtt.topic_root).status(edge.device)
        status = wait_for(lambda: _disk_full_status(broker.port, status_topic), 30, "the status topic to say so")
        assert status["starting"] and "journal" in " ".join(status["disk_full_writing"])
        time.sleep(2)                                   # waiting, not repeating itself, not dying
        assert daemon.running and arrivals(offshore.output.folder) == []
        small_disk.grow("4m")
        wait_for(lambda: len(arrivals(offshore.output.folder)) >= 3, 60, "3 photos after the disk was grown")
        assert daemon.running
        assert daemon.stop() == 0
    finally:
        daemon.close()
    text = log_path.read_text()
    assert text.count(NO_SPACE) == 1 and "Traceback" not in text and "unexpected error" not in text, text
    assert "journal" in text.split(NO_SPACE, 1)[1].splitlines()[0]          # it says what it cannot write
    assert "disk space is back" in text
    assert sorted(r["source"] for r in arrivals(offshore.output.folder)) == [f"DJI_{i:04d}.JPG" for i in range(3)]
    assert not _disk_full_status(broker.port, status_topic)     # the running daemon's status replaced it


@pytest.mark.slow
def test_disk_full_while_running_is_a_state_in_the_status_topic_and_stops_the_watchdog(
        tmp_path, broker, small_disk, services, monkeypatch, caplog):
    """`edge run` as systemd runs it: the disk fills while it runs. It waits (one warning), the
    status topic says so, the watchdog is no longer pinged after spool.disk_full_restart_s; after
    the tmpfs is grown every photo arrives once, and the pings resume, all without a restart."""
    caplog.set_level(logging.INFO)
    edge = edge_config(tmp_path, broker.port, spool={"folder": str(small_disk.folder / "spool"),
                                                     "disk_full_restart_s": 1})
    offshore = offshore_config(tmp_path, broker.port)
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(config_yaml(edge))
    notify_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(notify_path))
    server.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")             # a ping every 0.2 s
    services(Subscriber(offshore))
    card = edge.watch.folders[0]
    status_topic = Topics(edge.mqtt.topic_root).status(edge.device)
    messages: list[tuple[float, str]] = []
    seen: dict = {}
    failure: list[BaseException] = []

    def pings_after(moment: float) -> int:
        return sum(1 for when, text in list(messages) if text == "WATCHDOG=1" and when > moment)

    def listen() -> None:
        while not seen.get("done"):
            try:
                messages.append((time.monotonic(), server.recv(4096).decode()))
            except socket.timeout:
                pass

    def scenario() -> None:
        try:
            wait_for(lambda: pings_after(0) >= 2, 60, "READY and the first pings")
            write_photo(card, 0)
            wait_for(lambda: len(arrivals(offshore.output.folder)) == 1, 30, "the first photo")
            time.sleep(1.0)                                   # its acknowledgement deleted its bundle
            small_disk.fill()
            for index in range(1, 5):
                write_photo(card, index)
            seen["status"] = wait_for(lambda: _disk_full_status(broker.port, status_topic), 30,
                                      "the status topic to report the full disk")
            wait_for(lambda: any("disk full" in text for _, text in list(messages)), 10, "a STATUS line")
            time.sleep(2.5)                                   # past disk_full_restart_s
            seen["quiet_from"] = time.monotonic() - 1.0
            seen["pings_while_full"] = pings_after(seen["quiet_from"])
            small_disk.grow("4m")
            seen["grown"] = time.monotonic()
            wait_for(lambda: len(arrivals(offshore.output.folder)) >= 5, 60, "every photo after the disk grew")
            seen["delivered_s"] = time.monotonic() - seen["grown"]
            wait_for(lambda: pings_after(seen["grown"]) >= 2, 20, "the watchdog pings to resume")
        except BaseException as error:                       # reported by the test thread
            failure.append(error)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)              # the command stops cleanly on SIGTERM

    listener = threading.Thread(target=listen, daemon=True)
    runner = threading.Thread(target=scenario, daemon=True)
    listener.start()
    runner.start()
    try:
        code = main(["run", "--config", str(config_path)])
    finally:
        runner.join(10)
        seen["done"] = True
        listener.join(5)
        server.close()
    if failure:
        raise failure[0]
    assert code == 0
    status = seen["status"]
    assert status["disk_full"] and status["disk_full_since"] and status["disk_full_writing"]
    assert seen["pings_while_full"] == 0                      # systemd would restart the service
    assert seen["delivered_s"] < 60
    assert sorted(r["source"] for r in arrivals(offshore.output.folder)) == [f"DJI_{i:04d}.JPG" for i in range(5)]
    assert len(warnings_naming(caplog, NO_SPACE)) == 1
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "unexpected error" not in caplog.text
    assert "disk space is back" in caplog.text
    assert not _disk_full_status(broker.port, status_topic)   # the status topic says it is over


def _disk_full_status(port: int, topic: str) -> dict | None:
    payload = retained(port, topic, timeout=2)
    status = json.loads(payload) if payload else {}
    return status if status.get("disk_full") else None


# ---------------------------------------------------------------------------- odd writers

@pytest.mark.slow
def test_a_file_written_in_ten_pieces_closed_between_them_arrives_once(tmp_path, broker, services, caplog):
    """Some copy tools close the file between pieces, so each piece ends with a close event. The
    file fails to decode until the last piece: retried, never quarantined, taken once."""
    edge = edge_config(tmp_path, broker.port, watch={"stable_s": 1.0})
    offshore = offshore_config(tmp_path, broker.port)
    services(Subscriber(offshore))
    daemon = services(EdgeDaemon(edge))
    data = jpeg_bytes(7)
    path = edge.watch.folders[0] / "DJI_0007.JPG"
    step = -(-len(data) // 10)
    for start in range(0, len(data), step):                  # 10 pieces, 0.5 s apart (stable_s is 1 s)
        with open(path, "ab") as handle:
            handle.write(data[start:start + step])
        time.sleep(0.5)
    wait_for(lambda: len(arrivals(offshore.output.folder)) >= 1, 30, "the photo")
    time.sleep(2 * edge.watch.stable_s)                      # retries still due find nothing to do
    assert [r["source"] for r in arrivals(offshore.output.folder)] == ["DJI_0007.JPG"]
    records = daemon.journal.all()
    assert [(Path(r.path).name, r.state) for r in records] == [("DJI_0007.JPG", "acknowledged")]
    quarantine = edge.quarantine_folder
    assert not quarantine.exists() or not any(quarantine.iterdir())
    # Every quarantine logs "quarantined: ..."; the watcher may also have seen the file at 0 bytes
    # between its creation and the first write, and said it waits ("quarantined if it stays empty").
    assert "quarantined:" not in caplog.text


def test_an_empty_file_is_named_once_quarantined_once_and_coded_when_filled(tmp_path, broker, services, caplog):
    edge = edge_config(tmp_path, broker.port, watch={"stable_s": 0.5})
    offshore = offshore_config(tmp_path, broker.port)
    services(Subscriber(offshore))
    daemon = services(EdgeDaemon(edge))
    path = edge.watch.folders[0] / "DJI_0500.JPG"
    path.touch()
    quarantine = edge.quarantine_folder
    wait_for(lambda: list(quarantine.glob("*.reason.txt")), 10, "the empty file to be quarantined")
    time.sleep(1.5)                                          # it stays empty: nothing more happens
    reasons = list(quarantine.glob("*.reason.txt"))
    assert len(reasons) == 1 and "empty (0 bytes)" in reasons[0].read_text()
    assert [r.state for r in daemon.journal.all()] == ["failed"]
    named = warnings_naming(caplog, "DJI_0500.JPG")
    assert len(named) == 1 and "empty" in named[0], named
    path.write_bytes(jpeg_bytes(5))                          # the camera writes it after all
    wait_for(lambda: len(arrivals(offshore.output.folder)) >= 1, 30, "the filled file to arrive")
    assert [r["source"] for r in arrivals(offshore.output.folder)] == ["DJI_0500.JPG"]
    assert len(list(quarantine.glob("*.reason.txt"))) == 1


def test_a_text_file_named_jpg_is_reported_by_name_and_content(tmp_path, broker, services, caplog):
    edge = edge_config(tmp_path, broker.port, watch={"stable_s": 0.3})
    daemon = services(EdgeDaemon(edge))
    (edge.watch.folders[0] / "DJI_0101.JPG").write_bytes(b"flight log, not a photo\n" * 50)
    wait_for(lambda: daemon.journal.counts().get("failed") == 1, 10, "the file to be quarantined")
    (reason,) = [r.reason for r in daemon.journal.all()]
    assert "DJI_0101.JPG" in reason and "not an image" in reason and "flight log" in reason
    assert "BytesIO" not in reason and "BytesIO" not in caplog.text
    assert len(warnings_naming(caplog, "DJI_0101.JPG")) == 1


# ---------------------------------------------------------------------------- messages

@pytest.mark.slow
def test_a_broker_away_for_30_s_gives_one_warning(tmp_path, broker, services, caplog):
    caplog.set_level(logging.DEBUG, logger="edge.mqtt.paho")
    edge = edge_config(tmp_path, broker.port)
    daemon = services(EdgeDaemon(edge))
    assert daemon.publisher.link.wait_connected(10)
    time.sleep(0.5)
    caplog.clear()
    broker.kill()
    time.sleep(30)
    broker.start()
    assert daemon.publisher.link.wait_connected(30)
    loud = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1 and "reconnecting" in loud[0], loud
    assert any(r.name == "edge.mqtt.paho" for r in caplog.records)     # paho's own lines: kept, as debug


def test_a_missing_password_variable_names_the_file_and_key_and_nothing_stopped(tmp_path):
    edge = edge_config(tmp_path, 1883, mqtt={"auth": {"username": "drone", "password": {"env": "NO_SUCH_PW"}}})
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(config_yaml(edge))
    env = {key: value for key, value in os.environ.items() if key != "NO_SUCH_PW"}
    result = subprocess.run([sys.executable, "-m", "edge.daemon", "--config", str(config_path)], env=env,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    line = next(n for n, text in enumerate(config_path.read_text().splitlines(), 1) if "NO_SUCH_PW" in text)
    assert f"{config_path}:{line}: mqtt.auth.password.env: environment variable NO_SUCH_PW is not set" in output
    assert "stopped" not in output and "started" not in output and "Traceback" not in output
