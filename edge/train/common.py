"""What every resumable trainer of a coder shares: its command-line options and its checkpoints."""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
from pathlib import Path

import numpy as np
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
    parser.add_argument("--warmup", type=int, default=500,
                        help="steps of linear learning-rate warm-up of a run started with --init-from: "
                             "Adam's moments start at zero, and at the full rate its first step moves "
                             "every weight by the rate (measured: HP+EASN-deep 7.6 dB worse at q4)")
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


def start_warmup(state: dict, steps: int) -> None:
    """Ramp the learning rate up over the next ``steps`` steps (a run started from weights)."""
    state["warmup_end"], state["warmup_length"] = state["step"] + steps, steps


def warmup_factor(state: dict) -> float:
    """The share of the learning rate at this step of a run's warm-up (1 outside one)."""
    length = state.get("warmup_length", 0)
    if not length or state["step"] >= state["warmup_end"]:
        return 1.0
    return (state["step"] - (state["warmup_end"] - length) + 1) / length


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


# -- devices -----------------------------------------------------------------------------------
# Batches of crops per step on a GPU, where a CPU run takes 2-4: the hyperprior family of coders
# (Balle et al. 2018, Minnen et al. 2018) trains on 8-16 crops of 256x256 per step.
GPU_BATCH = {"lossy": 16, "implicit": 16, "lossless": 128, "seg": 16}


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--workers``, shared by every trainer."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to train: auto = cuda when a GPU is visible, else cpu. On cuda the "
                             "networks run under bf16 autocast (rates and likelihoods in float32), "
                             "channels-last, fed by --workers loader processes")
    parser.add_argument("--workers", type=int, default=-1,
                        help="processes preparing batches (default: 0 on cpu, 6 on cuda)")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device`` auto|cpu|cuda; ConfigError when cuda is asked for and absent."""
    if name not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {name!r}", "device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA GPU (torch.cuda.is_available() is False; "
                          f"torch {torch.__version__})", "device")
    if name == "cuda":
        # Fixed input sizes every step: let cuDNN pick the fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True
    return torch.device(name)


def loader_workers(workers: int, device: torch.device) -> int:
    """``--workers`` resolved: -1 means 0 on the CPU (the loop as it always was), 6 on a GPU."""
    return (6 if device.type == "cuda" else 0) if workers < 0 else workers


def on_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` moved to ``device``; channels-last on a GPU (faster convolutions under bf16).
    On the CPU it stays contiguous NCHW: torch's CPU bf16 convolution backward corrupts the heap
    on channels-last tensors."""
    if device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def batch_on_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch tensor on ``device`` (channels-last there when it is a 4-D image batch on a GPU)."""
    if device.type != "cuda":
        return x
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when asked for; the models keep rates and likelihoods in float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches from ``make_batch(rng)``; each loader process draws with its own seed."""

    def __init__(self, make_batch, seed: int):
        self.make_batch, self.seed = make_batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            yield self.make_batch(rng)


def batches(make_batch, seed: int, workers: int):
    """An endless iterator of batches from ``make_batch(rng)``: in loader processes when
    ``workers`` > 0 (pinned memory, for a GPU), else nothing but ``make_batch`` in this process."""
    if workers <= 0:
        return None
    loader = torch.utils.data.DataLoader(_BatchStream(make_batch, seed), batch_size=None, num_workers=workers,
                                         pin_memory=torch.cuda.is_available(), prefetch_factor=4,
                                         persistent_workers=True)
    return iter(loader)


# -- shipped weights, read without the coders (whose modules need the entropy coder) -----------
LOSSY_FORMAT = "edge-lossy-weights-v1"          # edge.codec.lossy.weights.FORMAT
IMPLICIT_FORMAT = "edge-implicit-weights-v1"    # edge.codec.implicit.weights.FORMAT


def read_shipped(path: Path, format_name: str | None = None) -> dict:
    """The payload of a shipped weights file (fp16 state dict, config, ...), loaded on the CPU.

    Training machines need not have the entropy coder installed, so this reads the file with
    torch alone. ``format_name``: the format the file must declare. InputError naming the file
    otherwise."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as error:
        raise InputError(f"cannot be read as shipped weights: {error}", str(path)) from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
        raise InputError("is not a shipped weights file (no state_dict and config)", str(path))
    if format_name is not None and payload.get("format") != format_name:
        raise InputError(f"is not a weights file of format {format_name} (it says {payload.get('format')!r})",
                         str(path))
    return payload
