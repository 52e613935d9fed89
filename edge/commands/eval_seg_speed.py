"""`edge eval seg-speed IMG...`: time of each BU-Netv2+P step per photo."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.segment.evaluate import time_segmentation
from edge.segment.pipeline import SegmentSettings, load_segmenter

HELP = "seconds per photo of each segmentation step, the photos taken as one surface"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, metavar="IMG")
    parser.add_argument("--weights", type=Path, help="segmentation weights file (default: the shipped default segmenter)")
    parser.add_argument("--forest", choices=("on", "off"),
                        help="run the per-surface forest vote or not (default: as stored with the weights)")
    parser.add_argument("--json", type=Path, help="also write the timings to this JSON file")


def run(args: argparse.Namespace) -> int:
    timings = time_segmentation(args.images, load_segmenter(args.weights), SegmentSettings(use_forest=None if args.forest is None else args.forest == "on"))
    if args.json:
        args.json.write_text(json.dumps(timings, indent=1))
    print(f"{timings['images']} photos of {timings['megapixels']} MP, seconds per photo:")
    print(f"{'step':>10} {'wall':>8} {'cpu':>8}")
    for key, value in timings.items():
        if isinstance(value, dict):
            print(f"{key:>10} {value['wall']:8.3f} {value['cpu']:8.3f}")
    return 0
