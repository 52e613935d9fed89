"""Picture quality measures used in reports and benchmarks."""
from __future__ import annotations

import math

import numpy as np


def psnr(reference: np.ndarray, decoded: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB over all channels; ``where`` (bool H x W) restricts it to those pixels."""
    diff = reference.astype(np.float64) - decoded.astype(np.float64)
    if where is not None:
        if not where.any():
            return float("nan")
        diff = diff[where]
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)
