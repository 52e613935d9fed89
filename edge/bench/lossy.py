"""Rate-distortion of the lossy coder next to classical codecs, measured in one run.

    python -m edge.bench.lossy IMAGES_OR_FOLDERS... [--crop 1024] [--json OUT] [--full-res IMAGE]

For each image (centre crop of ``--crop`` pixels, 0 = whole image): bpp from the real coded
streams, RGB PSNR and colour cast (mean decoded minus source per channel) at every quality
level of ours, the classical sweeps of :mod:`edge.bench.classical`, and the BD-rate of ours
against each (negative: we need fewer bits). ``--full-res`` also times encoding + decoding one whole photo in a fresh process and
reports its peak memory.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge.bench.classical import SWEEPS, bd_rate, rd_points
from edge.bench.lossless import centre_crop, list_inputs
from edge.codec.imageio import read_image
from edge.codec.lossy.weights import load_coder
from edge.codec.patches import PatchGrid
from edge.codec.quality import psnr
from edge.codec.roi import image_from_patches, image_patches
from edge.registry import load_model


def our_points(coder, image: np.ndarray, levels) -> list[dict]:
    grid = PatchGrid(image.shape[0], image.shape[1], coder.patch_size)
    patches = image_patches(image, grid)
    points = []
    for level in levels:
        coded = coder.compress(patches, level)
        decoded = image_from_patches(coder.decompress(coded), grid)
        # A colour cast (decoded minus source, mean per RGB channel) costs PSNR at every rate;
        # an inspector sees it as wrong paint or rust colour.
        cast = (decoded.astype(np.float64) - image).mean(axis=(0, 1))
        points.append({"parameter": level, "bytes": coded.bits // 8,
                       "bpp": coded.bits / (image.shape[0] * image.shape[1]), "psnr": psnr(image, decoded),
                       "colour_cast": [round(float(v), 2) for v in cast]})
    return points


def measure(paths: list[Path], crop: int, coder, codecs: list[str], levels) -> dict:
    rows = []
    for index, path in enumerate(paths):
        image = centre_crop(read_image(path)[0], crop)
        row = {"image": path.name, "size": list(image.shape[:2]), "ours": our_points(coder, image, levels)}
        for name in codecs:
            row[name] = rd_points(image, name)
            row[f"bd_rate_vs_{name}"] = bd_rate(row[name], row["ours"])
        rows.append(row)
        print(f"[{index + 1}/{len(paths)}] {path.name}: " + ", ".join(
            f"{p['bpp']:.3f} bpp {p['psnr']:.2f} dB" for p in row["ours"])
            + f" | colour cast at the top level {row['ours'][-1]['colour_cast']} | " + ", ".join(
            f"BD vs {n} {row[f'bd_rate_vs_{n}']:+.1f}%" if row[f"bd_rate_vs_{n}"] is not None else f"BD vs {n} n/a"
            for n in codecs), flush=True)
    summary = {}
    for name in codecs:
        values = [r[f"bd_rate_vs_{name}"] for r in rows if r[f"bd_rate_vs_{name}"] is not None]
        summary[name] = {"mean_bd_rate": statistics.mean(values) if values else None,
                         "median_bd_rate": statistics.median(values) if values else None,
                         "images": len(values)}
    mean_curve = {name: [{"bpp": statistics.mean(r[name][i]["bpp"] for r in rows),
                          "psnr": statistics.mean(r[name][i]["psnr"] for r in rows)}
                         for i in range(len(rows[0][name]))] for name in ["ours", *codecs]} if rows else {}
    return {"rows": rows, "summary": summary, "mean_curves": mean_curve}


def time_full_image(path: Path, level: int) -> dict:
    """Encode + decode one whole photo in a fresh process; seconds and peak resident memory."""
    script = (
        "import json, resource, sys, time; from pathlib import Path;"
        "from edge.registry import load_model; from edge.codec.imageio import read_image;"
        "from edge.codec.patches import PatchGrid; from edge.codec.roi import image_patches, image_from_patches;"
        "c = load_model('hp-easn'); img = read_image(Path(sys.argv[1]))[0];"
        "g = PatchGrid(img.shape[0], img.shape[1], c.patch_size); t = time.perf_counter();"
        "coded = c.compress(image_patches(img, g), int(sys.argv[2])); t1 = time.perf_counter();"
        "out = image_from_patches(c.decompress(coded), g); t2 = time.perf_counter();"
        "print(json.dumps({'encode_s': t1 - t, 'decode_s': t2 - t1, 'bpp': coded.bits / img.shape[0] / img.shape[1],"
        "'megapixels': img.shape[0] * img.shape[1] / 1e6, 'threads': __import__('torch').get_num_threads(),"
        "'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path), str(level)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--crop", type=int, default=1024, help="centre crop side in pixels (0: whole image)")
    parser.add_argument("--codecs", default=",".join(SWEEPS), help="classical codecs to compare with")
    parser.add_argument("--levels", default="", help="quality levels of ours (default: all)")
    parser.add_argument("--weights", type=Path, help="lossy weights file (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--full-res", type=Path, help="also time one whole photo (encode + decode)")
    parser.add_argument("--json", type=Path, help="write all numbers here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.weights:
        coder = load_coder(args.weights)
    else:
        coder = load_model("hp-easn")
    levels = [int(v) for v in args.levels.split(",")] if args.levels else list(range(coder.levels))
    started = time.time()
    result = measure(list_inputs(args.images), args.crop, coder, args.codecs.split(","), levels)
    result["settings"] = {"crop": args.crop, "levels": levels, "weights_sha256": coder.weights_sha256,
                          "seconds": round(time.time() - started, 1)}
    if args.full_res:
        result["full_res"] = time_full_image(args.full_res, levels[len(levels) // 2])
        print("full resolution:", result["full_res"])
    for name, s in result["summary"].items():
        print(f"BD-rate of ours vs {name}: mean {s['mean_bd_rate']}, median {s['median_bd_rate']} "
              f"over {s['images']} images")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
