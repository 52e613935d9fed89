"""Small randomly initialised models for tests: coding must be exact whatever the weights."""
from __future__ import annotations

from pathlib import Path

import torch

from edge.codec.bitswap.coder import BitswapCoder
from edge.codec.bitswap.model import BitswapConfig, BitswapVAE
from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
from edge.codec.lossy.weights import export_weights, load_coder


def tiny_lossy_coder(folder: Path, seed: int = 0, patch_size: int = 256):
    """A lossy coder with 16/24 channels, saved and loaded like shipped weights.

    A smaller ``patch_size`` (any multiple of 64) keeps ROI tests fast: fewer Bit-swap
    sub-patches per blade patch, more background streams to seed them.
    """
    torch.manual_seed(seed)
    model = HyperpriorEASN(LossyConfig(n=16, m=24))
    path = Path(folder) / f"tiny-lossy-{seed}.pt"
    export_weights(model, path)
    coder = load_coder(path, "tiny-lossy")
    coder.patch_size = patch_size
    return coder


def tiny_bitswap_coder(seed: int = 3) -> BitswapCoder:
    torch.manual_seed(seed)
    model = BitswapVAE(BitswapConfig(width=8, depth=1))
    with torch.no_grad():  # spread the distributions as a trained model's are
        for transform in [*model.q, *model.p, model.px]:
            transform.head.weight.mul_(8.0)
    return BitswapCoder(model.eval(), weights_sha256="0" * 64, model_name="tiny-bitswap")
