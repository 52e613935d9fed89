"""Shipped weights of the lossy coder: fp16 parameters plus the integer entropy tables.

The tables are built here, once, from the fp16-rounded parameters (the ones every decoder
loads), so encoder and decoder never compute a probability table themselves.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from edge.codec.lossy.coder import PATCH_SIZE, LossyCoder
from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
from edge.codec.lossy.tables import EntropyTables, build_tables
from edge.errors import ModelError
from edge.registry import float_state, write_weights_file

FORMAT = "edge-lossy-weights-v1"


def model_from_state(config: dict, state_dict: dict) -> HyperpriorEASN:
    model = HyperpriorEASN(LossyConfig(**config))
    model.load_state_dict(float_state(state_dict))
    return model.eval()


def write_weights(model, rebuild, format_name: str, path: Path, extra: dict | None = None) -> str:
    """Write ``model``'s fp16 parameters and entropy tables to ``path`` (atomically); the file's SHA-256.

    ``rebuild(config, state_dict)`` gives back the model every decoder will load (fp16-rounded),
    and the tables are built from that one.
    """
    half = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    rounded = rebuild(model.config.__dict__, half)
    tables = build_tables(rounded.prior_z)
    payload = {"format": format_name, "config": dict(model.config.__dict__), "state_dict": half,
               "tables": tables.to_state(), "info": extra or {}}
    return write_weights_file(payload, path)


def read_weights(path: Path, format_name: str, label: str) -> tuple[dict, str]:
    """(payload, SHA-256 of the file) of a weights file of ``format_name``; ModelError otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise ModelError(f"cannot load {label} weights {path}: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != format_name:
        article = "an" if label[0] in "aeiou" else "a"
        raise ModelError(f"{path} is not {article} {label} weights file of format {format_name}")
    return payload, hashlib.sha256(data).hexdigest()


def export_weights(model: HyperpriorEASN, path: Path, extra: dict | None = None) -> str:
    """Write fp16 weights + tables to ``path`` (atomically); returns the file's SHA-256."""
    return write_weights(model, model_from_state, FORMAT, path, extra)


def load_coder(path: Path, model_name: str = "hp-easn") -> LossyCoder:
    """The registry's loader: a ready LossyCoder from a weights file."""
    payload, sha256 = read_weights(path, FORMAT, "lossy")
    model = model_from_state(payload["config"], payload["state_dict"])
    tables = EntropyTables.from_state(payload["tables"])
    return LossyCoder(model, tables, model_name, sha256, PATCH_SIZE)
