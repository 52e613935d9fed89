"""Shipped weights of the implicit ROI coder: fp16 parameters plus the integer entropy tables.

As for the lossy coder, the tables are built once here from the fp16-rounded parameters (the
ones every decoder loads), so no encoder or decoder computes a probability table itself.
"""
from __future__ import annotations

from pathlib import Path

from edge.codec.implicit.coder import PATCH_SIZE, ImplicitCoder
from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.lossy.tables import EntropyTables
from edge.codec.lossy.weights import read_weights, write_weights
from edge.registry import float_state

FORMAT = "edge-implicit-weights-v1"


def model_from_state(config: dict, state_dict: dict) -> ImplicitROI:
    model = ImplicitROI(ImplicitConfig(**config))
    model.load_state_dict(float_state(state_dict))
    return model.eval()


def export_weights(model: ImplicitROI, path: Path, extra: dict | None = None) -> str:
    """Write fp16 weights + tables to ``path`` (atomically); returns the file's SHA-256."""
    return write_weights(model, model_from_state, FORMAT, path, extra)


def load_coder(path: Path, model_name: str = "implicit-roi") -> ImplicitCoder:
    """The registry's loader: a ready ImplicitCoder from a weights file."""
    payload, sha256 = read_weights(path, FORMAT, "implicit-roi")
    model = model_from_state(payload["config"], payload["state_dict"])
    tables = EntropyTables.from_state(payload["tables"])
    return ImplicitCoder(model, tables, model_name, sha256, PATCH_SIZE)
