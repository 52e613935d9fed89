"""Evaluate BU-Netv2+P on a labelled data directory, step by step (paper's Table I).

Every surface of the chosen split is segmented with :func:`segment_surface` keeping the masks
after each step; each mask is scored against the ground truth at photo size. The result is a
JSON-ready dict; the table and the acceptance-ratio plot are drawn from it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.segment.dataset import group_by_surface, is_held_out, list_frames, read_mask, read_rgb
from edge.segment.metrics import METRIC_NAMES, FrameScores, acceptance_curve, frame_scores, summarise
from edge.segment.pipeline import (STEPS, SegmentSettings, postprocess, segment_surface, unet_probabilities,
                                   with_model_defaults)
from edge.segment.unet import BUNetV2

STEP_LABELS = {"unet": "BU-Netv2", "fill": "+ hole fill", "forest": "+ forest vote", "final": "+ hole fill (final)"}
SPLITS = ("heldout", "train", "all")
CURVE_METRICS = ("accuracy", "recall")


def select_frames(data_dir: Path, split: str):
    frames = list_frames(Path(data_dir))
    if split == "heldout":
        frames = [f for f in frames if is_held_out(f.name)]
    elif split == "train":
        frames = [f for f in frames if not is_held_out(f.name)]
    elif split != "all":
        raise InputError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if not frames:
        raise InputError(f"no frames in split {split!r}", str(data_dir))
    return frames


def evaluate_segmentation(data_dir: Path, model: BUNetV2, settings: SegmentSettings = SegmentSettings(),
                          split: str = "heldout") -> dict:
    """Per-frame scores after every step, summary tables and acceptance curves, as a dict."""
    frames_out = []
    seconds = dict.fromkeys(STEPS + ("upscale",), 0.0)
    cpu_seconds = dict(seconds)
    for surface, frames in group_by_surface(select_frames(data_dir, split)).items():
        images = [read_rgb(f.image_path) for f in frames]
        truths = [read_mask(f.mask_path, rgb.shape[:2]) for f, rgb in zip(frames, images)]
        result = segment_surface(images, model, settings, keep_steps=True)
        for key in seconds:
            seconds[key] += result.seconds[key]
            cpu_seconds[key] += result.cpu_seconds[key]
        for i, frame in enumerate(frames):
            frames_out.append({
                "name": frame.name, "view": frame.view, "surface": surface,
                "confidence": result.confidence[i], "unsure": result.unsure[i],
                "scores": {step: frame_scores(result.steps[step][i], truths[i]).as_dict() for step in STEPS},
            })
    count = len(frames_out)
    return summarise_frames(frames_out, {k: v / count for k, v in seconds.items()},
                            {"data": str(data_dir), "split": split, "settings": repr(settings),
                             "tau_bu": model.config.threshold if settings.tau_bu is None else settings.tau_bu,
                             "cpu_seconds_per_image": {k: v / count for k, v in cpu_seconds.items()}})


def guard_frames(evaluation: dict) -> list[dict]:
    """Confidence, final recall and F1 of each evaluated frame with blade (for the guard report)."""
    return [{"name": f["name"], "view": f["view"], "confidence": f["confidence"],
             "recall": f["scores"]["final"]["recall"], "f1": f["scores"]["final"]["f1"]}
            for f in evaluation["frames"] if f["scores"]["final"]["has_blade"]]


def tau_sweep(data_dir: Path, model: BUNetV2, taus: list[float],
              settings: SegmentSettings = SegmentSettings(), split: str = "train") -> dict:
    """Mean F1 after every step for each threshold tau_BU (U-Net run once per photo).

    Choose tau_BU on training scenes (``split="train"``), never on the held-out ones.
    """
    per_tau: dict[float, list[dict]] = {tau: [] for tau in taus}
    settings = with_model_defaults(settings, model)
    for surface, frames in group_by_surface(select_frames(data_dir, split)).items():
        images = [read_rgb(f.image_path) for f in frames]
        truths = [read_mask(f.mask_path, rgb.shape[:2]) for f, rgb in zip(frames, images)]
        probabilities = unet_probabilities(images, model, settings)
        for tau in taus:
            result = postprocess(images, probabilities, tau, settings, keep_steps=True)
            for i, frame in enumerate(frames):
                per_tau[tau].append({"view": frame.view, "scores": {
                    step: frame_scores(result.steps[step][i], truths[i]) for step in STEPS}})
    results = {}
    for tau, frames_scored in per_tau.items():
        subsets = {"all": frames_scored, "closeup": [f for f in frames_scored if f["view"] == "closeup"]}
        results[str(tau)] = {name: {step: summarise([f["scores"][step] for f in subset])["f1"] for step in STEPS}
                             for name, subset in subsets.items() if subset}
    return {"data": str(data_dir), "split": split, "taus": taus, "f1": results}


def format_tau_sweep(sweep: dict) -> str:
    """Markdown table: mean F1 of each step and subset, one row per tau_BU."""
    columns = [(subset, step) for subset in ("all", "closeup") for step in STEPS
               if subset in next(iter(sweep["f1"].values()))]
    lines = ["| tau_BU | " + " | ".join(f"{subset} {step}" for subset, step in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for tau, table in sweep["f1"].items():
        lines.append(f"| {tau} | " + " | ".join(f"{table[subset][step]:.4f}" for subset, step in columns) + " |")
    return "\n".join(lines)


def summarise_frames(frames: list[dict], seconds_per_image: dict[str, float], meta: dict) -> dict:
    """Tables (all frames with blade, close-ups) and acceptance curves from per-frame scores."""
    def scores_of(step: str, subset: list[dict]) -> list[FrameScores]:
        fields = FrameScores.__dataclass_fields__
        return [FrameScores(**{k: f["scores"][step][k] for k in fields}) for f in subset]

    subsets = {"all": frames, "closeup": [f for f in frames if f["view"] == "closeup"]}
    tables = {name: {step: summarise(scores_of(step, subset)) for step in STEPS}
              for name, subset in subsets.items() if subset}
    counts = {name: sum(s.has_blade for s in scores_of(STEPS[0], subset)) for name, subset in subsets.items()}
    curves = {}
    for metric in CURVE_METRICS:
        curves[metric] = {}
        for step in STEPS:
            values = [getattr(s, metric) for s in scores_of(step, frames) if s.has_blade]
            thresholds, ratios, area = acceptance_curve(values)
            curves[metric][step] = {"thresholds": thresholds.tolist(), "ratios": ratios.tolist(), "area": area}
    return {**meta, "frames": frames, "counts": counts, "tables": tables, "curves": curves,
            "seconds_per_image": seconds_per_image}


def format_table(evaluation: dict) -> str:
    """Markdown tables: metrics after each step, per subset, plus the acceptance-curve areas."""
    lines = []
    for subset, table in evaluation["tables"].items():
        count = evaluation["counts"].get(subset, 0)
        lines.append(f"{subset} frames with blade: {count}")
        lines.append("| step | " + " | ".join(METRIC_NAMES) + " |")
        lines.append("|---" * (len(METRIC_NAMES) + 1) + "|")
        for step in STEPS:
            values = " | ".join(f"{table[step][m]:.4f}" for m in METRIC_NAMES)
            lines.append(f"| {STEP_LABELS[step]} | {values} |")
        lines.append("")
    lines.append("| step | " + " | ".join(f"area({m})" for m in CURVE_METRICS) + " |")
    lines.append("|---" * (len(CURVE_METRICS) + 1) + "|")
    for step in STEPS:
        areas = " | ".join(f"{evaluation['curves'][m][step]['area']:.4f}" for m in CURVE_METRICS)
        lines.append(f"| {STEP_LABELS[step]} | {areas} |")
    return "\n".join(lines)


def plot_acceptance(evaluation: dict, path: Path) -> None:
    """Acceptance-ratio curves (one panel per metric, one line per step) to a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(5 * len(CURVE_METRICS), 4))
    for axis, metric in zip(np.atleast_1d(axes), CURVE_METRICS):
        for step in STEPS:
            curve = evaluation["curves"][metric][step]
            axis.plot(curve["thresholds"], curve["ratios"], label=f"{STEP_LABELS[step]} (area {curve['area']:.3f})")
        axis.set_xlabel(f"{metric} threshold")
        axis.set_ylabel("fraction of frames accepted")
        axis.set_xlim(0.8 if metric == "accuracy" else 0.0, 1.0)
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower left", fontsize=8)
    figure.suptitle(f"Acceptance ratio, {Path(evaluation['data']).name} ({evaluation['split']})")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_evaluation(evaluation: dict, json_path: Path | None, plot_path: Path | None) -> None:
    if json_path is not None:
        Path(json_path).write_text(json.dumps(evaluation, indent=1))
    if plot_path is not None:
        plot_acceptance(evaluation, Path(plot_path))


def time_segmentation(image_paths: list[Path], model: BUNetV2,
                      settings: SegmentSettings = SegmentSettings()) -> dict[str, float]:
    """Wall and CPU seconds per photo of each step, the photos taken as one surface.

    Photo decoding is timed too but is not part of ``total``.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    images = [read_rgb(Path(p)) for p in image_paths]
    count = len(images)
    decode = {"wall": (time.perf_counter() - wall) / count, "cpu": (time.process_time() - cpu) / count}
    result = segment_surface(images, model, settings)
    steps = {step: {"wall": result.seconds[step] / count, "cpu": result.cpu_seconds[step] / count}
             for step in result.seconds}
    total = {kind: sum(step[kind] for step in steps.values()) for kind in ("wall", "cpu")}
    megapixels = float(np.mean([rgb.shape[0] * rgb.shape[1] for rgb in images])) / 1e6
    return {"images": count, "megapixels": round(megapixels, 2), "decode": decode, **steps,
            "total": total, "blade_fraction": float(np.mean([m.mean() for m in result.masks]))}
