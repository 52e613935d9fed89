"""``edge-bench``: the whole pipeline, stage by stage, against classical codecs in the same run.

    edge-bench IMAGES_OR_FOLDERS... [--masks DIR | --draw-masks] [--modes auto,...] [--full] [--json OUT]
               [--plots DIR] [--crop N] [--limit N] [--resume] [--link-mbps 2] [--flight-photos 400]
    edge-bench --from-json OUT [--plots DIR] [--link-mbps ...]     # re-render tables and plots
    edge-bench ... --json RERUN --compare OUT    # rerun: same rates and quality within noise? (exit 3 if not)

Masks come from ``--masks DIR`` (DIR/STEM.png, non-zero = blade), from ``--draw-masks`` (a
colour heuristic, for photos without drawn masks) or, without either, from the shipped BU-Netv2
and its post-processing (each photo segmented as its own surface). With a given or drawn mask
the segmentation still runs, for its stage times and its agreement with the coded mask, unless
``--no-segmentation`` or its weights are missing. Models come from the registry unless a
weights file is given (``--lossy-weights``, ``--bitswap-weights``, ``--seg-weights``). What is
measured: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from edge.bench.compare import compare_results, format_comparison
from edge.bench.uplink import DEFAULT_FLIGHT_MINUTES, DEFAULT_LINK_MBPS, DEFAULT_PHOTOS, Flight
from edge.errors import EdgeError, InputError, ModelError
from edge.registry import get_spec, load_model, weights_sha256

# The other imports are in the functions that use them: this is the `edge-bench` script's main
# module, which every spawned stream-pool worker imports again, and the pipeline's, the codec's
# and torch's imports at its top cost each worker 0.17 s and 21 MB (counted in the peak memory
# the benchmark reports).


def build_parser() -> argparse.ArgumentParser:
    from edge.bench.pipeline import DEFAULT_MODES, MODES

    p = argparse.ArgumentParser(prog="edge-bench", description=__doc__.splitlines()[0].replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("images", nargs="*", help="photos or folders of photos")
    masks = p.add_mutually_exclusive_group()
    masks.add_argument("--masks", type=Path, help="folder of blade masks STEM.png (default: segment the photos)")
    masks.add_argument("--draw-masks", action="store_true", help="draw each mask from colour (edge.bench.masks)")
    p.add_argument("--no-segmentation", action="store_true",
                   help="with --masks or --draw-masks: do not run (and time) the segmentation as well")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"comma list from {', '.join(MODES)}")
    p.add_argument("--json", type=Path, help="write the result here (rewritten after every photo)")
    p.add_argument("--resume", action="store_true", help="keep the photos --json already holds for these settings")
    p.add_argument("--plots", type=Path, help="write rd.png, stages.png and uplink.png into this folder")
    p.add_argument("--from-json", type=Path, help="re-render the tables (and --plots) of a saved result")
    p.add_argument("--compare", type=Path, metavar="EARLIER_JSON",
                   help="then compare this result's rates, sizes and quality with an earlier one "
                        "(exit status 3 when they differ beyond noise)")
    p.add_argument("--limit", type=int, default=0, help="only the first N photos (0: all)")
    p.add_argument("--crop", type=int, default=0, help="code a square of N pixels, see --crop-at (0: the whole photo)")
    p.add_argument("--crop-at", choices=("centre", "blade"), default="centre",
                   help="where the crop sits: the photo's centre or the blade's centroid")
    p.add_argument("--rd-crop", type=int, default=1024, help="centred square for the RD sweeps (0: as coded)")
    p.add_argument("--bg-quality", type=int, default=0, help="the learned modes' background quality level")
    p.add_argument("--bg-psnr", type=float, default=25.0, help="the auto modes' background PSNR target in dB")
    p.add_argument("--time-budget", type=float, default=10.0,
                   help="auto modes: seconds a learned coder may take on a region to be tried")
    p.add_argument("--learned-estimates", type=int, default=0, metavar="N",
                   help="auto mode, first N photos: also estimate what HP+EASN-deep and Bit-swap would cost "
                        "(calibration tiles, about a minute a photo)")
    p.add_argument("--blade-quality", default="auto",
                   help="quality level of a lossy blade, or 'auto': the lowest reaching --blade-psnr")
    p.add_argument("--blade-psnr", type=float, default=40.0, help="blade PSNR target in dB (auto, classical ROI)")
    p.add_argument("--sequential", type=int, default=1,
                   help="photos whose blade is also coded by Bit-swap's sequential mode, for the speed-up")
    p.add_argument("--no-classical", action="store_true", help="skip the classical lossless and ROI baselines")
    p.add_argument("--full", action="store_true",
                   help="also the RD sweeps and BD-rates (our lossy coder at every level and four classical "
                        "codecs on --rd-crop: minutes a photo); without it a 15.7 MP photo takes about a minute")
    p.add_argument("--no-rd", action="store_true", help="no RD sweeps even with --full")
    p.add_argument("--roi-codec", default="avif", help="codec of the two-layer classical ROI baseline")
    p.add_argument("--link-mbps", type=float, help=f"uplink speed in Mbit/s (default {DEFAULT_LINK_MBPS:g})")
    p.add_argument("--flight-photos", type=int, help=f"photos per flight (default {DEFAULT_PHOTOS})")
    p.add_argument("--flight-minutes", type=float, help=f"flight duration (default {DEFAULT_FLIGHT_MINUTES:g})")
    p.add_argument("--lossy-weights", type=Path, help="lossy weights file instead of the registry's hp-easn")
    p.add_argument("--bitswap-weights", type=Path, help="Bit-swap weights file instead of the registry's")
    p.add_argument("--seg-weights", type=Path, help="BU-Netv2 weights file instead of the registry's")
    p.add_argument("--workers", type=int, default=2, help="processes of Bit-swap's stream pool (0: none)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--backends", action="store_true",
                   help="also time every network on PyTorch and on ONNX Runtime (CPU), 1 and 2 threads")
    return p


def list_images(names: list[str], limit: int) -> list[Path]:
    from edge.bench.lossless import list_inputs

    paths = list_inputs(names)
    if not paths:
        raise InputError("no photos found", " ".join(names))
    return paths[:limit] if limit > 0 else paths


def flight_from(args, saved: dict | None = None) -> Flight | None:
    given = {"photos": args.flight_photos, "minutes": args.flight_minutes, "link_mbps": args.link_mbps}
    if saved is not None and all(v is None for v in given.values()):
        return None                    # keep the result's own flight
    base = {**Flight().__dict__, **(saved or {})}
    return Flight(**{k: (v if v is not None else base[k]) for k, v in given.items()})


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as error:
        raise ModelError(f"cannot read weights {path}: {error.strerror}") from None


def load_models(args, modes: tuple[str, ...], pool):
    """The coders and segmenter this run needs; returns (BenchModels, weights ids)."""
    from edge.bench.pipeline import BenchModels
    from edge.codec.photo import Coders

    weights = {}
    if args.lossy_weights:
        from edge.codec.lossy.weights import load_coder
        lossy = load_coder(args.lossy_weights)
    else:
        lossy = load_model("hp-easn")
    weights["lossy"] = lossy.weights_sha256

    parallel = sequential = None
    if any(m in ("lossless-roi", "lossless") for m in modes):
        from edge.codec.bitswap.coder import BitswapCoder, load_weights

        if args.bitswap_weights:
            model, sha = load_weights(args.bitswap_weights), _sha256(args.bitswap_weights)
        else:
            model, sha = load_model("bitswap"), weights_sha256(get_spec("bitswap").weights_path)
        parallel = BitswapCoder(model, sha, "bitswap", pool=pool)
        sequential = BitswapCoder(model, sha, "bitswap", streams=1)
        names = [parallel.nets.latent.name, parallel.nets.pixel.name]
        if pool is not None:
            pool.warm(names)           # table building is set-up, not coding time
        parallel.nets.latent.build_all()
        parallel.nets.pixel.build_all()
        weights["bitswap"] = sha

    if args.masks is not None and not args.masks.is_dir():
        raise InputError("mask folder not found", str(args.masks))
    given_masks = args.masks is not None or args.draw_masks
    segmenter = None
    if not (given_masks and args.no_segmentation):
        from edge.segment.pipeline import load_segmenter
        try:
            segmenter = load_segmenter(args.seg_weights)
        except ModelError as error:
            if not given_masks:
                raise ModelError(f"no --masks given and no segmentation model: {error}") from None
            print(f"edge-bench: segmentation not timed: {error}", file=sys.stderr)
    if segmenter is not None:
        weights["segmenter"] = _sha256(args.seg_weights) if args.seg_weights else "registry:bunetv2"
    # --threads also sets the classical codecs' threads (their output must not depend on it).
    models = BenchModels(Coders(lossy=lossy, lossless=parallel, threads=args.threads or 2),
                         bitswap_sequential=sequential,
                         segmenter=segmenter, masks_dir=args.masks, draw_masks=args.draw_masks,
                         worker_pids=[p.pid for p in pool.processes] if pool is not None else [])
    return models, weights


def _options(args):
    from edge.bench.pipeline import BenchOptions

    if args.blade_quality == "auto":
        blade_quality = None
    else:
        try:
            blade_quality = int(args.blade_quality)
        except ValueError:
            raise InputError(f"--blade-quality must be a level number or 'auto', not {args.blade_quality!r}") from None
    return BenchOptions(modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()), crop=args.crop,
                        crop_at=args.crop_at,
                        rd_crop=args.rd_crop, bg_quality=args.bg_quality, bg_psnr=args.bg_psnr,
                        time_budget=args.time_budget, learned_estimates=args.learned_estimates,
                        blade_quality=blade_quality,
                        blade_psnr=args.blade_psnr, sequential=args.sequential,
                        classical=not args.no_classical, rd=args.full and not args.no_rd,
                        roi_codec=args.roi_codec)


def _progress_bar(total: int, quiet: bool):
    if quiet:
        return None, None
    bar = tqdm(total=total, unit="photo", dynamic_ncols=True, file=sys.stderr)

    def progress(image: str, done: int, stage: str) -> None:
        bar.n = done
        bar.set_postfix_str(f"{image}: {stage}")   # refreshes the bar

    return bar, progress


def render_outputs(result: dict, args, flight: Flight | None) -> None:
    from edge.bench.plots import write_plots
    from edge.bench.report import render

    print(render(result, flight))
    if args.plots:
        for path in write_plots(result, args.plots, flight):
            print(f"plot: {path}")
    if args.json and not args.from_json:
        print(f"json: {args.json}")


def compare_with_earlier(result: dict, args) -> int:
    """Print the comparison with ``--compare``; the exit status (3: the runs differ)."""
    from edge.bench.runner import load_result

    comparison = compare_results(load_result(args.compare), result)
    print(format_comparison(comparison, str(args.compare), str(args.from_json or args.json or "this run")))
    return 0 if comparison["same"] else 3


def run(args) -> int:
    if args.from_json:
        from edge.bench.runner import load_result

        result = load_result(args.from_json)
        render_outputs(result, args, flight_from(args, result.get("settings", {}).get("flight")))
        return compare_with_earlier(result, args) if args.compare else 0
    if not args.images:
        raise InputError("give photos or folders to measure (or --from-json)")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    options = _options(args)
    paths = list_images(args.images, args.limit)
    flight = flight_from(args)
    pool = None
    if args.workers > 0 and any(m in ("lossless-roi", "lossless") for m in options.modes):
        from edge.codec.bitswap.streams import StreamPool
        pool = StreamPool(args.workers)    # before anything could start CUDA
    bar = None
    try:
        from edge.bench.runner import run_benchmark

        models, weights = load_models(args, options.modes, pool)
        bar, progress = _progress_bar(len(paths), args.quiet)
        result = run_benchmark(paths, options, models, weights, flight, args.json, args.resume, progress)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.close()
    if args.backends:
        result["backends"] = backend_speeds(args)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    render_outputs(result, args, None)
    return compare_with_earlier(result, args) if args.compare else 0


def backend_speeds(args) -> list[dict]:
    """PyTorch against ONNX Runtime for each network the engines accelerate (edge.bench.engines)."""
    from edge.bench import engines
    from edge.runtime.networks import lossy_group, segmentation_group

    coder, unet, _ = engines.load_models(args.lossy_weights, args.seg_weights)
    with tempfile.TemporaryDirectory() as folder:
        return engines.measure([lossy_group(coder), segmentation_group(unet)], [1, 2], repeat=3, patches=2,
                               folder=Path(folder))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except EdgeError as error:
        print(f"edge-bench: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edge-bench: interrupted" + (f"; {args.json} holds the photos measured so far" if args.json else ""),
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
