"""MS-SSIM (Wang, Simoncelli, Bovik 2003), the standard 5-scale form, optionally over a region.

Per colour channel, on 8-bit values (dynamic range L = 255)::

    Gaussian window 11x11, sigma 1.5, 'valid' filtering (no padding)
    C1 = (0.01 L)^2, C2 = (0.03 L)^2
    cs_j  = mean over the map of (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)   at scales j = 1..5
    l_5   = mean over the map of (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)        at scale 5
    MS-SSIM = prod_{j<5} cs_j^w_j * (l_5 cs_5)^w_5,   w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

Between scales both images are averaged over 2x2 blocks (an odd last row or column is
dropped). Negative cs values are clipped to 0 before the powers, and the result is the mean
over the channels (the convention of the common PyTorch implementations). The smallest side
must be at least 161 pixels so the window fits at the coarsest scale.

With ``where`` (bool H x W) every map is averaged only over windows whose centre pixel lies
in the region; at coarser scales a pixel belongs to the region when at least half of the
2x2 block it averages does. A region too thin to hold a window centre at some scale gives NaN.
Without ``where`` the result is the plain image MS-SSIM. Computed in float32, one channel at a
time (about 0.7 GB for a 15.7 MP photo); the separable filter is OpenCV's.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
MIN_SIDE = (WINDOW - 1) * 2 ** (len(WEIGHTS) - 1) + 1   # 161


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-coords**2 / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of a float32 plane, 'valid' part only (no padded values used)."""
    margin = len(g) // 2
    full = cv2.sepFilter2D(x, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(full[margin: x.shape[0] - margin, margin: x.shape[1] - margin])


def _ssim_maps(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luminance and contrast-structure maps ('valid' size) of two float32 planes (in-place arithmetic)."""
    c1, c2 = np.float32((K1 * DATA_RANGE) ** 2), np.float32((K2 * DATA_RANGE) ** 2)
    mu_x, mu_y = np.ascontiguousarray(_filter(x, g)), np.ascontiguousarray(_filter(y, g))
    mu_xy = mu_x * mu_y
    mu_x *= mu_x
    mu_y *= mu_y
    # contrast-structure = (2 (E[xy] - mu_x mu_y) + C2) / (E[x^2] - mu_x^2 + E[y^2] - mu_y^2 + C2)
    denominator = _filter(x * x, g) + _filter(y * y, g)
    denominator -= mu_x
    denominator -= mu_y
    denominator += c2
    numerator = _filter(x * y, g) - mu_xy
    numerator *= 2
    numerator += c2
    numerator /= denominator
    # luminance = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    mu_x += mu_y
    mu_x += c1
    mu_xy *= 2
    mu_xy += c1
    mu_xy /= mu_x
    return mu_xy, numerator


def _region_mean(value: np.ndarray, region: np.ndarray | None) -> float:
    """Mean of a 'valid' map over the window centres inside ``region`` (bool, plane size)."""
    if region is None:
        return float(value.mean(dtype=np.float64))
    margin = WINDOW // 2
    inside = region[margin: margin + value.shape[0], margin: margin + value.shape[1]]
    if not inside.any():
        return math.nan
    return float(value[inside].mean(dtype=np.float64))


def _halve(x: np.ndarray) -> np.ndarray:
    """Average over 2x2 blocks; an odd last row or column is dropped."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) * np.float32(0.25)


def ssim(reference: np.ndarray, decoded: np.ndarray, where: np.ndarray | None = None) -> float:
    """Single-scale SSIM (same window and constants), mean over channels."""
    return _multiscale(reference, decoded, where, scales=1)


def ms_ssim(reference: np.ndarray, decoded: np.ndarray, where: np.ndarray | None = None) -> float:
    """5-scale MS-SSIM of two uint8 images (H, W) or (H, W, C); NaN when ``where`` is empty."""
    return _multiscale(reference, decoded, where, scales=len(WEIGHTS))


def _multiscale(reference: np.ndarray, decoded: np.ndarray, where: np.ndarray | None, scales: int) -> float:
    if reference.shape != decoded.shape:
        raise ValueError(f"images differ in shape: {reference.shape} and {decoded.shape}")
    if reference.ndim == 2:
        reference, decoded = reference[..., None], decoded[..., None]
    height, width = reference.shape[:2]
    need = (WINDOW - 1) * 2 ** (scales - 1) + 1
    if min(height, width) < need:
        raise ValueError(f"MS-SSIM needs images of at least {need}x{need} pixels, got {width}x{height}")
    if where is not None and where.shape != (height, width):
        raise ValueError(f"region mask is {where.shape}, the images {(height, width)}")
    g = gaussian_window()
    weights = WEIGHTS if scales == len(WEIGHTS) else (1.0,)
    per_channel = []
    for channel in range(reference.shape[2]):   # one plane at a time bounds memory on 20 MP photos
        x = np.ascontiguousarray(reference[..., channel], dtype=np.float32)
        y = np.ascontiguousarray(decoded[..., channel], dtype=np.float32)
        region = None if where is None else where.astype(np.float32)
        value = 1.0
        for scale, weight in enumerate(weights):
            luminance, contrast_structure = _ssim_maps(x, y, g)
            last = scale == len(weights) - 1
            if last:
                contrast_structure *= luminance
            term = _region_mean(contrast_structure, None if region is None else region >= 0.5)
            if math.isnan(term):
                return math.nan
            # cs and l are at most 1 (Cauchy-Schwarz); clip float32 rounding and negative values.
            value *= min(max(term, 0.0), 1.0) ** weight
            if not last:
                x, y = _halve(x), _halve(y)
                region = None if region is None else _halve(region)
        per_channel.append(value)
    return float(np.mean(per_channel))
