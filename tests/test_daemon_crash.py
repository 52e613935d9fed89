"""kill -9 of the edge daemon (its own process, `python -m edge.daemon`) at random points, ten times:
every photo still arrives offshore exactly once."""
from __future__ import annotations

import random
import time

import pytest

from tests.daemon_helpers import arrivals, config_yaml, edge_config, offshore_config, retained, wait_for, write_photo
from edge.comms.topics import Topics
from edge.daemon.journal import Journal
from edge.offshore.subscriber import Subscriber
from edge.service.processes import ServiceProcess

pytestmark = [pytest.mark.broker, pytest.mark.slow]


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
    written = 0
    unfinished_at_kill = []
    daemon = ServiceProcess("daemon", config_path, log_path=tmp_path / "daemon.log")
    try:
        for _ in range(6):
            write_photo(card, written)
            written += 1
        for run in range(10):
            if run % 4 == 3:
                daemon.start(wait_ready=False)
                time.sleep(rng.uniform(0.0, 1.0))   # some kills land during start-up
            else:
                daemon.start()                      # returns at READY=1
                time.sleep(rng.uniform(0.0, 0.8))
                for _ in range(2):                  # photos also land while the daemon runs
                    write_photo(card, written)
                    written += 1
                time.sleep(rng.uniform(0.0, 1.5))
            daemon.kill()
            if run == 0:                             # the broker announced the crash (last will)
                topic = Topics(edge.mqtt.topic_root).availability(edge.device)
                wait_for(lambda: retained(broker.port, topic) == b"offline", 10, "the last will")
            journal = Journal(edge.journal_path)
            counts = journal.counts()
            journal.close()
            unfinished_at_kill.append(written - counts.get("acknowledged", 0))
        daemon.start()
        try:
            wait_for(lambda: len(arrivals(offshore.output.folder)) >= written, 120, f"{written} photos to arrive")
            journal = Journal(edge.journal_path)
            wait_for(lambda: journal.counts().get("acknowledged") == written, 30, "every acknowledgement")
            journal.close()
        finally:
            assert daemon.stop() == 0                # SIGTERM: a clean stop
    finally:
        daemon.close()
        subscriber.stop()

    # The kills hit a daemon with work in hand, not an idle one.
    assert sum(1 for left in unfinished_at_kill if left > 0) >= 8, unfinished_at_kill
    records = arrivals(offshore.output.folder)
    names = sorted(record["source"] for record in records)
    assert names == [f"DJI_{i:04d}.JPG" for i in range(written)]        # all of them, none twice
    assert not any(edge.spool.folder.joinpath("bundles").iterdir())
