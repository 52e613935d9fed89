"""`edge eval seg DATA`: BU-Netv2+P metrics after each step and acceptance-ratio curves."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.segment.confidence import format_guard_report, guard_report
from edge.segment.evaluate import (SPLITS, evaluate_segmentation, format_table, format_tau_sweep, guard_frames,
                                   tau_sweep, write_evaluation)
from edge.segment.pipeline import SegmentSettings, load_segmenter

HELP = "segmentation metrics after each step (U-Net, fill, forest, fill) on DATA/images + DATA/masks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, metavar="DATA", help="folder with images/, masks/ and optionally index.csv")
    parser.add_argument("--split", choices=SPLITS, default="heldout",
                        help="heldout: the held-out wta-train scenes (default); all: every frame")
    parser.add_argument("--weights", type=Path, help="segmentation weights file (default: the shipped default segmenter)")
    parser.add_argument("--tau", type=float, default=SegmentSettings.tau_bu,
                        help="threshold tau_BU (default: the one stored with the weights)")
    parser.add_argument("--forest", choices=("on", "off"),
                        help="run the per-surface forest vote or not (default: as stored with the weights)")
    parser.add_argument("--tau-sweep", metavar="LIST",
                        help="instead: mean F1 of every step for each of these comma-separated tau_BU values "
                             "(choose tau_BU on training scenes: --split train)")
    parser.add_argument("--guard-report", metavar="LIST",
                        help="also: per-frame confidence and, for each of these comma-separated "
                             "min_confidence values, the frames the guard would send as source files "
                             "(calibrate on the held-out scenes)")
    parser.add_argument("--plot", type=Path, help="write the acceptance-ratio curves to this PNG")
    parser.add_argument("--json", type=Path, help="write per-frame scores and tables to this JSON file")


def run(args: argparse.Namespace) -> int:
    model = load_segmenter(args.weights)
    forest = None if args.forest is None else args.forest == "on"
    if args.tau_sweep:
        taus = [float(t) for t in args.tau_sweep.split(",")]
        sweep = tau_sweep(args.data, model, taus, SegmentSettings(use_forest=forest), args.split)
        sweep["data"] = args.data.resolve().name    # the data set, not where it lies on this machine
        if args.json:
            args.json.write_text(json.dumps(sweep, indent=1))
        print(format_tau_sweep(sweep))
        return 0
    evaluation = evaluate_segmentation(args.data, model, SegmentSettings(tau_bu=args.tau, use_forest=forest), args.split)
    evaluation["data"] = args.data.resolve().name
    write_evaluation(evaluation, args.json, args.plot)
    print(format_table(evaluation))
    if args.guard_report:
        frames = guard_frames(evaluation)
        print(format_guard_report(frames, guard_report(frames, [float(t) for t in args.guard_report.split(",")])))
    for label, key in (("wall", "seconds_per_image"), ("cpu", "cpu_seconds_per_image")):
        seconds = ", ".join(f"{k} {v:.3f}" for k, v in evaluation[key].items())
        print(f"{label} seconds per image: {seconds}")
    return 0
