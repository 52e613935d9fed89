"""`edge train promote OUT`: ship the candidates of `edge train all` that are clearly better.

For each ``OUT/KIND/candidate.pt``, the candidate and the shipped weights (``--weights-dir``) are
scored on the held-out scenes of ``--data`` (the full wta-train photos, by default
$EDGE_WTA_TRAIN, whatever the candidate was trained on) with the trainers' own validation code
(:mod:`edge.train.heldout`). A candidate ships only when its score beats the shipped one by at
least :data:`MARGIN` and none of its parts (a lossy coder's quality levels, the segmentation
network's close-ups) is worse by more than that (:func:`worse_parts`). It is then exported over
the shipped file (fp16, with the lossy coders' entropy tables, by its trainer's own export) and a
section with its steps, minutes, device and held-out numbers is added to the model card. Any
other candidate is refused with the two scores; the shipped file stays.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import inspect
import json
from pathlib import Path

import torch

from edge.errors import EdgeError, InputError
from edge.train import implicit, lossless, lossy, seg
from edge.train.all import DEFAULT_WEIGHTS
from edge.train.common import resolve_device
from edge.train.data import WTA_TRAIN_ENV, wta_train_folder
from edge.train.heldout import KINDS, SHIPPED, DataFolders, score_file

# How much lower a candidate's held-out score must be to count as clearly better: 0.1 of the
# coders' rate-distortion score is 0.1 dB at the same rate; Bit-swap's is bits per sub-pixel;
# the segmentation network's is F1 (minus).
MARGIN = {"lossy": 0.1, "implicit": 0.1, "lossless": 0.005, "seg": 0.005}
UNITS = {"lossy": "mean 10*bpp - PSNR over levels, dB", "implicit": "mean 10*bpp - ROI PSNR over levels, dB",
         "lossless": "bits per sub-pixel", "seg": "minus mean F1"}


class NothingBetter(EdgeError):
    """No candidate beat the shipped weights clearly enough to ship."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="the --out folder of `edge train all`")
    parser.add_argument("--data", type=Path, help=f"held-out scenes to compare on (default: ${WTA_TRAIN_ENV})")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS,
                        help="the shipped weights and model cards (overwritten when a candidate ships)")
    parser.add_argument("--models", default=",".join(KINDS), help="comma-separated subset to consider")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--dry-run", action="store_true", help="compare only; export nothing")


def run(args: argparse.Namespace) -> int:
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    decisions = promote(args.out, wta_train_folder(args.data), args.weights_dir, kinds, args.device, args.dry_run)
    for decision in decisions:
        print(f"{decision['kind']}: {decision['message']}")
    if not any(d["shipped"] for d in decisions) and not args.dry_run:
        raise NothingBetter("no candidate is clearly better than the shipped weights; nothing was exported")
    return 0


def promote(out: Path, data: Path, weights_dir: Path, kinds: list[str], device: str = "auto",
            dry_run: bool = False) -> list[dict]:
    out, weights_dir = Path(out), Path(weights_dir)
    device = resolve_device(device)
    folders = DataFolders.of(data)
    candidates = [(kind, out / kind / "candidate.pt") for kind in kinds if (out / kind / "candidate.pt").exists()]
    if not candidates:
        raise InputError(f"no candidate.pt of {', '.join(kinds)} (run `edge train all --out {out}` first)", str(out))
    decisions = []
    for kind, candidate in candidates:
        shipped = weights_dir / f"{SHIPPED[kind]}.pt"
        new, old = score_file(kind, candidate, folders, device), score_file(kind, shipped, folders, device)
        gain = old.value - new.value
        worse = worse_parts(kind, new.metrics, old.metrics)
        decision = {"kind": kind, "candidate": str(candidate), "score": new.value, "shipped_score": old.value,
                    "shipped": False, "worse_parts": worse}
        if gain < MARGIN[kind] or worse:
            because = (f"it must be at least {MARGIN[kind]} lower" if gain < MARGIN[kind] else
                       "but worse at " + ", ".join(f"{part} by {by:.3f}" for part, by in worse.items()))
            decision["message"] = (f"refused: held-out score {new.value:.4f} against the shipped {old.value:.4f} "
                                   f"({UNITS[kind]}; lower is better, {because}); {shipped} stays")
        elif dry_run:
            decision["message"] = f"would ship: held-out score {new.value:.4f} against the shipped {old.value:.4f}"
        else:
            digest = export(kind, candidate, shipped)
            info = torch.load(candidate, map_location="cpu", weights_only=False).get("candidate", {})
            add_to_card(weights_dir / f"{SHIPPED[kind]}.md", kind, info, new, old, data, digest)
            decision.update(shipped=True, message=f"shipped to {shipped} (sha256 {digest[:12]}...): held-out score "
                                                  f"{new.value:.4f} against {old.value:.4f} before")
        decisions.append(decision)
    return decisions


def part_scores(kind: str, metrics: dict) -> dict[str, float]:
    """The parts of a held-out score that must not get worse (lower is better): each quality
    level of a lossy coder (10*bpp - PSNR, averaged over its validation sets) and the close-ups
    of the segmentation network (minus F1). Bit-swap has one operating point: none."""
    if kind == "seg":
        return {"close-ups": -metrics["f1_closeup"]} if "f1_closeup" in metrics else {}
    if kind not in ("lossy", "implicit"):
        return {}
    psnr = "psnr" if kind == "lossy" else "roi_psnr"
    sets = [metrics[name] for name in ("val", "val_colour") if name in metrics]
    common = set.intersection(*(set(levels) for levels in sets)) if sets else set()
    return {f"level {level}": sum(10 * levels[level]["bpp"] - levels[level][psnr] for levels in sets) / len(sets)
            for level in sorted(common, key=int)}


def worse_parts(kind: str, new_metrics: dict, old_metrics: dict) -> dict[str, float]:
    """Parts in which the candidate is worse than the shipped weights by more than the margin.

    A better mean can hide a worse part: the background is coded at a lossy coder's lowest
    levels, and the close-ups are the photos the blade specialists read."""
    new, old = part_scores(kind, new_metrics), part_scores(kind, old_metrics)
    return {part: new[part] - old[part] for part in new if part in old and new[part] - old[part] > MARGIN[kind]}


def export(kind: str, candidate: Path, shipped: Path) -> str:
    """Write ``candidate`` over ``shipped`` with its trainer's export (written aside, then moved); SHA-256."""
    tmp = shipped.with_name(shipped.stem + ".promoted.tmp")
    if kind == "lossy":
        lossy.export_checkpoint(candidate.parent, tmp, str(candidate))
    elif kind == "implicit":
        implicit.export_checkpoint(candidate.parent, tmp, str(candidate))
    elif kind == "lossless":
        latent_bins = torch.load(shipped, map_location="cpu", weights_only=True).get("latent_bins", 256)
        lossless.export_weights(candidate, tmp, latent_bins)
    else:
        # Settings stored with the shipped weights (tau_BU, the confidence guard, the forest vote)
        # carry over: every export option named like one of them.
        config = torch.load(shipped, map_location="cpu", weights_only=True)["config"]
        options = inspect.signature(seg.export_weights).parameters
        kept = {name: value for name, value in config.items() if name in options}
        seg.export_weights(candidate, tmp, config.get("threshold", 0.5), **kept)
    tmp.replace(shipped)
    return hashlib.sha256(shipped.read_bytes()).hexdigest()


def add_to_card(card: Path, kind: str, info: dict, new, old, data: Path, digest: str) -> None:
    """Append what shipped, how it was trained and its held-out numbers to the model card."""
    today = datetime.date.today().isoformat()
    lines = [
        "", f"## Retrained with `edge train all` (shipped {today})",
        f"{info.get('steps_trained', '?')} steps from the weights before (their step "
        f"{info.get('start_step', '?')}) in {info.get('minutes', '?')} min on {info.get('device_name', '?')} "
        f"(`--device {info.get('device', '?')}`), trained on {Path(info.get('data', '?')).name}; the run's own "
        f"held-out score there {info.get('heldout_score', '?')} (shipped {info.get('shipped_heldout_score', '?')}).",
        f"Compared by `edge train promote` on the held-out scenes of {Path(data).name} ({UNITS[kind]}, lower is "
        f"better): {new.value:.4f} against {old.value:.4f} for the weights it replaces. SHA-256 {digest}.",
        "", "```", json.dumps(new.metrics, indent=None, default=str), "```",
    ]
    with card.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
