"""`edge segment IMG... -o MASKDIR`: blade masks for photos of one blade surface."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.segment.pipeline import SegmentSettings, segment_files

HELP = "segment photos of one blade surface (BU-Netv2+P) and write blade masks as PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, metavar="IMG", help="photos of one blade surface")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="MASKDIR",
                        help="folder for the masks (STEM.png, blade = 255)")
    parser.add_argument("--weights", type=Path, help="BU-Netv2 weights file (default: the shipped bunetv2)")
    parser.add_argument("--tau", type=float, default=SegmentSettings.tau_bu,
                        help="threshold tau_BU on the flip-averaged U-Net probability "
                             "(default: the one stored with the weights)")
    parser.add_argument("--no-forest", action="store_true", help="skip the per-surface random forest")


def run(args: argparse.Namespace) -> int:
    settings = SegmentSettings(tau_bu=args.tau, use_forest=False if args.no_forest else None)
    written = segment_files(args.images, args.out, args.weights, settings)
    print(f"wrote {len(written)} masks to {args.out}")
    return 0
