"""`edge synth OUT`: write a synthetic drone inspection (photos, masks, manifest)."""
from __future__ import annotations

import argparse
import time

from edge.errors import InputError
from edge.synth import generate_inspection, parse_size
from edge.synth.blade import SURFACES

HELP = "generate a synthetic blade inspection: photos (JPEG + EXIF), blade masks (PNG) and a manifest"


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _surfaces(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    unknown = [s for s in chosen if s not in SURFACES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"surfaces must be a comma-separated list of {','.join(SURFACES)}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (layout in edge/synth/inspection.py)")
    parser.add_argument("--turbines", type=int, default=1, help="number of turbines (3 blades x 4 surfaces each)")
    parser.add_argument("--blades", type=int, default=3, help="blades per turbine to inspect, 1-3 (default 3)")
    parser.add_argument("--surfaces", type=_surfaces, default=SURFACES, metavar="LIST",
                        help="comma-separated surfaces to inspect (default PS,SS,LE,TE)")
    parser.add_argument("--images-per-surface", type=int, default=10, metavar="J",
                        help="photos per blade surface pass")
    parser.add_argument("--size", type=_size, default=(5472, 3648), metavar="WxH",
                        help="image size in pixels, at most 20 MP (default 5472x3648)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives identical files")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality 1-100 (default 90, 4:2:0)")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    parser.add_argument("--tip-frames", type=int, default=1, metavar="K",
                        help="frames per pass on the outer 9 m of the blade, where red aviation bands are "
                             "painted (default 1: the last frame shows the tip)")
    parser.add_argument("--marking-share", type=float, default=None, metavar="P",
                        help="probability that a turbine's blades carry red tip bands (default: 0.45 "
                             "offshore, 0.15 on land)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that has an inspection")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    manifest = generate_inspection(args.out, turbines=args.turbines, images_per_surface=args.images_per_surface,
                                   size=args.size, seed=args.seed, quality=args.quality, workers=args.workers,
                                   overwrite=args.overwrite, blades=args.blades, surfaces=args.surfaces,
                                   tip_frames=args.tip_frames, marking_share=args.marking_share)
    seconds = time.perf_counter() - started
    print(f"wrote {len(manifest.frames)} photos and masks to {args.out} in {seconds:.1f} s "
          f"(manifest: {args.out}/manifest.json)")
    return 0
