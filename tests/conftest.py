"""Shared fixtures: a real Mosquitto broker on a free loopback port."""
from __future__ import annotations

import pytest

from edge.comms.broker import MosquittoBroker, find_mosquitto


@pytest.fixture
def broker(tmp_path):
    """A fresh Mosquitto (persistence on, unlimited queues) in its own folder; stopped afterwards.

    Tests may ``kill()`` it and ``start()`` it again on the same port.
    """
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/install.sh installs it: apt-get install mosquitto)")
    server = MosquittoBroker(tmp_path / "broker").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def services():
    """``services(thing)`` starts a daemon, subscriber ... and stops them in reverse order afterwards."""
    started = []

    def start(thing):
        thing.start()
        started.append(thing)
        return thing

    yield start
    for thing in reversed(started):
        thing.stop()
