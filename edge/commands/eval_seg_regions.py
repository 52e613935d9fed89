"""`edge eval seg-regions PHOTOS --regions FILE`: segmentation against reference masks made from
hand-drawn blade regions (``edge.segment.reference``), for photos that have no drawn masks."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from edge.bench.masks import draw_blade_mask
from edge.errors import InputError
from edge.segment.dataset import IMAGE_SUFFIXES, read_rgb
from edge.segment.metrics import frame_scores
from edge.segment.pipeline import SegmentSettings, load_segmenter, segment_surface
from edge.segment.reference import BladeRegions, paint_cut_off, reference_mask

HELP = "agreement of the segmenter with reference masks drawn as blade regions (photos without masks)"

PICTURE_WIDTH = 1056
# Overlay colours (RGB): both marked, reference only (blade missed), model only (not blade).
BOTH, MISSED, EXTRA = (60, 200, 80), (235, 150, 40), (220, 60, 220)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", type=Path, metavar="PHOTOS", help="folder of the photos named in the regions file")
    parser.add_argument("--regions", type=Path, required=True, help="blade regions JSON (edge.segment.reference)")
    parser.add_argument("--weights", type=Path, help="segmentation weights file (default: the shipped default segmenter)")
    parser.add_argument("--forest", choices=("on", "off"),
                        help="run the per-surface forest vote or not (default: as stored with the weights)")
    parser.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    parser.add_argument("--pictures", type=Path, help="folder for one overlay picture per photo")


def find_photo(folder: Path, stem: str) -> Path:
    for path in sorted(folder.glob(stem + ".*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return path
    raise InputError(f"no photo named {stem} ({', '.join(sorted(IMAGE_SUFFIXES))}) for its blade regions",
                     str(folder))


def overlay(image: np.ndarray, reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """A downscaled RGB view of ``image`` with the agreement of the two masks coloured in."""
    height, width = image.shape[:2]
    size = (PICTURE_WIDTH, max(1, round(height * PICTURE_WIDTH / width)))
    view = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    ref = cv2.resize(reference.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    pred = cv2.resize(predicted.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    for selected, colour in ((ref & pred, BOTH), (ref & ~pred, MISSED), (~ref & pred, EXTRA)):
        view[selected] = 0.45 * view[selected] + 0.55 * np.array(colour, np.float32)
    return view.astype(np.uint8)


def evaluate(photos: Path, regions: BladeRegions, model, settings: SegmentSettings,
             pictures: Path | None = None) -> dict:
    """Per photo (each its own surface) the scores against the reference mask and, for
    comparison, against the colour-drawn mask; then mean, median and minimum F1."""
    rows = {}
    for stem in sorted(regions.photos):
        path = find_photo(photos, stem)
        image = read_rgb(path)
        reference = reference_mask(image, regions, stem)
        result = segment_surface([image], model, settings)
        predicted = result.masks[0]
        scores = frame_scores(predicted, reference)
        rows[stem] = {"photo": path.name, "f1": scores.f1, "precision": scores.precision, "recall": scores.recall,
                      "f1_colour_drawn": frame_scores(predicted, draw_blade_mask(image)).f1,
                      "reference_fraction": float(reference.mean()),
                      "paint_cut_off": paint_cut_off(image, regions, stem), "confidence": result.confidence[0],
                      "unsure": result.unsure[0]}
        if pictures is not None:
            pictures.mkdir(parents=True, exist_ok=True)
            picture = cv2.cvtColor(overlay(image, reference, predicted), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(pictures / f"{stem}.jpg"), picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    f1 = np.array([row["f1"] for row in rows.values()])
    return {"photos": rows, "f1_mean": float(f1.mean()), "f1_median": float(np.median(f1)), "f1_min": float(f1.min())}


def format_rows(evaluation: dict) -> str:
    lines = [f"{'photo':<12} {'F1':>6} {'prec':>6} {'recall':>6} {'F1 drawn':>8} {'cut':>6} {'conf':>6} unsure"]
    for stem, row in evaluation["photos"].items():
        lines.append(f"{stem:<12} {row['f1']:6.3f} {row['precision']:6.3f} {row['recall']:6.3f} "
                     f"{row['f1_colour_drawn']:8.3f} {row['paint_cut_off']:6.3f} {row['confidence']:6.3f} {row['unsure']}")
    lines.append(f"F1 mean {evaluation['f1_mean']:.3f}, median {evaluation['f1_median']:.3f}, "
                 f"minimum {evaluation['f1_min']:.3f}")
    lines.append("cut: paint just outside the blade regions, as a share of the reference (a polygon edge "
                 "inside a blade, or a tower or nacelle touching it)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    regions = BladeRegions.read(args.regions)
    settings = SegmentSettings(use_forest=None if args.forest is None else args.forest == "on")
    evaluation = evaluate(args.photos, regions, load_segmenter(args.weights), settings, args.pictures)
    evaluation["weights"] = args.weights.name if args.weights else "shipped default"
    evaluation["regions"] = args.regions.name
    if args.json:
        args.json.write_text(json.dumps(evaluation, indent=1) + "\n")
    print(format_rows(evaluation))
    return 0
