"""Shipped weights of the implicit ROI coder: fp16 parameters plus the integer entropy tables.

As for the lossy coder, the tables are built once here from the fp16-rounded parameters (the
ones every decoder loads), so no encoder or decoder computes a probability table itself.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from edge.codec.implicit.coder import PATCH_SIZE, ImplicitCoder
from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.lossy.tables import EntropyTables, build_tables
from edge.errors import InputError, ModelError

FORMAT = "edge-implicit-weights-v1"


def model_from_state(config: dict, state_dict: dict) -> ImplicitROI:
    model = ImplicitROI(ImplicitConfig(**config))
    model.load_state_dict({k: v.float() for k, v in state_dict.items()})
    return model.eval()


def export_weights(model: ImplicitROI, path: Path, extra: dict | None = None) -> str:
    """Write fp16 weights + tables to ``path`` (atomically); returns the file's SHA-256."""
    half = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    rounded = model_from_state(model.config.__dict__, half)
    tables = build_tables(rounded.prior_z)
    payload = {"format": FORMAT, "config": dict(model.config.__dict__), "state_dict": half,
               "tables": tables.to_state(), "info": extra or {}}
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_coder(path: Path, model_name: str = "implicit-roi") -> ImplicitCoder:
    """The registry's loader: a ready ImplicitCoder from a weights file."""
    path = Path(path)
    try:
        data = path.read_bytes()
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise ModelError(f"cannot load implicit-roi weights {path}: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not an implicit-roi weights file of format {FORMAT}")
    model = model_from_state(payload["config"], payload["state_dict"])
    tables = EntropyTables.from_state(payload["tables"])
    return ImplicitCoder(model, tables, model_name, hashlib.sha256(data).hexdigest(), PATCH_SIZE)


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
