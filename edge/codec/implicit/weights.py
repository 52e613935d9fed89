"""Shipped weights of the implicit ROI coder: fp16 parameters plus the integer entropy tables.

As for the lossy coder, the tables are built once here from the fp16-rounded parameters (the
ones every decoder loads), so no encoder or decoder computes a probability table itself.
"""
from __future__ import annotations

from pathlib import Path

import torch

from edge.codec.implicit.coder import PATCH_SIZE, ImplicitCoder
from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.lossy.tables import EntropyTables
from edge.codec.lossy.weights import read_weights, write_weights
from edge.errors import InputError

FORMAT = "edge-implicit-weights-v1"


def model_from_state(config: dict, state_dict: dict) -> ImplicitROI:
    model = ImplicitROI(ImplicitConfig(**config))
    model.load_state_dict({k: v.float() for k, v in state_dict.items()})
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


def export_checkpoint(run_dir: Path, weights: Path) -> str:
    """Shipped weights from a training run's best checkpoint (or its last); returns their SHA-256."""
    path = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    if not path.exists():
        raise InputError("no checkpoint to export (best.pt or last.pt)", str(run_dir))
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = ImplicitROI(ImplicitConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    state = checkpoint["state"]
    info = {"checkpoint": path.name, "step": state["step"], "train_seconds": round(state.get("seconds", 0)),
            "validation": checkpoint.get("metrics")}
    return export_weights(model, weights, info)
