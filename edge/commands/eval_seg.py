"""`edge eval seg DATA`: BU-Netv2+P metrics after each step and acceptance-ratio curves."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.segment.evaluate import SPLITS, evaluate_segmentation, format_table, write_evaluation
from edge.segment.pipeline import SegmentSettings, load_segmenter

HELP = "segmentation metrics after each step (U-Net, fill, forest, fill) on DATA/images + DATA/masks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, metavar="DATA", help="folder with images/, masks/ and optionally index.csv")
    parser.add_argument("--split", choices=SPLITS, default="heldout",
                        help="heldout: the held-out wta-train scenes (default); all: every frame")
    parser.add_argument("--weights", type=Path, help="BU-Netv2 weights file (default: the shipped bunetv2)")
    parser.add_argument("--tau", type=float, default=SegmentSettings.tau_bu, help="threshold tau_BU")
    parser.add_argument("--plot", type=Path, help="write the acceptance-ratio curves to this PNG")
    parser.add_argument("--json", type=Path, help="write per-frame scores and tables to this JSON file")


def run(args: argparse.Namespace) -> int:
    model = load_segmenter(args.weights)
    evaluation = evaluate_segmentation(args.data, model, SegmentSettings(tau_bu=args.tau), args.split)
    write_evaluation(evaluation, args.json, args.plot)
    print(format_table(evaluation))
    for label, key in (("wall", "seconds_per_image"), ("cpu", "cpu_seconds_per_image")):
        seconds = ", ".join(f"{k} {v:.3f}" for k, v in evaluation[key].items())
        print(f"{label} seconds per image: {seconds}")
    return 0
