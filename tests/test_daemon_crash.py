"""kill -9 of the edge daemon (a real `edge run` process) at random points, ten times over:
every photo still arrives offshore exactly once."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from daemon_helpers import arrivals, config_yaml, edge_config, offshore_config, wait_for, write_photo
from edge.daemon.journal import Journal
from edge.offshore.subscriber import Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def start_daemon(config_path, log, notify_path):
    """The daemon as its own process (``python -m edge.daemon``: what ``edge run`` calls, without
    importing every other command), telling a fake systemd socket when it is ready."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=str(notify_path))
    return subprocess.Popen([sys.executable, "-m", "edge.daemon", "--config", str(config_path)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_ready(notify: socket.socket, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        notify.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if b"READY=1" in notify.recv(4096):
                return True
        except socket.timeout:
            break
    return False


def test_kill_9_at_random_points_loses_and_duplicates_nothing(tmp_path, broker):
    rng = random.Random(20240501)
    edge = edge_config(tmp_path, broker.port,
                       publish={"rate_limit_bytes_per_s": "60KB", "chunk_bytes": "8KiB", "ack_timeout_s": 3})
    offshore = offshore_config(tmp_path, broker.port)
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(config_yaml(edge))
    card = edge.watch.folders[0]
    subscriber = Subscriber(offshore)
    subscriber.start()
    log = open(tmp_path / "daemon.log", "ab")
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    written = 0
    unfinished_at_kill = []
    try:
        for _ in range(6):
            write_photo(card, written)
            written += 1
        for run in range(10):
            daemon = start_daemon(config_path, log, notify_path)
            if run % 4 == 3:
                time.sleep(rng.uniform(0.0, 1.0))   # some kills land during start-up
            else:
                assert wait_ready(notify), "the daemon did not report READY=1"
                time.sleep(rng.uniform(0.0, 0.8))
                for _ in range(2):                  # photos also land while the daemon runs
                    write_photo(card, written)
                    written += 1
                time.sleep(rng.uniform(0.0, 1.5))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            journal = Journal(edge.journal_path)
            counts = journal.counts()
            journal.close()
            unfinished_at_kill.append(written - counts.get("acknowledged", 0))
        daemon = start_daemon(config_path, log, notify_path)
        try:
            wait_for(lambda: len(arrivals(offshore.output.folder)) >= written, 120, f"{written} photos to arrive")
            journal = Journal(edge.journal_path)
            wait_for(lambda: journal.counts().get("acknowledged") == written, 30, "every acknowledgement")
            journal.close()
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
    finally:
        subscriber.stop()
        notify.close()
        log.close()

    # The kills hit a daemon with work in hand, not an idle one.
    assert sum(1 for left in unfinished_at_kill if left > 0) >= 8, unfinished_at_kill
    records = arrivals(offshore.output.folder)
    names = sorted(record["source"] for record in records)
    assert names == [f"DJI_{i:04d}.JPG" for i in range(written)]        # all of them, none twice
    assert not any(edge.spool.folder.joinpath("bundles").iterdir())
