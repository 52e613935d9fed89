"""Shrink training checkpoints in place to what `edge train soup` and the trainers' ``--export`` read.

``python -m edge.train.slim CKPT...`` keeps the model weights in fp16, the config, the step, the
best scores and the training time, and drops the optimiser and the random state: a
pretrained-encoder checkpoint of 45 MB becomes 7.4 MB, so that several fit in what a GPU lease
returns (scripts/gpu_burst.sh). A slimmed checkpoint no longer resumes a run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from edge.errors import InputError
from edge.registry import fp16_weights

KEPT = ("config", "step", "best", "seconds")


def slim(path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model = state["model"]
    except (OSError, RuntimeError, KeyError, TypeError) as error:
        raise InputError(f"not a training checkpoint ({error})", str(path)) from None
    kept = {"model": fp16_weights(model), **{k: state[k] for k in KEPT if k in state}}
    tmp = path.with_suffix(".tmp")
    torch.save(kept, tmp)
    tmp.replace(path)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        slim(Path(argument))
