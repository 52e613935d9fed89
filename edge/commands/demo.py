"""`edge demo`: a generated inspection through the whole pipeline."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.demo import DemoSettings, run_demo
from edge.synth import parse_size

HELP = "run a generated inspection through the daemon, a broker and a subscriber, and report per photo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, help="where to put everything (default: a new temporary folder)")
    parser.add_argument("--images-per-surface", type=int, default=3)
    parser.add_argument("--size", default="1024x683", help="photo size WxH")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--blade", choices=("auto", "lossless", "lossy", "jpeg-exact"), default="auto",
                        help="blade coder (auto: the camera's own JPEG blocks for JPEG photos)")
    parser.add_argument("--masks", choices=("auto", "model", "mask-files"), default="auto",
                        help="blade masks from the segmentation model or the generator's ground truth")


def run(args: argparse.Namespace) -> int:
    run_demo(DemoSettings(workdir=args.workdir, images_per_surface=args.images_per_surface,
                          size=parse_size(args.size), seed=args.seed, blade=args.blade,
                          segmentation=args.masks))
    return 0
