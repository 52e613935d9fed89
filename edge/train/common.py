"""What every resumable trainer of a coder shares: its command-line options and its checkpoints."""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
from pathlib import Path

import torch

from edge.errors import ConfigError, InputError


def add_run_arguments(parser: argparse.ArgumentParser, run_dir: str, crop: int, lr: float) -> None:
    """Options of a training run: where it lives, how long, batches, threads, validation, export."""
    parser.add_argument("--run-dir", type=Path, default=Path(run_dir), help="checkpoints and logs")
    parser.add_argument("--steps", type=int, default=1_000_000, help="stop after this many steps in total")
    parser.add_argument("--minutes", type=float, default=0, help="stop after this many minutes (0: no limit)")
    parser.add_argument("--crop", type=int, default=crop)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--threads", type=int, default=1)
    # float32 by default: bf16 autocast measured 1.6x slower per step on a 2-core AVX512-BF16 Xeon
    # (no AMX); it may pay off on other hardware.
    parser.add_argument("--bf16", action="store_true", help="train under bf16 autocast")
    parser.add_argument("--val-every", type=int, default=200, help="validate every this many steps")
    parser.add_argument("--save-minutes", type=float, default=5.0, help="checkpoint at least this often")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", type=Path, metavar="WEIGHTS",
                        help="do not train: write a checkpoint of --run-dir (see --export-from) as shipped "
                             "weights (fp16 + entropy tables) to this file")
    parser.add_argument("--export-from", default="best", metavar="best|last|FILE",
                        help="which checkpoint --export writes: the run's best (else its last), its last, "
                             "or a checkpoint file (a kept copy)")


def checkpoint_to_export(run_dir: Path, source: str = "best") -> tuple[Path, dict]:
    """The checkpoint to export, (path, its contents): ``source`` is "best" (the run's best
    validation checkpoint, else its last one), "last", or the path of a checkpoint file."""
    if source == "best":
        path = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    elif source == "last":
        path = run_dir / "last.pt"
    else:
        path = Path(source)
    if not path.is_file():
        raise InputError(f"no checkpoint to export (--export-from {source})", str(path))
    return path, torch.load(path, map_location="cpu", weights_only=False)


def save_checkpoint(path: Path, model, optimizer, state: dict, config, **extra) -> None:
    """Model, optimiser, run state, config (a dataclass) and ``extra`` entries, replaced atomically."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                "config": config.__dict__, **extra}, tmp)
    tmp.replace(path)


def adopt_validation(state: dict, validation: str) -> None:
    """Record in a run's ``state`` which validation sets its best score is over. A checkpoint
    scored on other sets starts its best again: the scores do not compare."""
    if state.get("validation") != validation:
        state["best_score"] = float("inf")
    state["validation"] = validation


@contextlib.contextmanager
def exclusive_run(run_dir: Path, option: str = "--run-dir"):
    """Hold ``run_dir``'s lock while one training run uses it: a second run on the same folder
    would overwrite the first one's checkpoints. ConfigError (naming ``option``) if it is taken."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(run_dir / "train.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigError(f"another training run uses {run_dir}; stop it or choose another {option}",
                          option.lstrip("-").replace("-", "_")) from None
    try:
        yield
    finally:
        lock.close()


@contextlib.contextmanager
def logged_to_file(logger: logging.Logger, path: Path):
    """Also write ``logger``'s INFO messages, timestamped, to ``path`` (the run's train.log) meanwhile."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
