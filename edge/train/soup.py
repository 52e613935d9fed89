"""Average the weights of training checkpoints fine-tuned from the same weights (a model soup).

Runs that start from one set of weights and differ in their augmentation or seed stay in one
basin of the loss, so the mean of their weights is a network too, often better than each of
them (Wortsman et al. 2022, "Model soups"). The soup is written as a training checkpoint
without optimiser state: export it with ``edge train seg --ckpt-dir DIR --export W.pt
--export-from NAME`` or start a new run from it with ``--init-from``.

Shipped weights files (fp16 exports such as ``edge/weights/bunetv2_lite0.pt``) may be soup
members too, so the runs fine-tuned from them can be averaged with their starting point; such a
file counts as a checkpoint of float32 weights, and the soup takes its training settings from
the first real training checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edge.errors import InputError
from edge.registry import float_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="the soup checkpoint to write (e.g. RUNS/soup/last.pt)")
    parser.add_argument("checkpoints", type=Path, nargs="+",
                        help="training checkpoints (last.pt, best.pt) of runs from the same weights, or that "
                             "weights file itself; name one twice to give it twice the share")


def run(args: argparse.Namespace) -> int:
    soup = make_soup(args.checkpoints)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, args.out)
    print(f"wrote {args.out}: the mean of {len(args.checkpoints)} checkpoints")
    return 0


def make_soup(paths: list[Path]) -> dict:
    """The checkpoint whose model weights are the mean of those of ``paths``; its config is the
    first training checkpoint's (the architecture must be the same for all)."""
    if len(paths) < 2:
        raise InputError("a soup needs at least two checkpoints")
    checkpoints = [_load(Path(path)) for path in paths]
    trained = next((c for c in checkpoints if not c.get("exported")), None)
    if trained is None:   # a weights file holds no training settings, and the export needs them
        raise InputError("a soup needs at least one training checkpoint (last.pt, best.pt), not only weights files")
    first_path, first = Path(paths[0]), checkpoints[0]
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        _check_same_network(first, first_path, checkpoint, Path(path))
    model = {}
    for key, tensor in first["model"].items():
        if tensor.is_floating_point():
            # Summed in float64 so that the mean does not depend on the order of the checkpoints.
            total = sum(checkpoint["model"][key].double() for checkpoint in checkpoints)
            model[key] = (total / len(checkpoints)).to(tensor.dtype)
        else:
            model[key] = tensor.clone()  # counters such as num_batches_tracked
    return {"model": model, "config": trained.get("config", {}),
            "step": max(int(c.get("step", 0)) for c in checkpoints),
            "best": trained.get("best", {}), "soup_of": [str(path) for path in paths]}


def _load(path: Path) -> dict:
    if not path.is_file():
        raise InputError("no such checkpoint", str(path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise InputError(f"not a readable torch checkpoint ({error})", str(path)) from error
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict) and "arch" in payload:
        # A shipped weights file: its fp16 tensors are averaged in float32 like a run's.
        return {"model": float_state(payload["state_dict"]), "config": {"arch": payload["arch"]}, "exported": True}
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise InputError("neither a training checkpoint ('model' state dict) nor a weights file "
                         "('arch' and 'state_dict')", str(path))
    return payload


def _check_same_network(first: dict, first_path: Path, other: dict, path: Path) -> None:
    arch, other_arch = first.get("config", {}).get("arch"), other.get("config", {}).get("arch")
    if arch != other_arch:
        raise InputError(f"architecture {other_arch!r} differs from {arch!r} of {first_path}", str(path))
    missing = sorted(set(first["model"]) ^ set(other["model"]))
    if missing:
        raise InputError(f"its weights do not match those of {first_path}: key {missing[0]!r} is in one only "
                         f"({len(missing)} such keys)", str(path))
    for key, tensor in first["model"].items():
        if other["model"][key].shape != tensor.shape:
            raise InputError(f"key {key!r} has shape {tuple(other['model'][key].shape)}, "
                             f"{first_path} has {tuple(tensor.shape)}", str(path))
