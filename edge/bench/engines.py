"""Speed of ONNX Runtime vs PyTorch on the CPU for each accelerated network.

    python -m edge.bench.engines [--threads 1 2] [--repeat 3] [--patches 2] [--json OUT]
                                 [--lossy-weights FILE] [--segment-weights FILE]
                                 [--images IMG... [--agreement-patches 16] [--skip-speed]]

Networks at the shapes the pipeline uses: g_a, h_a, g_s on ``--patches`` 256x256 patches
(the coder calls them with up to 8), the U-Net on the 4 flips of a 3:4 photo at its working
size (long side 512). Weights: the shipped ones if present, else the given files, else a
random initialisation of the shipped configuration (speed does not depend on the values).
For every thread count: wall time (median and best of ``--repeat`` calls after a warm-up),
process CPU time per call (less inflated when the machine is busy) and the largest output
difference between the two backends. With ``--images``, also how many quantised latents
differ between ONNX Runtime and PyTorch analysis (rounding at .5 boundaries) at every quality
level. Writes JSON (``--json``) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge.codec.imageio import read_image
from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
from edge.codec.lossy.weights import export_weights, load_coder
from edge.registry import MODELS, load_model
from edge.runtime.backends import OnnxRuntimeBackend, TorchBackend
from edge.runtime.networks import NetworkGroup, lossy_group, segmentation_group
from edge.runtime.onnx_export import export_group
from edge.segment.unet import BUNetV2, UNetConfig, load_weights


def load_models(lossy_weights: Path | None, segment_weights: Path | None) -> tuple:
    """(lossy coder, U-Net, where their weights came from)."""
    origin = {}
    if lossy_weights is not None:
        coder, origin["lossy"] = load_coder(Path(lossy_weights)), str(lossy_weights)
    elif "hp-easn" in MODELS and MODELS["hp-easn"].weights_path.is_file():
        coder, origin["lossy"] = load_model("hp-easn"), "shipped hp-easn"
    else:
        coder, origin["lossy"] = _random_lossy_coder(), "random init of LossyConfig() (n=128, m=192)"
    if segment_weights is not None:
        unet, origin["segmentation"] = load_weights(Path(segment_weights)), str(segment_weights)
    elif "bunetv2" in MODELS and MODELS["bunetv2"].weights_path.is_file():
        unet, origin["segmentation"] = load_model("bunetv2"), "shipped bunetv2"
    else:
        torch.manual_seed(0)
        unet, origin["segmentation"] = BUNetV2(UNetConfig()).eval(), "random init of UNetConfig() (width 16, long side 512)"
    return coder, unet, origin


def _random_lossy_coder():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random-lossy.pt"
        export_weights(HyperpriorEASN(LossyConfig()), path)
        return load_coder(path, "hp-easn")


def bench_input(group: NetworkGroup, name: str, patches: int) -> torch.Tensor:
    spec = group.networks[name].spec
    generator = torch.Generator().manual_seed(1)
    if group.kind == "lossy":
        x = torch.rand((patches, *spec.opt_shape[1:]), generator=generator)
        # Latent inputs at the scale of real latents (integers of a few units).
        return x if name == "g_a" else torch.round((x - 0.5) * 8)
    return torch.randn(spec.opt_shape, generator=generator)


def time_calls(function, x: torch.Tensor, repeat: int) -> dict:
    function(x)                                    # warm-up (allocations, ORT graph setup)
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function(x)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_median_s": statistics.median(walls), "wall_best_s": min(walls),
            "cpu_median_s": statistics.median(cpus)}


def measure(groups: list[NetworkGroup], threads: list[int], repeat: int, patches: int, folder: Path) -> list[dict]:
    rows = []
    for group in groups:
        paths = {name: path for name, (path, _) in export_group(group, folder).items()}
        modules = {name: network.module for name, network in group.networks.items()}
        for count in threads:
            torch.set_num_threads(count)
            torch_backend = TorchBackend(modules, "cpu")
            ort_backend = OnnxRuntimeBackend(paths, threads=count, providers=["CPUExecutionProvider"])
            for name in group.networks:
                x = bench_input(group, name, patches)
                row = {"model": group.model, "network": name, "threads": count, "input": list(x.shape)}
                row["torch"] = time_calls(lambda t: torch_backend.run(name, t), x, repeat)
                row["onnxruntime"] = time_calls(lambda t: ort_backend.run(name, t), x, repeat)
                difference = (torch_backend.run(name, x) - ort_backend.run(name, x)).abs().max()
                row["max_abs_difference"] = float(difference)
                row["speedup"] = row["torch"]["wall_median_s"] / row["onnxruntime"]["wall_median_s"]
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def latent_agreement(coder, patches, levels, folder: Path, threads: int = 1) -> list[dict]:
    """How many quantised latents differ when ONNX Runtime instead of PyTorch runs g_a and h_a.

    A difference is harmless for decoding (the decoder gets the transmitted latents exactly);
    it only means two encoders do not produce bit-identical bundles.
    """
    paths = {name: path for name, (path, _) in export_group(lossy_group(coder), folder).items()}
    ort_backend = OnnxRuntimeBackend(paths, threads=threads, providers=["CPUExecutionProvider"])
    rows = []
    for level in levels:
        coder.use_backend(None)
        reference = coder.analyse(patches, level)
        coder.use_backend(ort_backend)
        try:
            other = coder.analyse(patches, level)
        finally:
            coder.use_backend(None)
        rows.append({"level": level, "patches": len(patches), "y_latents": int(reference.y_hat.size),
                     "y_differ": int((reference.y_hat != other.y_hat).sum()),
                     "y_nonzero": int(np.count_nonzero(reference.y_hat)),
                     "z_latents": int(reference.z_hat.size), "z_differ": int((reference.z_hat != other.z_hat).sum())})
        print(f"level {level}: {rows[-1]['y_differ']} of {rows[-1]['y_latents']} y latents differ "
              f"({rows[-1]['y_nonzero']} non-zero), {rows[-1]['z_differ']} of {rows[-1]['z_latents']} z", flush=True)
    return rows


def image_patches_from(paths: list[Path], count: int, size: int = 256) -> np.ndarray:
    """Up to ``count`` patches from the images, taken on a grid around each image's centre."""
    patches = []
    per_image = max(1, count // max(1, len(paths)))
    for path in paths:
        image = read_image(path)[0]
        top, left = (image.shape[0] - size * 2) // 2, (image.shape[1] - size * 2) // 2
        for index in range(per_image):
            y, x = top + (index // 2) * size, left + (index % 2) * size + (index // 4) * 2 * size
            if 0 <= y and y + size <= image.shape[0] and 0 <= x and x + size <= image.shape[1]:
                patches.append(image[y:y + size, x:x + size].transpose(2, 0, 1))
    return np.stack(patches[:count])


def format_row(row: dict) -> str:
    t, o = row["torch"], row["onnxruntime"]
    return (f"{row['network']:<5} {row['threads']} thr  input {'x'.join(map(str, row['input'])):<16} "
            f"torch {t['wall_median_s'] * 1000:8.1f} ms (cpu {t['cpu_median_s'] * 1000:8.1f})  "
            f"ort {o['wall_median_s'] * 1000:8.1f} ms (cpu {o['cpu_median_s'] * 1000:8.1f})  "
            f"torch/ort {row['speedup']:.2f}  max diff {row['max_abs_difference']:.1e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to time")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per network and backend")
    parser.add_argument("--patches", type=int, default=2, help="256x256 patches per lossy call")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--lossy-weights", type=Path, help="lossy weights file (default: shipped or random)")
    parser.add_argument("--segment-weights", type=Path, help="BU-Netv2 weights file (default: shipped or random)")
    parser.add_argument("--images", type=Path, nargs="+", help="also count latents that differ between ONNX "
                        "Runtime and PyTorch analysis on patches of these images, at every quality level")
    parser.add_argument("--agreement-patches", type=int, default=16, help="patches for --images")
    parser.add_argument("--skip-speed", action="store_true", help="only the latent count (with --images)")
    args = parser.parse_args(argv)
    import onnxruntime   # imported here: an optional dependency (the onnx extra)
    coder, unet, origin = load_models(args.lossy_weights, args.segment_weights)
    groups = [lossy_group(coder), segmentation_group(unet)]
    with tempfile.TemporaryDirectory() as folder:
        rows = [] if args.skip_speed else measure(groups, args.threads, args.repeat, args.patches, Path(folder))
        agreement = []
        if args.images:
            torch.set_num_threads(1)
            patches = image_patches_from(args.images, args.agreement_patches)
            agreement = latent_agreement(coder, patches, range(coder.levels), Path(folder))
    result = {"benchmark": "engines-cpu", "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
              "machine": platform.machine(), "processor": platform.processor(), "weights": origin,
              "repeat": args.repeat, "rows": rows, "latent_agreement": agreement}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
