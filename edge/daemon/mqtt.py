"""Moved to :mod:`edge.comms`; this name stays only until ``edge/bench/soak.py`` imports from there."""
from edge.comms.topics import Topics

__all__ = ["Topics"]
