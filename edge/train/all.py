"""`edge train all`: train every model from its shipped weights within one time budget.

Each model (lossy HP+EASN-deep, Bit-swap, implicit-roi, BU-Netv2) trains with its own trainer
(`edge train KIND`, in a process of its own, so that one failure or hang costs only that model),
starting from the shipped weights (``--weights-dir``, default edge/weights) with ``--init-from``.

Budget: on a GPU the trainers run side by side (``--jobs``, default all four: none of them fills
an H200 alone) and each has the whole budget; on the CPU they run one after another, each with
its share (:data:`SHARES`). About a tenth of the budget is kept for loading and for the final
validation. A trainer still running at the end of its time is interrupted; its last
checkpoint stands.

Then each model's checkpoints (best and last) and the shipped weights are scored on the held-out
scenes with the trainers' own validation code (:mod:`edge.train.heldout`), and ``OUT`` gets:

- ``OUT/KIND/candidate.pt``: the better checkpoint, fp16, in its trainer's checkpoint shape
  (what `edge train promote` and the trainers' ``--export`` read);
- ``OUT/KIND/``: the run folder (train.log / train.log.jsonl, ``stdout.log``), last.pt deleted
  unless ``--keep-checkpoints`` (they are large);
- ``OUT/summary.json``: per model the steps, minutes and device, the held-out scores of the
  shipped weights and of the candidate, and whether the candidate is better.

`edge train promote OUT` then decides what ships.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from edge.errors import ConfigError
from edge.registry import fp16_weights
from edge.train.common import resolve_device
from edge.train.data import WTA_TRAIN_ENV, wta_train_folder
from edge.train.heldout import KINDS, SHIPPED, DataFolders, load_model, score, score_file

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
# Share of a CPU budget per model (one after another); on a GPU each has the whole budget.
SHARES = {"lossy": 0.35, "lossless": 0.2, "implicit": 0.25, "seg": 0.2}
RESERVE = 0.1            # of the budget, for loading, the final validation and writing
STARTUP_SECONDS = 20     # a trainer's own loading time, not counted in its --minutes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for runs, candidates and summary.json")
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget for all models together")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data", type=Path,
                        help="a wta-train folder (images/, masks/) or a packed set (scripts/gpu_burst.sh pack); "
                             f"default: ${WTA_TRAIN_ENV}")
    parser.add_argument("--synth", type=Path, help="an `edge synth` inspection: extra training frames "
                                                   "for the lossy coder and the segmentation network")
    parser.add_argument("--models", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS,
                        help="shipped weights to start from (hp_easn.pt, bitswap.pt, implicit_roi.pt, bunetv2.pt)")
    parser.add_argument("--jobs", type=int, default=0, help="models trained at once (default: all on cuda, 1 on cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per trainer (default: cores / jobs)")
    parser.add_argument("--val-crops", type=int, default=256, help="Bit-swap validation crops")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each run's last.pt and best.pt")


def run(args: argparse.Namespace) -> int:
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    summary = train_all(args.out, args.minutes, args.device, wta_train_folder(args.data), kinds, args.weights_dir,
                        args.jobs, args.threads, args.synth, args.val_crops, args.keep_checkpoints)
    for kind, entry in summary["models"].items():
        print(f"{kind}: {entry['verdict']}")
    print(f"summary: {args.out / 'summary.json'}")
    return 0 if all(e.get("candidate") for e in summary["models"].values()) else 1


def trainer_arguments(kind: str, device: torch.device, data: DataFolders, run_dir: Path, init: Path,
                      minutes: float, threads: int, val_crops: int, workers: int = -1) -> list[str]:
    """The `edge train KIND` command line of one model's run (``workers``: its loader processes, for
    the segmentation trainer its augmenting threads)."""
    config = load_model(kind, init)[2]
    gpu = device.type == "cuda"
    common = ["--device", device.type, "--threads", str(threads), "--init-from", str(init), "--workers", str(workers)]
    if kind == "lossy":
        dirs = [data.crops / "images"] + ([data.synth] if data.synth else [])
        return [*map(str, dirs), "--run-dir", str(run_dir), "--minutes", f"{minutes:.3f}",
                "--n", str(config["n"]), "--m", str(config["m"]), "--crop", "256" if gpu else "128",
                "--batch", "16" if gpu else "2", "--val-every", "250" if gpu else "1000000000", "--save-minutes", "1",
                *common]
    if kind == "implicit":
        return [str(data.crops), "--run-dir", str(run_dir), "--minutes", f"{minutes:.3f}",
                "--scale", str(data.implicit_scale), "--synthetic", "0", "--crop", "256" if gpu else "128",
                "--batch", "16" if gpu else "2", "--val-every", "250" if gpu else "1000000000", "--save-minutes", "1",
                *common]
    if kind == "lossless":
        shape = [f"--{name.replace('_', '-')}={config[name]}"
                 for name in ("width", "depth", "levels", "latent_channels", "pixel_stages")]
        # Fine-tuning: a short warm-up to a flat low rate (no cosine over an unknown step count).
        return ["--data", str(data.crops), "--ckpt-dir", str(run_dir), "--minutes", f"{minutes:.3f}", *shape,
                "--batch", "128" if gpu else "8", "--lr", "1e-4", "--lr-min", "1e-4", "--warmup", "200",
                "--steps", "1000000000", "--eval-every", "250" if gpu else "1000000000",
                "--ckpt-every", "250" if gpu else "25", "--val-crops", str(val_crops), *common]
    if kind == "seg":
        dirs = [data.frames] + ([data.synth] if data.synth else [])
        shape = ["--arch", config["arch"], "--long-side", str(config["input_long_side"])]
        if "base_width" in config:
            shape += ["--base-width", str(config["base_width"])]
        return [*(arg for d in dirs for arg in ("--data", str(d))), "--ckpt-dir", str(run_dir), *shape,
                # Crops of 256 and at least 4 a batch, as the shipped weights were trained: the
                # BatchNorm statistics of 2 crops of 128 alone took held-out F1 from 0.52 to 0.24.
                "--batch", "16" if gpu else "4", "--crop", "256", "--lr", "2e-4", "--minutes", f"{minutes:.3f}",
                "--steps", "1000000000", "--eval-every", "250" if gpu else "1000000000",
                "--ckpt-every", "50" if gpu else "1", *common]
    raise ConfigError(f"unknown model {kind!r} (known: {', '.join(KINDS)})", "models")


def _checkpoints(kind: str, run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / "best.pt", run_dir / "last.pt") if p.exists()]


def rounded_to_fp16(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its weights rounded through fp16 as ``write_candidate`` stores them, so that the
    score recorded for a candidate is the score of the file written."""
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(value.half().float())
    return model


def write_candidate(kind: str, checkpoint: Path, path: Path, info: dict) -> None:
    """``checkpoint`` in fp16, in its trainer's checkpoint shape without the optimiser, plus ``info``."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    metrics = info.get("heldout", {}).get("val")      # what the coders' exports record as validation
    if kind == "lossy":
        kept = {"model": fp16_weights(state.get("average", state["model"])), "config": state["config"],
                "state": {"step": state["state"]["step"]}, "metrics": metrics}
    elif kind == "implicit":
        kept = {"model": fp16_weights(state["model"]), "config": state["config"], "metrics": metrics,
                "state": {"step": state["state"]["step"], "seconds": state["state"].get("seconds", 0.0)}}
    elif kind == "lossless":
        kept = {"model": fp16_weights(state["model"]), "model_config": state["model_config"], "step": state["step"],
                "best": state.get("best", float("nan"))}
    else:
        kept = {"model": fp16_weights(state["model"]), "config": state["config"], "step": state["step"],
                "best": state.get("best", {})}
    tmp = path.with_suffix(".tmp")
    torch.save({**kept, "candidate": info}, tmp)
    tmp.replace(path)


# A trainer's process: a process started from a background shell inherits SIGINT ignored, so the
# trainer gets Python's own handler back, and an interrupt ends it as Ctrl-C would.
_TRAINER = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from edge.cli import main; sys.exit(main(sys.argv[1:]))")


def _run_trainers(jobs: list[tuple[str, list[str], float, Path]], parallel: int,
                  grace: float = 60.0) -> dict[str, dict]:
    """Run ``(kind, argv, seconds, run_dir)`` trainers, ``parallel`` at a time; per kind its exit
    status and wall time. Every trainer has ``--minutes`` and stops itself; one still running
    ``grace`` seconds after its time (enough for its last validation and checkpoint) is interrupted."""
    results, pending, running = {}, list(jobs), {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    while pending or running:
        while pending and len(running) < parallel:
            kind, argv, seconds, run_dir = pending.pop(0)
            out = (run_dir / "stdout.log").open("w")
            command = [sys.executable, "-c", _TRAINER, "train", kind, *argv]
            out.write(" ".join(["edge", "train", kind, *argv]) + "\n")
            out.flush()
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
            running[kind] = [process, time.monotonic(), seconds, out, False]
            log.info("%s: training for about %.0f s (log %s)", kind, seconds, run_dir / "stdout.log")
        time.sleep(0.5)
        for kind, job in list(running.items()):
            process, started, seconds, out, interrupted = job
            elapsed = time.monotonic() - started
            stop_at = seconds + grace
            if process.poll() is not None:
                out.close()
                results[kind] = {"returncode": process.returncode, "wall_seconds": round(elapsed, 1),
                                 "interrupted": interrupted}
                del running[kind]
            elif interrupted and elapsed > stop_at + 30:
                process.kill()
            elif not interrupted and elapsed > stop_at:
                process.send_signal(signal.SIGINT)
                job[4] = True
    return results


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


def train_all(out: Path, minutes: float, device: str, data: Path, kinds: list[str], weights_dir: Path,
              jobs: int = 0, threads: int = 0, synth: Path | None = None, val_crops: int = 256,
              keep_checkpoints: bool = False) -> dict:
    if unknown := [k for k in kinds if k not in KINDS]:
        raise ConfigError(f"unknown models {unknown} (known: {', '.join(KINDS)})", "models")
    if minutes <= 0:
        raise ConfigError(f"--minutes must be positive, not {minutes}", "minutes")
    device = resolve_device(device)
    folders = DataFolders.of(data, synth)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parallel = jobs or (len(kinds) if device.type == "cuda" else 1)
    gpu = device.type == "cuda"
    threads = threads or (2 if gpu else max(1, (os.cpu_count() or 1) // parallel))   # a GPU run's CPU work is the loaders
    budget = minutes * 60 * (1 - RESERVE)
    began = time.monotonic()

    plans = []
    for kind in kinds:
        init = Path(weights_dir) / f"{SHIPPED[kind]}.pt"
        seconds = budget if parallel >= len(kinds) else budget * SHARES[kind] / sum(SHARES[k] for k in kinds) * \
            min(parallel, len(kinds))
        train_minutes = max(0.05, (seconds - STARTUP_SECONDS) / 60)
        run_dir = out / kind
        run_dir.mkdir(exist_ok=True)
        # Loader processes on a GPU: the cores left over by the trainers, shared among them.
        workers = max(1, ((os.cpu_count() or 1) - threads * parallel) // parallel) if gpu else 0
        argv = trainer_arguments(kind, device, folders, run_dir, init, train_minutes, threads, val_crops, workers)
        plans.append((kind, argv, seconds, run_dir))
    results = _run_trainers(plans, parallel)
    trained_seconds = time.monotonic() - began

    summary = {"device": device.type, "device_name": _device_name(device), "minutes_budget": minutes,
               "data": str(data), "weights_dir": str(weights_dir), "models": {}}
    for kind in kinds:
        summary["models"][kind] = _judge(kind, out / kind, Path(weights_dir) / f"{SHIPPED[kind]}.pt", folders,
                                         device, results.get(kind, {}), val_crops, summary)
        if not keep_checkpoints:
            for path in _checkpoints(kind, out / kind):
                path.unlink()
        # Written after each model, so that a run cut short keeps what was judged.
        summary["wall_minutes"] = round((time.monotonic() - began) / 60, 2)
        summary["training_minutes"] = round(trained_seconds / 60, 2)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _judge(kind: str, run_dir: Path, shipped: Path, data: DataFolders, device: torch.device, result: dict,
           val_crops: int, summary: dict) -> dict:
    """Score the shipped weights and the run's checkpoints; keep the best checkpoint as the candidate."""
    entry = {"trainer": result, "log": str(run_dir / "stdout.log")}
    try:
        log.info("%s: scoring the shipped weights %s on the held-out scenes", kind, shipped)
        base = score_file(kind, shipped, data, device, val_crops)
        entry["shipped"] = {"file": str(shipped), "step": base.step, "score": round(base.value, 4),
                            "metrics": base.metrics}
        scored = []
        for checkpoint in _checkpoints(kind, run_dir):
            log.info("%s: scoring %s", kind, checkpoint)
            model, step, _ = load_model(kind, checkpoint)
            scored.append((score(kind, rounded_to_fp16(model), data, device, val_crops), checkpoint, step))
        if not scored:
            entry["verdict"] = f"no checkpoint written (trainer exit status {result.get('returncode')}; see {entry['log']})"
            return entry
        best, checkpoint, step = min(scored, key=lambda item: item[0].value)
        steps_trained = step - base.step if kind in ("lossy", "implicit") else step   # the others count from 0
        info = {"kind": kind, "device": summary["device"], "device_name": summary["device_name"],
                "minutes": round(result.get("wall_seconds", 0) / 60, 2), "start_step": base.step, "step": step,
                "steps_trained": steps_trained,
                "data": summary["data"], "heldout_score": round(best.value, 4), "heldout": best.metrics,
                "shipped_heldout_score": round(base.value, 4), "from": checkpoint.name}
        write_candidate(kind, checkpoint, run_dir / "candidate.pt", info)
        entry.update(candidate=str(run_dir / "candidate.pt"), step=step, steps_trained=steps_trained,
                     score=round(best.value, 4), metrics=best.metrics, better=best.value < base.value)
        entry["verdict"] = (f"held-out score {best.value:.4f} (shipped {base.value:.4f}, lower is better) after "
                            f"{entry['steps_trained']} steps; candidate {entry['candidate']}")
    except Exception as error:  # one model's failure must not lose the others' results
        log.exception("%s: scoring failed", kind)
        entry["verdict"] = f"failed: {type(error).__name__}: {error}"
    return entry
