"""Moved to :mod:`edge.service.processes`; this name stays only until ``edge/bench/soak.py`` imports from there."""
from edge.service.processes import ServiceProcess

__all__ = ["ServiceProcess"]
