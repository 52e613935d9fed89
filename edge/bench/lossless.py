"""Lossless benchmark: Bit-swap against PNG, WebP, JPEG XL, JPEG 2000 and JPEG-LS, in one run.

    python -m edge.bench.lossless IMAGE_OR_DIR... [--crop 512] [--json OUT]

Each image is cut to a centred crop of ``--crop`` pixels (a multiple of 64 and of the 16-pixel
JPEG grid; ``--crop 0`` keeps the whole image) because Bit-swap codes about a few patches per
second on a CPU. Every codec codes the same crop; every stream is decoded and checked.

Bit-swap runs in parallel mode (standalone seeds, several streams in lock-step, the ANS work in
a process pool) on every crop; on the first ``--sequential`` crops it also runs the reference's
sequential mode (one chain, one process), to report seconds per megapixel of both and the
speed-up, in wall-clock seconds and in CPU seconds (this process plus the pool's workers: on a
busy machine the wall clock measures the other jobs as much as the coder). Its rate counts every stored stream word, including the seed words the coding consumed;
the initial bits of a stream are the seed bits its first patch took, the net bits per patch the
rest. ``net_bpp`` leaves the initial bits out: the rate of blade patches in the ROI coder, whose
streams are seeded by the coded background. Images are grouped by their folder name (e.g. dtu-dev, wta-train) in the summary.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import torch

from edge.codec.bitswap.coder import STANDALONE_SEED_WORDS, BitswapCoder
from edge.codec.bitswap.model import BitswapConfig, BitswapVAE
from edge.codec.bitswap.streams import StreamPool
from edge.codec.patches import PatchGrid, mirror_pad, to_patches
from edge.errors import EdgeError, InputError
from edge.registry import get_spec, load_model as registry_load, weights_sha256
from edge.segment.dataset import IMAGE_SUFFIXES

CLASSICAL = ("png", "webp", "jpegxl", "jpeg2000", "jpegls")


def classical_codecs() -> dict:
    return {
        "png": (lambda a: imagecodecs.png_encode(a, level=9), imagecodecs.png_decode),
        "webp": (lambda a: imagecodecs.webp_encode(a, lossless=True, level=100), imagecodecs.webp_decode),
        "jpegxl": (lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=7), imagecodecs.jpegxl_decode),
        "jpeg2000": (lambda a: imagecodecs.jpeg2k_encode(a, reversible=True), imagecodecs.jpeg2k_decode),
        "jpegls": (lambda a: imagecodecs.jpegls_encode(a), imagecodecs.jpegls_decode),
    }


def list_inputs(paths: list[str], suffixes: set[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The given files, and the images (by suffix) in the given folders."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
        elif path.is_file():
            out.append(path)
        else:
            raise InputError("no such image or folder", name)
    return out


def recorded_path(path: Path) -> str:
    """How a result file names a photo: relative to its data set's folder, with that folder's name
    (``dtu-dev/DJI_0057.JPG``, ``wta-train/images/envA_03.JPG``), never where the set lies on one machine."""
    path = Path(os.path.abspath(path))
    root = path.parent.parent if path.parent.name == "images" else path.parent
    return f"{root.name}/{path.relative_to(root).as_posix()}" if root.name else path.name


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    if size <= 0:
        return image
    size = min(size, image.shape[0] // 64 * 64, image.shape[1] // 64 * 64)
    top = (image.shape[0] - size) // 2 // 16 * 16
    left = (image.shape[1] - size) // 2 // 16 * 16
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def measure_classical(image: np.ndarray, codecs: dict) -> dict:
    pixels = image.shape[0] * image.shape[1]
    results = {}
    for name, (encode, decode) in codecs.items():
        try:
            start = time.perf_counter()
            data = encode(image)
            seconds = time.perf_counter() - start
            exact = bool(np.array_equal(np.asarray(decode(data)).reshape(image.shape), image))
            results[name] = {"bytes": len(data), "bpp": 8 * len(data) / pixels, "exact": exact,
                             "encode_s": seconds}
        except Exception as error:  # one failing codec must not stop the benchmark
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    return results


def measure_bitswap(coder, image: np.ndarray) -> dict:
    pixels = image.shape[0] * image.shape[1]

    def cpu() -> np.ndarray:   # CPU seconds of this process (the networks) and of the pool's workers
        return np.array([time.process_time(), coder.pool.cpu_seconds() if coder.pool is not None else 0.0])

    cpu_start, start = cpu(), time.perf_counter()
    coded = coder.compress_image(image)
    encode_s = time.perf_counter() - start
    encode_cpu = cpu() - cpu_start
    cpu_start, start = cpu(), time.perf_counter()
    exact = bool(np.array_equal(coder.decompress_image(coded), image))
    decode_s = time.perf_counter() - start
    decode_cpu = cpu() - cpu_start
    initial_bits = [32 * (STANDALONE_SEED_WORDS - prefix) for prefix in coded.params["prefix"]]
    return {"bytes": coded.bits // 8, "bpp": coded.bits / pixels, "net_bpp": (coded.bits - sum(initial_bits)) / pixels,
            "exact": exact, "patches": coded.count,
            "streams": len(coded.streams), "encode_s": encode_s, "decode_s": decode_s,
            "encode_s_per_mp": encode_s / (pixels / 1e6), "decode_s_per_mp": decode_s / (pixels / 1e6),
            "encode_cpu_s": float(encode_cpu.sum()), "decode_cpu_s": float(decode_cpu.sum()),
            "encode_cpu_s_main_workers": encode_cpu.tolist(), "decode_cpu_s_main_workers": decode_cpu.tolist(),
            "initial_bits_per_stream": float(np.mean(initial_bits)),
            "net_bits_per_patch": (coded.bits - sum(initial_bits)) / coded.count,
            "bits_per_patch": coded.bits / coded.count}


def elbo_bpp(model, image: np.ndarray) -> float:
    """The model's negative ELBO (float32, one sample) on the image's patches, in bits per pixel."""
    grid = PatchGrid(image.shape[0], image.shape[1], 64)
    patches = torch.from_numpy(to_patches(mirror_pad(image, grid), grid))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        total = sum(float(sum(model(patches[i:i + 64], generator=generator).values()).sum())
                    for i in range(0, len(patches), 64))
    return total / math.log(2.0) / (image.shape[0] * image.shape[1])


def load_model(args):
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        model = BitswapVAE(BitswapConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
        return model.eval(), "checkpoint:" + Path(args.checkpoint).name
    return registry_load("bitswap"), weights_sha256(get_spec("bitswap").weights_path)


def workers_count(rows: list[dict]) -> int:
    return max(1, int(rows[0].get("workers", 1))) if rows else 1


def summarize(rows: list[dict]) -> dict:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    summary = {}
    for group, items in groups.items():
        pixels = sum(row["pixels"] for row in items)
        entry = {"images": len(items), "megapixels": pixels / 1e6}
        for codec in ("bitswap", *CLASSICAL):
            sizes = [row[codec].get("bytes") for row in items if codec in row]
            if sizes and all(size is not None for size in sizes):
                entry[f"{codec}_bpp"] = 8 * sum(sizes) / pixels
        entry["bitswap_net_bpp"] = sum(row["bitswap"]["net_bpp"] * row["pixels"] for row in items) / pixels
        if "bitswap_bpp" in entry and "jpegxl_bpp" in entry:
            entry["bitswap_to_jpegxl"] = entry["bitswap_bpp"] / entry["jpegxl_bpp"]
            entry["bitswap_net_to_jpegxl"] = entry["bitswap_net_bpp"] / entry["jpegxl_bpp"]
        if "bitswap_bpp" in entry and "png_bpp" in entry:
            entry["bitswap_to_png"] = entry["bitswap_bpp"] / entry["png_bpp"]
        elbo = [row["elbo_bpp"] * row["pixels"] for row in items if "elbo_bpp" in row]
        if len(elbo) == len(items):
            entry["elbo_bpp"] = sum(elbo) / pixels
        summary[group] = entry
    timed = [row for row in rows if "bitswap_sequential" in row]
    if timed:
        pixels = sum(row["pixels"] for row in timed) / 1e6
        for mode in ("sequential", "parallel"):
            key = "bitswap_sequential" if mode == "sequential" else "bitswap"
            for op in ("encode", "decode"):
                summary.setdefault("speed", {})[f"{mode}_{op}_s_per_mp"] = \
                    sum(row[key][f"{op}_s"] for row in timed) / pixels
                summary["speed"][f"{mode}_{op}_cpu_s_per_mp"] = sum(row[key][f"{op}_cpu_s"] for row in timed) / pixels
        speed = summary["speed"]
        # On idle cores the pipelined parallel mode takes max(networks, ANS work / workers) per job.
        for op in ("encode", "decode"):
            main, workers = np.sum([row["bitswap"][f"{op}_cpu_s_main_workers"] for row in timed], axis=0)
            sequential_cpu = sum(row["bitswap_sequential"][f"{op}_cpu_s"] for row in timed)
            speed[f"{op}_speedup_on_idle_cores_estimate"] = sequential_cpu / max(main, workers / workers_count(rows))
        speed["encode_speedup"] = speed["sequential_encode_s_per_mp"] / speed["parallel_encode_s_per_mp"]
        speed["decode_speedup"] = speed["sequential_decode_s_per_mp"] / speed["parallel_decode_s_per_mp"]
        speed["images"] = len(timed)
    coded = [row["bitswap"] for row in rows if "bitswap" in row]
    if coded:
        summary["bitswap_bits"] = {
            "net_bits_per_patch": float(np.mean([c["net_bits_per_patch"] for c in coded])),
            "initial_bits_per_stream": float(np.mean([c["initial_bits_per_stream"] for c in coded])),
            "all_exact": all(c["exact"] for c in coded),
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.bench.lossless", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="images or folders of images")
    parser.add_argument("--crop", type=int, default=512, help="centred square crop in pixels (0: whole image)")
    parser.add_argument("--sequential", type=int, default=2, help="crops also coded in sequential mode")
    parser.add_argument("--workers", type=int, default=2, help="processes of the stream pool")
    parser.add_argument("--streams", type=int, default=0, help="streams per crop in parallel mode (0: auto)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the networks (0: torch's default)")
    parser.add_argument("--checkpoint", help="a training checkpoint instead of the shipped weights")
    parser.add_argument("--latent-bins", type=int, default=0, help="latent bins (0: the weights' own)")
    parser.add_argument("--no-elbo", action="store_true", help="skip the model's ELBO estimate")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)

    pool = StreamPool(args.workers)  # before anything could start CUDA
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        model, weights_id = load_model(args)
        streams = args.streams or None
        bins = args.latent_bins or None
        parallel = BitswapCoder(model, pool=pool, streams=streams, latent_bins=bins)
        sequential = BitswapCoder(model, streams=1, latent_bins=bins)
        pool.warm([parallel.nets.latent.name, parallel.nets.pixel.name])
        parallel.nets.latent.build_all()      # the sequential coder shares this process's tables
        parallel.nets.pixel.build_all()
        codecs = classical_codecs()
        rows = []
        for index, path in enumerate(list_inputs(args.images)):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError("cannot be read as an image", str(path))
            image = centre_crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), args.crop)
            row = {"image": recorded_path(path), "group": path.parent.parent.name if path.parent.name == "images"
                   else path.parent.name, "height": image.shape[0], "width": image.shape[1],
                   "pixels": image.shape[0] * image.shape[1]}
            row.update(measure_classical(image, codecs))
            row["bitswap"] = measure_bitswap(parallel, image)
            row["workers"] = args.workers
            if index < args.sequential:
                row["bitswap_sequential"] = measure_bitswap(sequential, image)
            if not args.no_elbo:
                row["elbo_bpp"] = elbo_bpp(model, image)
            rows.append(row)
            others = " ".join(f"{c}={row[c]['bpp']:.3f}" for c in CLASSICAL if "bpp" in row[c])
            print(f"{path.name}: bitswap={row['bitswap']['bpp']:.3f} bpp "
                  f"({row['bitswap']['encode_s_per_mp']:.1f} s/MP) {others}", flush=True)
        result = {"weights": weights_id, "crop": args.crop, "workers": args.workers,
                  "latent_bins": parallel.latent_bins, "load_average": list(os.getloadavg()),
                  "torch_threads": torch.get_num_threads(), "rows": rows, "summary": summarize(rows)}
    except EdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        pool.close()
    print(json.dumps(result["summary"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
