"""`edge compress`: one photo into one bundle file."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.codec.container import write_bundle
from edge.codec.imageio import read_image, read_mask
from edge.codec.photo import BACKGROUND_CODERS, BLADE_CODERS, MODES, Coders, CodingSettings, compress_photo

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
    parser.add_argument("--background", choices=BACKGROUND_CODERS, default="auto",
                        help="roi mode: background coder (auto: the one meeting --bg-psnr with the fewest bytes)")
    parser.add_argument("--bg-psnr", type=float, default=CodingSettings.bg_psnr,
                        help="roi mode: background PSNR target in dB")
    parser.add_argument("--bg-quality", type=int, default=None,
                        help="roi mode: instead of --bg-psnr, a quality level of the --background coder")
    parser.add_argument("--blade", choices=BLADE_CODERS, default="auto",
                        help="roi mode: blade coder (auto: jpeg-exact for JPEG photos, else lossless: the smaller "
                             "of jxl-lossless and bitswap; lossy: the coder meeting --blade-psnr)")
    parser.add_argument("--blade-psnr", type=float, default=None, help="roi mode, lossy blade: PSNR target in dB")
    parser.add_argument("--blade-quality", type=int, default=None,
                        help="roi mode, lossy blade: instead of --blade-psnr, a quality level")
    parser.add_argument("--time-budget", type=float, default=CodingSettings.time_budget_s,
                        help="seconds a learned coder may take on a region to be tried by auto")
    parser.add_argument("--report", choices=("json", "text"), default="text", help="report format on stdout")


def run(args: argparse.Namespace) -> int:
    settings = CodingSettings(mode=args.mode, quality=args.quality, background=args.background,
                              bg_psnr=args.bg_psnr, bg_quality=args.bg_quality, blade=args.blade,
                              blade_psnr=args.blade_psnr, blade_quality=args.blade_quality,
                              time_budget_s=args.time_budget)
    mask = None
    if args.mask is not None or args.segment:
        image, _ = read_image(args.image)
        if args.mask is not None:
            mask = read_mask(args.mask, image.shape[:2])
        else:
            # Imported here: it pulls in scikit-learn (0.9 s on a 2-core CPU), which only --segment needs.
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
        for region, choice in report.get("choices", {}).items():
            print(f"  {region}: {describe_choice(choice)}")
    return 0


def describe_choice(choice: dict) -> str:
    """One line: the coder that won a region, at what level and quality, and the runner-up's cost."""
    text = f"{choice['coder']}"
    if choice.get("level") is not None:
        text += f" level {choice['level']}"
    if "bytes" in choice:
        text += f", {choice['bytes']} bytes"
    if "psnr_db" in choice:
        text += f", {choice['psnr_db']} dB"
    if "runner_up" in choice:
        text += f" (runner-up {choice['runner_up']['coder']}: about {choice['runner_up']['estimated_bytes']} bytes)"
    left_out = [f"{c['coder']}: {c['left_out']}" for c in choice.get("candidates", []) if "left_out" in c]
    if left_out:
        text += "; left out " + "; ".join(left_out)
    return text
