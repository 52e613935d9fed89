"""Make tests/data/wta-sample from a wta-train folder: a few frames at half size, with their masks.

    python tests/data/make_wta_sample.py WTA_TRAIN [--out tests/data/wta-sample]

Same layout as wta-train (images/NAME.JPG, masks/NAME.png with blade = 255, index.csv), so
the code that reads wta-train reads the sample. Frames come from the three wind farms, from
training and from held-out scenes (edge.segment.dataset.WTA_HELD_OUT), close-up to far, and one
frame without blade. README.md in the sample is written by hand; LICENSE is the set's own.
"""
from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import cv2
import numpy as np

NAMES = ("envA_03", "envA_60", "envA_66", "envB_10", "envB_50", "envC_22", "envC_45")
SCALE = 0.5          # 1920x1080 -> 960x540
JPEG_QUALITY = 90    # above the source's 75, so that the second generation adds little


def make_sample(source: Path, out: Path, names: tuple[str, ...] = NAMES) -> list[dict]:
    with open(source / "index.csv", newline="") as handle:
        views = {Path(row["image"]).stem: row["view"] for row in csv.DictReader(handle)}
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        image = cv2.imread(str(source / "images" / f"{name}.JPG"), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(source / "masks" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        if image is None or mask is None:
            raise SystemExit(f"{source}: no images/{name}.JPG or masks/{name}.png")
        size = (round(image.shape[1] * SCALE), round(image.shape[0] * SCALE))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # Area-averaged then thresholded: the blade keeps its outline, the mask stays 0/255.
        small_mask = np.where(cv2.resize(mask, size, interpolation=cv2.INTER_AREA) > 127, 255, 0).astype(np.uint8)
        cv2.imwrite(str(out / "images" / f"{name}.JPG"), small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        cv2.imwrite(str(out / "masks" / f"{name}.png"), small_mask, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        rows.append({"image": f"{name}.JPG", "blade_frac": f"{(small_mask > 0).mean():.4f}", "view": views[name]})
    with open(out / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "blade_frac", "view"])
        writer.writeheader()
        writer.writerows(rows)
    shutil.copyfile(source / "LICENSE-upstream.txt", out / "LICENSE")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path,
                        help="a wta-train folder (images/, masks/, index.csv, LICENSE-upstream.txt)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "wta-sample")
    args = parser.parse_args()
    for row in make_sample(args.source, args.out):
        print(row["image"], row["view"], row["blade_frac"])


if __name__ == "__main__":
    main()
