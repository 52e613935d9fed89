"""jpeg-exact benchmark: a JPEG photo's blade kept as the camera's DCT blocks, against pixel-lossless ROIs.

    python -m edge.bench.jpegexact IMAGE_OR_DIR... (--masks DIR | --draw) [--json OUT]

Per photo it codes one ROI bundle with ``--blade jpeg-exact`` (background through the lossy
coder at its lowest quality, ``--bg-quality``), decodes it, and reports:

* blade fraction (mask pixels, and the 16-pixel blade cells the bundle keeps exactly);
* source bytes and bpp; bundle bytes and bpp; ratio source / bundle;
* the bundle's parts: blade region (the kept-block JPEG in JPEG XL), background, mask code;
* whether every blade-cell pixel decodes identical to Pillow's decode of the source;
* JPEG XL lossless ROI: the same blade cells coded losslessly by JPEG XL (other pixels zero);
* Bit-swap on the same blade cells, when the shipped Bit-swap weights exist (the slowest part:
  ``--no-bitswap`` leaves it out, ``--add-bitswap`` fills it in later).

The background rate depends on the lossy weights. Without the shipped ones
(edge/weights/hp_easn.pt) a tiny random lossy coder stands in and its rate means nothing: the
report then flags ``background_representative: false`` and also gives a classical stand-in,
AVIF at ``--proxy-quality`` over the same background patches, with the bundle size it implies.

Masks: ``--masks DIR`` reads DIR/STEM.png or DIR/STEM.mask.png (non-zero = blade); ``--draw``
draws one with :func:`edge.bench.masks.draw_blade_mask`, a colour heuristic for white/grey blades
over grass and soil, documented there. Images are never trained on here; dtu-dev is for evaluation only.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import imagecodecs
import numpy as np
import torch

from edge.bench.lossless import list_inputs
from edge.bench.masks import load_mask
from edge.codec import jpegexact
from edge.codec.container import encode_bundle
from edge.codec.imageio import read_image
from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
from edge.codec.lossy.weights import export_weights, load_coder
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask
from edge.codec.photo import Coders, CodingSettings, compress_pixels, decompress_bundle
from edge.codec.roi import image_patches
from edge.errors import EdgeError, InputError, ModelError
from edge.registry import WEIGHTS_DIR

JPEG_SUFFIXES = {".jpg", ".jpeg"}
FLOOR_RATIO = 2.5
FLOOR_BLADE_FRACTION = 0.40


def load_coders(folder: Path) -> tuple[Coders, bool, bool]:
    """(coders, lossy weights are the shipped ones, shipped Bit-swap weights exist)."""
    coders = Coders()
    try:
        coders.lossy  # noqa: B018 - loads the shipped model if there is one
        shipped = True
    except ModelError:
        torch.manual_seed(0)
        path = folder / "random-lossy.pt"
        export_weights(HyperpriorEASN(LossyConfig(n=16, m=24)), path)
        coders = Coders(lossy=load_coder(path, "random-lossy"))
        shipped = False
    bitswap = (WEIGHTS_DIR / "bitswap.pt").exists()
    return coders, shipped, bitswap


def jpegxl_lossless_bytes(image: np.ndarray, cell_mask: np.ndarray, effort: int) -> int:
    """JPEG XL lossless of the blade cells' pixels (all other pixels 0), checked by decoding."""
    roi = np.where(cell_mask[..., None], image, 0).astype(np.uint8)
    stream = imagecodecs.jpegxl_encode(roi, lossless=True, effort=effort)
    if not np.array_equal(imagecodecs.jpegxl_decode(stream), roi):
        raise EdgeError("JPEG XL lossless did not round-trip")
    return len(stream)


def avif_background_bytes(image: np.ndarray, cell_mask: np.ndarray, patch_size: int, quality: int) -> int:
    """AVIF of the patches the lossy coder codes (fully exact patches flattened to grey)."""
    grid = PatchGrid(image.shape[0], image.shape[1], patch_size)
    flags = jpegexact.lossy_patch_flags(cell_mask, grid)
    area = cells_to_mask(flags, grid)
    background = np.where(area[..., None], image, 128).astype(np.uint8)
    return len(imagecodecs.avif_encode(background, level=quality, speed=8))


def measure(path: Path, masks: Path | None, coders: Coders, settings: CodingSettings, shipped: bool,
            bitswap: bool, proxy_quality: int, jxl_effort: int) -> dict:
    image, data = read_image(path)
    height, width = image.shape[:2]
    pixels = height * width
    mask = load_mask(path, image, masks)
    metadata = source_metadata_from_bytes(data, path.name, str(path))

    started = time.perf_counter()
    result = compress_pixels(image, metadata, settings, coders, mask, source_bytes=data)
    encode_seconds = time.perf_counter() - started
    encoded = encode_bundle(result.bundle)
    started = time.perf_counter()
    decoded = decompress_bundle(result.bundle, coders)
    decode_seconds = time.perf_counter() - started
    cell_mask = decoded.mask
    identical = bool(np.array_equal(decoded.image[cell_mask], image[cell_mask]) and cell_mask[mask].all())

    blade = result.bundle.region("blade").coded
    background = result.bundle.region("background").coded
    blade_bytes, background_bytes = blade.bits // 8, background.bits // 8
    overhead = len(encoded) - blade_bytes - background_bytes     # header, mask code, metadata, framing

    def bpp(n: int) -> float:
        return round(8 * n / pixels, 4)

    row = {
        "image": path.name, "width": width, "height": height,
        "blade_fraction": round(float(mask.mean()), 4),
        "blade_cell_fraction": round(float(cell_mask.mean()), 4),
        "source_bytes": len(data), "source_bpp": bpp(len(data)),
        "bundle_bytes": len(encoded), "bundle_bpp": bpp(len(encoded)),
        "ratio": round(len(data) / len(encoded), 2),
        "blade_bytes": blade_bytes, "blade_bpp": bpp(blade_bytes), "blade_container": blade.params.get("container"),
        "background_bytes": background_bytes, "background_bpp": bpp(background_bytes),
        "background_patches": background.count, "mask_bytes": len(result.bundle.mask_code),
        "other_bytes": overhead,
        "blade_pixels_identical": identical,
        "encode_seconds": round(encode_seconds, 2), "decode_seconds": round(decode_seconds, 2),
        "reason": blade.params.get("reason"),
    }
    without_background = len(encoded) - background_bytes
    if not shipped:
        proxy = avif_background_bytes(image, cell_mask, background.patch_size, proxy_quality)
        row["background_proxy_bytes"] = proxy
        row["background_proxy_bpp"] = bpp(proxy)
        row["bundle_with_proxy_bytes"] = without_background + proxy
        row["ratio_with_proxy"] = round(len(data) / (without_background + proxy), 2)
    started = time.perf_counter()
    jxl = jpegxl_lossless_bytes(image, cell_mask, jxl_effort)
    row["jpegxl_lossless_blade_bytes"] = jxl
    row["jpegxl_lossless_blade_bpp"] = bpp(jxl)
    row["jpegxl_seconds"] = round(time.perf_counter() - started, 2)
    row["bitswap_blade_bytes"] = None if not bitswap else _bitswap_blade_bytes(image, cell_mask, coders)
    return row


def _bitswap_blade_bytes(image: np.ndarray, cell_mask: np.ndarray, coders: Coders) -> int:
    """Bit-swap (standalone) on the 64-pixel patches covering the blade cells."""
    bitswap = coders.lossless
    grid = PatchGrid(image.shape[0], image.shape[1], bitswap.patch_size)
    flags = blade_cells(cell_mask, grid).ravel()
    coded = bitswap.compress(image_patches(image, grid)[flags])
    return coded.bits // 8


def add_bitswap_column(path: Path, photos: list[Path], masks: Path | None) -> None:
    """Fill in ``bitswap_blade_bytes`` of the rows that lack it; the file is rewritten per photo."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the earlier run: {error}", str(path)) from None
    by_name = {photo.name: photo for photo in photos}
    coders = Coders()
    for row in saved["images"]:
        if row.get("bitswap_blade_bytes") is not None:
            continue
        if row["image"] not in by_name:
            raise InputError(f"photo {row['image']} of the earlier run is not among the inputs", str(path))
        image, _ = read_image(by_name[row["image"]])
        mask = load_mask(by_name[row["image"]], image, masks)
        grid = jpegexact.cell_grid(*image.shape[:2])
        cell_mask = cells_to_mask(blade_cells(mask, grid), grid)
        row["bitswap_blade_bytes"] = _bitswap_blade_bytes(image, cell_mask, coders)
        saved["settings"]["bitswap_weights"] = all(r.get("bitswap_blade_bytes") is not None
                                                   for r in saved["images"])
        path.write_text(json.dumps(saved, indent=1))
        print(f"{row['image']}: Bit-swap blade {8 * row['bitswap_blade_bytes'] / (row['width'] * row['height']):.3f} "
              f"bpp", flush=True)


def summarize(rows: list[dict], shipped: bool) -> dict:
    ratio_key = "ratio" if shipped else "ratio_with_proxy"
    under = [r for r in rows if r["blade_fraction"] < FLOOR_BLADE_FRACTION]
    return {
        "images": len(rows),
        "all_blade_pixels_identical": all(r["blade_pixels_identical"] for r in rows),
        "mean_blade_bpp": round(float(np.mean([r["blade_bpp"] for r in rows])), 4) if rows else None,
        "mean_jpegxl_lossless_blade_bpp": round(float(np.mean([r["jpegxl_lossless_blade_bpp"] for r in rows])), 4)
        if rows else None,
        "floor": f"bundle >= {FLOOR_RATIO}x smaller than the source when the blade covers < "
                 f"{FLOOR_BLADE_FRACTION:.0%} ({ratio_key})",
        "floor_met": all(r[ratio_key] >= FLOOR_RATIO for r in under),
        "min_ratio_under_floor_fraction": min((r[ratio_key] for r in under), default=None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="JPEG photos or folders of them")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--masks", type=Path, help="folder of blade masks STEM.png or STEM.mask.png")
    source.add_argument("--draw", action="store_true", help="draw each mask with the colour heuristic")
    parser.add_argument("--bg-quality", type=int, default=0, help="background quality level (0 = lowest)")
    parser.add_argument("--proxy-quality", type=int, default=30,
                        help="AVIF quality of the background stand-in when the lossy weights are not shipped")
    parser.add_argument("--jxl-effort", type=int, default=7, help="JPEG XL lossless effort")
    parser.add_argument("--no-bitswap", action="store_true",
                        help="skip the Bit-swap blade column (the slowest part; it does not depend on the "
                             "lossy weights)")
    parser.add_argument("--add-bitswap", action="store_true",
                        help="only fill in the Bit-swap column of the photos --json holds without it "
                             "(a run made with --no-bitswap); the rest of each row is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", type=Path, help="write all numbers here (rewritten after every photo)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the photos --json already holds for the same settings and lossy weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.add_bitswap:
        if args.json is None or not args.json.exists():
            parser.error("--add-bitswap needs the --json file of an earlier run")
        add_bitswap_column(args.json, list_inputs(args.images, JPEG_SUFFIXES), args.masks)
        return 0
    settings = CodingSettings(mode="roi", blade=jpegexact.CODER, background="hp-easn", bg_quality=args.bg_quality)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-jpegexact-") as folder:
        coders, shipped, bitswap = load_coders(Path(folder))
        bitswap = bitswap and not args.no_bitswap
        run_settings = {"blade": jpegexact.CODER, "bg_quality": args.bg_quality,
                        "masks": Path(args.masks).name if args.masks else "drawn (edge.bench.masks.draw_blade_mask)",
                        "lossy_model": coders.lossy.model_name, "lossy_weights": coders.lossy.weights_sha256,
                        "background_representative": shipped,
                        "proxy": None if shipped else f"AVIF quality {args.proxy_quality} over the lossy patches",
                        "bitswap_weights": bitswap, "jxl_effort": args.jxl_effort}
        done = previous_rows(args.json, run_settings) if args.resume else {}
        for path in list_inputs(args.images, JPEG_SUFFIXES):
            if path.name in done:
                rows.append(done[path.name])
                continue
            try:
                row = measure(path, args.masks, coders, settings, shipped, bitswap, args.proxy_quality,
                              args.jxl_effort)
            except EdgeError as error:
                print(f"{path}: {error}", file=sys.stderr)
                return 1
            rows.append(row)
            proxy = f" | proxy bundle {8 * row['bundle_with_proxy_bytes'] / (row['width'] * row['height']):.3f} bpp " \
                    f"ratio {row['ratio_with_proxy']:.1f}x" if not shipped else ""
            print(f"{row['image']}: blade {row['blade_fraction']:.1%} (cells {row['blade_cell_fraction']:.1%}) | "
                  f"source {row['source_bpp']:.3f} bpp | blade exact {row['blade_bpp']:.4f} bpp, "
                  f"JPEG XL lossless {row['jpegxl_lossless_blade_bpp']:.3f} bpp | bundle {row['bundle_bpp']:.3f} bpp "
                  f"ratio {row['ratio']:.1f}x{proxy} | identical {'yes' if row['blade_pixels_identical'] else 'NO'}",
                  flush=True)
            write_result(args.json, run_settings, rows, shipped)
    print(json.dumps(summarize(rows, shipped), indent=1))
    write_result(args.json, run_settings, rows, shipped)
    return 0


def write_result(path: Path | None, settings: dict, rows: list[dict], shipped: bool) -> None:
    if path is not None:
        result = {"settings": settings, "images": rows, "summary": summarize(rows, shipped)}
        path.write_text(json.dumps(result, indent=1))


def previous_rows(path: Path | None, settings: dict) -> dict[str, dict]:
    """Rows of an earlier run with the same settings, by photo name (nothing if they differ)."""
    if path is None or not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot resume: {error}", str(path)) from None
    if saved.get("settings") != settings:
        return {}
    return {row["image"]: row for row in saved.get("images", [])}


if __name__ == "__main__":
    sys.exit(main())
