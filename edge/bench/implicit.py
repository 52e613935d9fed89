"""Lossy ROI coders side by side on photos with blade masks: implicit, explicit, ROI-eML, classical.

    python -m edge.bench.implicit DATA [--images 6] [--scale 1] [--explicit WEIGHTS] [--json OUT] [--plot PNG]

DATA is a wta-train style folder (images/ + masks/); only its held-out frames
(edge.segment.dataset.WTA_HELD_OUT) that show blade are used. For every photo, in the same run:

* ``implicit``: the implicit ROI coder (shipped weights) at each quality level;
* ``explicit``: the explicit baseline (``--explicit`` weights file) at each level;
* ``roi-eml-bgQ``: ROI-eML with a lossy blade (HP+EASN-deep), background at quality Q, blade
  quality swept over the levels above Q; one curve per Q in ``--bg-qualities``;
* ``two-layer-CODEC``: the classical two-layer ROI of edge.bench.baselines (JPEG 2000 and AVIF
  cannot vary quality by region through imagecodecs, so a base layer at ``--bg-psnr`` plus a
  blade layer at each of ``--blade-psnrs``), with the same cell mask as ROI-eML.

Rates are the coded payload (region streams + mask code, or the classical layers + mask code)
per pixel of the photo. Quality: ROI-PSNR over the blade pixels of the true mask, and PSNR of
the whole photo. BD-rates on ROI-PSNR of implicit against every other curve, per photo and on
the mean curves. The JSON holds every point; the plot is drawn from it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from edge.bench.baselines import two_layer_roi
from edge.bench.classical import bd_rate
from edge.codec.implicit.coder import MASK_CELL, ImplicitCoder, coded_mask
from edge.codec.implicit.model import gaussian_likelihood
from edge.codec.implicit.weights import load_coder
from edge.codec.lossy.coder import PATCH_SIZE as LOSSY_PATCH
from edge.codec.maskcode import encode_mask
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells
from edge.codec.photo import Coders, CodingSettings, compress_pixels, decompress_bundle
from edge.codec.quality import psnr
from edge.registry import load_model
from edge.segment.dataset import is_held_out, list_frames, read_mask, read_rgb


def held_out_photos(data_dir: Path, count: int, scale: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``count`` held-out frames with blade, evenly spaced, as (name, image, mask)."""
    frames = [f for f in list_frames(data_dir) if is_held_out(f.name)]
    photos = []
    for frame in frames:
        image = read_rgb(frame.image_path)
        mask = read_mask(frame.mask_path, image.shape[:2])
        if mask.mean() < 0.01:
            continue
        if scale != 1:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        photos.append((frame.name, image, mask))
    step = max(1, len(photos) // max(count, 1))
    return photos[::step][:count]


def _metadata(image: np.ndarray):
    ok, png = cv2.imencode(".png", image[:, :, ::-1])
    return source_metadata_from_bytes(png.tobytes(), "photo.png")


def _point(image, mask, decoded, payload_bytes: int, **extra) -> dict:
    pixels = image.shape[0] * image.shape[1]
    return {**extra, "bytes": payload_bytes, "bpp": 8 * payload_bytes / pixels,
            "roi_psnr": psnr(image, decoded, mask), "psnr": psnr(image, decoded)}


def bundle_points(image, mask, coders: Coders, settings_list) -> list[dict]:
    """Compress + decompress through bundles; payload = region streams + mask code."""
    points = []
    metadata = _metadata(image)
    for settings in settings_list:
        started = time.perf_counter()
        bundle = compress_pixels(image, metadata, settings, coders, mask).bundle
        encoded = time.perf_counter()
        decoded = decompress_bundle(bundle, coders).image
        payload = sum(r.coded.bits for r in bundle.regions) // 8 + len(bundle.mask_code)
        points.append(_point(image, mask, decoded, payload, quality=settings.quality,
                             bg_quality=settings.bg_quality, blade_quality=settings.blade_quality,
                             mask_bytes=len(bundle.mask_code), encode_s=round(encoded - started, 2),
                             decode_s=round(time.perf_counter() - encoded, 2)))
    return points


def context_gain(coder: ImplicitCoder, image: np.ndarray, mask: np.ndarray, level: int) -> dict:
    """Estimated bits of y with the checkerboard context and with the hyperprior alone (same latents).

    The anchors' parameters are the hyperprior-only ones, so using them for every latent is the
    same model without context. Also times the two-pass (anchors, then non-anchors) parameters.
    """
    _, patches, masks = coder.tiles(image, coded_mask(mask))
    y_hat, z_hat = coder.analyse(patches, masks, level)
    bits = {"context": 0.0, "hyperprior_only": 0.0}
    started = time.perf_counter()
    with torch.no_grad():
        for y, z in zip(y_hat, z_hat):
            hyper = coder.h_s64(torch.from_numpy(z[None]).double())
            y64 = torch.from_numpy(y[None]).double()
            with_context = coder.context64(hyper, y64)
            # Anchors' parameters everywhere: the entropy parameters with a zero context.
            hyper_only = coder.context64.params(torch.cat([hyper, torch.zeros_like(hyper)], dim=1)).chunk(2, dim=1)
            for name, (mean, log_scale) in (("context", with_context), ("hyperprior_only", hyper_only)):
                likelihood = gaussian_likelihood(y64, torch.round(mean), torch.exp(log_scale.clamp(max=8.0)))
                bits[name] += float(-torch.log2(likelihood.clamp_min(1e-9)).sum())
    seconds = time.perf_counter() - started
    pixels = image.shape[0] * image.shape[1]
    return {"level": level, "y_bpp_context": bits["context"] / pixels,
            "y_bpp_hyperprior_only": bits["hyperprior_only"] / pixels,
            "saving_percent": 100 * (1 - bits["context"] / max(bits["hyperprior_only"], 1e-9)),
            "parameter_seconds_both": round(seconds, 2)}


def measure(photos, implicit: ImplicitCoder | None, explicit: ImplicitCoder | None, lossy_coders: Coders | None,
            bg_qualities, bg_psnr: float, blade_psnrs, classical, reused: dict | None = None) -> dict:
    """Every curve of every photo; ``reused`` maps photo name -> curves measured by an earlier run."""
    rows = []
    for index, (name, image, mask) in enumerate(photos):
        started = time.time()
        row = {"image": name, "size": list(image.shape[:2]), "blade_fraction": round(float(mask.mean()), 4),
               "curves": dict((reused or {}).get(name, {}))}
        if implicit is not None:
            levels = [CodingSettings(mode="implicit-roi", quality=q) for q in range(implicit.levels)]
            row["curves"]["implicit"] = bundle_points(image, mask, Coders(implicit=implicit), levels)
            row["context"] = context_gain(implicit, image, mask, implicit.levels // 2)
        if explicit is not None:
            levels = [CodingSettings(mode="implicit-roi", quality=q) for q in range(explicit.levels)]
            row["curves"]["explicit"] = bundle_points(image, mask, Coders(implicit=explicit), levels)
        for bg in bg_qualities if lossy_coders is not None else ():
            settings = [CodingSettings(mode="roi", background="hp-easn", blade="lossy", bg_quality=bg, blade_quality=q)
                        for q in range(bg + 1, lossy_coders.lossy.levels)]
            row["curves"][f"roi-eml-bg{bg}"] = bundle_points(image, mask, lossy_coders, settings)
        grid = PatchGrid(image.shape[0], image.shape[1], LOSSY_PATCH)
        cells = blade_cells(mask, grid)
        pixel_cells = np.repeat(np.repeat(cells, LOSSY_PATCH, 0), LOSSY_PATCH, 1)[: image.shape[0], : image.shape[1]]
        for codec in classical:
            points = []
            for target in blade_psnrs:
                result = two_layer_roi(image, mask, pixel_cells, len(encode_mask(cells)), bg_psnr, codec=codec,
                                       blade="lossy", blade_psnr=target)
                points.append({"blade_target": target, "bytes": result["bytes"], "bpp": result["bpp"],
                               "roi_psnr": result["quality"]["blade"]["psnr"],
                               "psnr": result["quality"]["whole"]["psnr"]})
            row["curves"][f"two-layer-{codec}"] = points
        row["bd_rate_roi"] = {other: _bd(row["curves"][other], row["curves"]["implicit"])
                              for other in row["curves"] if other != "implicit" and "implicit" in row["curves"]}
        rows.append(row)
        print(f"[{index + 1}/{len(photos)}] {name} ({time.time() - started:.0f} s): " + "; ".join(
            f"{c}: " + " ".join(f"{p['bpp']:.3f}/{p['roi_psnr']:.1f}" for p in pts)
            for c, pts in row["curves"].items()), flush=True)
    return {"rows": rows, "mean_curves": mean_curves(rows), "summary": summary(rows)}


def _bd(anchor: list[dict], test: list[dict]) -> float | None:
    """BD-rate (%) on ROI-PSNR of ``test`` against ``anchor`` (negative: test needs fewer bits)."""
    as_psnr = lambda pts: [{"bpp": p["bpp"], "psnr": p["roi_psnr"]} for p in pts]  # noqa: E731
    return bd_rate(as_psnr(anchor), as_psnr(test))


def mean_curves(rows) -> dict:
    curves = {}
    for name in rows[0]["curves"] if rows else ():
        length = min(len(r["curves"][name]) for r in rows)
        curves[name] = [{key: statistics.mean(r["curves"][name][i][key] for r in rows)
                         for key in ("bpp", "roi_psnr", "psnr")} for i in range(length)]
    return curves


def summary(rows) -> dict:
    out = {}
    for other in rows[0]["bd_rate_roi"] if rows else ():
        values = [r["bd_rate_roi"][other] for r in rows if r["bd_rate_roi"][other] is not None]
        out[other] = {"median_bd_rate_of_implicit": statistics.median(values) if values else None,
                      "mean_bd_rate_of_implicit": statistics.mean(values) if values else None,
                      "photos": len(values)}
    curves = mean_curves(rows)
    for other in out:
        out[other]["bd_rate_of_implicit_on_mean_curves"] = _bd(curves[other], curves["implicit"])
    if rows and all("context" in r for r in rows):
        out["context_saving_percent_median"] = statistics.median(r["context"]["saving_percent"] for r in rows)
    return out


def write_plot(result: dict, path: Path) -> None:
    """Two panels from the JSON: mean ROI-PSNR and whole-image PSNR against bpp."""
    import matplotlib   # imported here: an optional dependency (the classical extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, points in result["mean_curves"].items():
        points = sorted(points, key=lambda p: p["bpp"])
        for axis, key in zip(axes, ("roi_psnr", "psnr")):
            axis.plot([p["bpp"] for p in points], [p[key] for p in points], marker="o", label=name)
    for axis, title in zip(axes, ("ROI (blade) PSNR", "whole-image PSNR")):
        axis.set_xlabel("bits per pixel of the photo")
        axis.set_ylabel(f"{title} (dB)")
        axis.set_title(f"{title}, mean over {len(result['rows'])} held-out photos")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with images/ and masks/ (wta-train layout)")
    parser.add_argument("--images", type=int, default=6, help="held-out photos to use")
    parser.add_argument("--scale", type=float, default=1.0, help="resize the photos by this factor first")
    parser.add_argument("--implicit", type=Path, help="implicit weights file (default: the shipped model)")
    parser.add_argument("--explicit", type=Path, help="explicit-baseline weights file (left out if not given)")
    parser.add_argument("--bg-qualities", default="0,1", help="ROI-eML background quality levels")
    parser.add_argument("--bg-psnr", type=float, default=30.0, help="two-layer classical: background PSNR target")
    parser.add_argument("--blade-psnrs", default="28,31,34,37,40", help="two-layer classical: blade PSNR targets")
    parser.add_argument("--classical", default="jpeg2000,avif", help="two-layer classical codecs")
    parser.add_argument("--methods", default="implicit,explicit,roi-eml,two-layer",
                        help="which curves to measure in this run")
    parser.add_argument("--reuse", type=Path, help="JSON of an earlier run on the same photos: keep its curves "
                                                   "for the methods not measured now")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", type=Path, help="write all numbers here")
    parser.add_argument("--plot", type=Path, help="write the RD plot (PNG) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = set(args.methods.split(","))
    implicit = explicit = None
    if "implicit" in methods:
        implicit = load_coder(args.implicit) if args.implicit else load_model("implicit-roi")
    if "explicit" in methods and args.explicit:
        explicit = load_coder(args.explicit, "implicit-roi-explicit")
    photos = held_out_photos(args.data, args.images, args.scale)
    reused = None
    if args.reuse:
        earlier = json.loads(args.reuse.read_text())
        if earlier["settings"]["scale"] != args.scale:
            parser.error(f"--reuse {args.reuse} was measured at scale {earlier['settings']['scale']}")
        reused = {r["image"]: r["curves"] for r in earlier["rows"]}
    started = time.time()
    result = measure(photos, implicit, explicit, Coders() if "roi-eml" in methods else None,
                     [int(q) for q in args.bg_qualities.split(",") if q], args.bg_psnr,
                     [float(v) for v in args.blade_psnrs.split(",")],
                     [c for c in args.classical.split(",") if c] if "two-layer" in methods else [], reused)
    result["settings"] = {"images": [p[0] for p in photos], "scale": args.scale, "mask_cell": MASK_CELL,
                          "methods": sorted(methods), "reused": Path(args.reuse).name if args.reuse else None,
                          "implicit_sha256": implicit.weights_sha256 if implicit else None,
                          "explicit_sha256": explicit.weights_sha256 if explicit else None,
                          "bg_psnr": args.bg_psnr, "seconds": round(time.time() - started, 1)}
    for name, entry in result["summary"].items():
        print(f"{name}: {entry}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        write_plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
