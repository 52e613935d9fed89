"""Moved to :mod:`edge.comms.broker`; this name stays only until ``edge/bench/soak.py`` imports from there."""
from edge.comms.broker import MosquittoBroker, find_mosquitto

__all__ = ["MosquittoBroker", "find_mosquitto"]
