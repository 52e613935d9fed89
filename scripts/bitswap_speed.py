"""Bit-swap speed: the same real 64x64 patches coded three ways, each decoded back exactly.

    python scripts/bitswap_speed.py PHOTO [--patches 128] [--streams 16] [--workers 2] [--threads 1]

- sequential: one stream, one process (the reference's chain);
- lock-step: ``--streams`` streams in one process (one network call and one ANS request per round);
- pool: the same streams sharded over ``--workers`` processes (networks and ANS in each).

The patches come from the centre 1024x1024 of PHOTO (the numbers in docs/benchmarks.md: a
dtu-dev photo). The
net rate excludes the seed words. Run it on idle cores: it measures wall time.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from edge.codec.bitswap.coder import BitswapCoder, standalone_seed
from edge.codec.bitswap.streams import StreamPool
from edge.codec.imageio import read_image
from edge.codec.patches import PatchGrid, mirror_pad, to_patches

def centre_patches(photo: Path, count: int) -> np.ndarray:
    image = read_image(photo)[0]
    top, left = image.shape[0] // 2 - 512, image.shape[1] // 2 - 512
    grid = PatchGrid(1024, 1024, 64)
    return to_patches(mirror_pad(image[top:top + 1024, left:left + 1024], grid), grid)[:count]


def time_mode(coder: BitswapCoder, patches: np.ndarray, seeds: list[np.ndarray]) -> dict:
    started = time.perf_counter()
    coded = coder.compress(patches, initial_words=seeds)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded, _ = coder.decompress_with_seeds(coded)
    decode_s = time.perf_counter() - started
    if not np.array_equal(decoded, patches):
        raise SystemExit("decoded patches differ")
    net_bits = 8 * sum(len(s) for s in coded.streams) - 32 * sum(len(s) for s in seeds)
    megapixels = len(patches) * 64 * 64 / 1e6
    return {"encode_s_per_mp": encode_s / megapixels, "decode_s_per_mp": decode_s / megapixels,
            "net_bits_per_subpixel": net_bits / patches.size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path, help="a photo of at least 1024x1024 (its centre is coded)")
    parser.add_argument("--patches", type=int, default=128)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    patches = centre_patches(args.photo, args.patches)
    seeds = [standalone_seed(100 + s) for s in range(args.streams)]
    with StreamPool(args.workers) as pool:
        shipped = BitswapCoder.from_registry()
        model, bins = shipped.nets.net, shipped.latent_bins
        modes = {"sequential": (BitswapCoder(model, latent_bins=bins), seeds[:1]),
                 "lock-step": (BitswapCoder(model, latent_bins=bins), seeds),
                 f"pool of {args.workers}": (BitswapCoder(model, latent_bins=bins, pool=pool), seeds)}
        pool.warm([shipped.nets.latent.name, shipped.nets.pixel.name])
        results = {}
        for name, (coder, mode_seeds) in modes.items():
            coder.nets.latent.build_all()
            coder.nets.pixel.build_all()
            results[name] = time_mode(coder, patches, mode_seeds)
            r = results[name]
            print(f"{name:12s} encode {r['encode_s_per_mp']:6.2f} s/MP  decode {r['decode_s_per_mp']:6.2f} s/MP  "
                  f"net {r['net_bits_per_subpixel']:.3f} bits/sub-pixel", flush=True)
    base = results["sequential"]
    for name, r in results.items():
        print(f"speed-up of {name} over sequential: encode {base['encode_s_per_mp'] / r['encode_s_per_mp']:.2f}x, "
              f"decode {base['decode_s_per_mp'] / r['decode_s_per_mp']:.2f}x  (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
