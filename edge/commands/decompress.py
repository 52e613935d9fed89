"""`edge decompress`: a bundle back into an image (and its blade mask)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge.codec.container import read_bundle
from edge.codec.jpegwrite import jpeg_bytes
from edge.codec.metadata import save_image
from edge.codec.photo import Coders, decompress_bundle

HELP = "decode a bundle into an image (PNG or TIFF, original metadata restored)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="the bundle file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="image to write (.png, .tif)")
    parser.add_argument("--mask-out", type=Path, help="also write the blade mask of the bundle (PNG)")
    parser.add_argument("--jpeg-out", type=Path, help="jpeg-exact bundles: also write a standard JPEG whose "
                        "blade blocks are the camera's own")


def run(args: argparse.Namespace) -> int:
    bundle = read_bundle(args.bundle)
    decoded = decompress_bundle(bundle, Coders())
    save_image(args.output, decoded.image, bundle.source)
    if args.mask_out is not None:
        save_image(args.mask_out, decoded.mask.astype(np.uint8) * 255)
    if args.jpeg_out is not None:
        args.jpeg_out.write_bytes(jpeg_bytes(bundle, background=decoded.image))
    print(f"{args.bundle} -> {args.output} ({bundle.width}x{bundle.height})")
    return 0
