"""Stains and shade drawn on the blade of a segmentation crop: repair tape, erosion, rust, dirt,
and the sky-lit shaded side of the blade.

An inspection exists to find damaged blades, and damage is what wta-train's clean white blades
rarely show: yellow repair tape, eroded leading edges, rust-brown runs and grey dirt. A network
that learnt "blade = clean white paint" misses exactly those parts (dtu-dev's tower views: the
taped root of the upper blade). The stains are irregular blobs drawn only inside the blade, which
stays blade in the mask.

The shade is the other look of a blade that wta-train's sunlit frames rarely show: seen from
below or against the light, one long side of the blade is lit only by the sky, so it turns dark
blue-grey (dtu-dev's tower views: the lower half of a blade root), and a network that learnt
"blade = bright paint" leaves that half out.
"""
from __future__ import annotations

import cv2
import numpy as np

from edge.train.segdecoys import rotated_coordinates

# RGB of the stains: repair tape, eroded laminate, rust, dirt, red warning paint.
_STAIN_COLOURS = np.array([(225, 190, 70), (205, 140, 70), (140, 85, 55), (95, 95, 90), (195, 50, 45)],
                          np.float32)


def stain_blade(rgb: np.ndarray, blade: np.ndarray, rng: np.random.Generator, count: int = 0) -> np.ndarray:
    """``rgb`` (uint8, H x W x 3) with 1-4 (or ``count``) stains drawn on the ``blade`` (bool) pixels."""
    ys, xs = np.nonzero(blade)
    if len(ys) == 0:
        return rgb
    h, w = blade.shape
    out = rgb.astype(np.float32)
    for _ in range(count or int(rng.integers(1, 5))):
        pick = rng.integers(len(ys))
        radius = rng.uniform(0.02, 0.12) * max(h, w)
        blob = _blob((h, w), (xs[pick], ys[pick]), radius, rng) * blade
        alpha = (blob * rng.uniform(0.6, 1.0))[..., None]
        colour = _STAIN_COLOURS[rng.integers(len(_STAIN_COLOURS))] + rng.uniform(-15, 15, size=3)
        # The stain keeps the shading of the paint beneath it.
        shading = out.mean(axis=2, keepdims=True) / 200.0
        out = alpha * np.clip(colour * shading, 0, 255) + (1 - alpha) * out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shade_blade(rgb: np.ndarray, blade: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``rgb`` with one long side of the ``blade`` (bool) in sky-lit shade: darker and bluer beyond
    a soft line along the blade's main axis."""
    ys, xs = np.nonzero(blade)
    if len(ys) < 2:
        return rgb
    h, w = blade.shape
    # The blade's main axis from the spread of its pixels, give or take 15 degrees.
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    axis_angle = float(np.arctan2(eigenvectors[1, -1], eigenvectors[0, -1])) + rng.uniform(-0.26, 0.26)
    width = 2 * np.sqrt(max(float(eigenvalues[0]), 1.0))
    _, across = rotated_coordinates((h, w), (xs.mean(), ys.mean()), axis_angle)
    across = across * rng.choice([-1.0, 1.0]) + rng.uniform(-0.5, 0.5) * width
    softness = max(1.0, rng.uniform(0.05, 0.3) * width)
    shade = (1 / (1 + np.exp(-across / softness)) * blade).astype(np.float32)[..., None]
    gain = rng.uniform(0.35, 0.75)
    sky = np.array([1.0 - rng.uniform(0.1, 0.3), 1.0 - rng.uniform(0.0, 0.1), 1.0 + rng.uniform(0.0, 0.2)],
                   np.float32)
    out = rgb.astype(np.float32)
    out = shade * np.clip(out * gain * sky, 0, 255) + (1 - shade) * out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _blob(hw: tuple[int, int], centre: tuple[int, int], radius: float, rng: np.random.Generator) -> np.ndarray:
    """A soft-edged irregular blob (float 0-1): an ellipse with a ragged, noisy outline."""
    u, v = rotated_coordinates(hw, centre, rng.uniform(0, np.pi))
    elongation = rng.uniform(1.0, 3.0)
    distance = np.sqrt((u / (radius * elongation)) ** 2 + (v / radius) ** 2)
    ragged = cv2.GaussianBlur(rng.normal(0, 1, size=hw).astype(np.float32), (0, 0), max(1.0, radius / 4))
    ragged /= max(float(ragged.std()), 1e-6)
    return cv2.GaussianBlur((distance + ragged * 0.25 < 1).astype(np.float32), (3, 3), 0)
