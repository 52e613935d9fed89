"""`edge compress`: one photo into one bundle file."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.codec.container import write_bundle
from edge.codec.imageio import read_image, read_mask
from edge.codec.photo import BLADE_CODERS, MODES, Coders, CodingSettings, compress_photo

HELP = "compress a photo into a bundle (lossy, lossless, or blade/background ROI)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="the photo (JPEG, PNG, TIFF)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the bundle file to write")
    parser.add_argument("--mode", choices=MODES, default="roi",
                        help="lossy/lossless: the whole photo with one coder; roi: blade and background apart; "
                             "implicit-roi: the whole photo with the mask-conditioned coder (needs a mask)")
    parser.add_argument("--quality", type=int, default=3,
                        help="lossy and implicit-roi modes: quality level (0 = smallest)")
    mask = parser.add_mutually_exclusive_group()
    mask.add_argument("--mask", type=Path, help="blade mask image (non-zero = blade)")
    mask.add_argument("--segment", action="store_true", help="find the blade with the segmentation model")
    parser.add_argument("--blade", choices=BLADE_CODERS, default="auto",
                        help="roi mode: blade coder (auto: jpeg-exact for baseline JPEG photos, else lossless)")
    parser.add_argument("--bg-quality", type=int, default=0, help="roi mode: background quality level")
    parser.add_argument("--blade-quality", type=int, default=5, help="roi mode, lossy blade: quality level")
    parser.add_argument("--report", choices=("json", "text"), default="text", help="report format on stdout")


def run(args: argparse.Namespace) -> int:
    settings = CodingSettings(mode=args.mode, quality=args.quality, bg_quality=args.bg_quality,
                              blade=args.blade, blade_quality=args.blade_quality)
    mask = None
    if args.mask is not None or args.segment:
        image, _ = read_image(args.image)
        if args.mask is not None:
            mask = read_mask(args.mask, image.shape[:2])
        else:
            from edge.segment.pipeline import load_segmenter, segment_surface
            mask = segment_surface([image], load_segmenter()).masks[0]
    result = compress_photo(args.image, settings, Coders(), mask)
    write_bundle(args.output, result.bundle)
    report = {**result.report, "bundle": str(args.output), "bundle_bytes": args.output.stat().st_size}
    if args.report == "json":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        bpp = 8 * report["bundle_bytes"] / (report["width"] * report["height"])
        print(f"{args.image} -> {args.output}: {report['bundle_bytes']} bytes, {bpp:.3f} bpp "
              f"(source {report['source_bytes']} bytes)")
    return 0
