"""Cheap procedural textures: value noise summed over octaves (fractal noise).

Each octave is a small grid of random values enlarged with bicubic interpolation by
``cv2.resize``, so the cost is one resize per octave whatever the cell size. Octaves use a
non-integer size ratio and random offsets so that their grids never line up.
All functions take a ``numpy.random.Generator`` and are deterministic given its state.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def value_noise(shape: tuple[int, int], cell: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in about [-1, 1] with features ``cell = (cell_y, cell_x)`` pixels apart."""
    height, width = shape
    cell_y, cell_x = max(cell[0], 1.0), max(cell[1], 1.0)
    grid_h = int(math.ceil(height / cell_y)) + 3
    grid_w = int(math.ceil(width / cell_x)) + 3
    grid = rng.uniform(-1.0, 1.0, (grid_h, grid_w)).astype(np.float32)
    big_h = max(int(round(grid_h * cell_y)), height + 1)
    big_w = max(int(round(grid_w * cell_x)), width + 1)
    big = cv2.resize(grid, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    # Skip the first cell (bicubic edge effects) and start at a random phase inside it.
    off_y = min(int(cell_y) + int(rng.integers(0, max(int(cell_y), 1))), big_h - height)
    off_x = min(int(cell_x) + int(rng.integers(0, max(int(cell_x), 1))), big_w - width)
    return big[off_y:off_y + height, off_x:off_x + width]


def fractal_noise(
    shape: tuple[int, int],
    cell: float,
    rng: np.random.Generator,
    octaves: int = 5,
    persistence: float = 0.5,
    lacunarity: float = 2.13,
    aspect: float = 1.0,
    min_cell: float = 1.5,
) -> np.ndarray:
    """Fractal (multi-octave) noise, float32, roughly zero mean and unit standard deviation.

    ``cell`` is the feature size of the coarsest octave in pixels; ``aspect`` stretches
    features along x (> 1 gives horizontal streaks, such as waves seen from afar).
    """
    total = np.zeros(shape, np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        if cell < min_cell:
            break
        total += amplitude * value_noise(shape, (cell, cell * aspect), rng)
        norm += amplitude * amplitude
        amplitude *= persistence
        cell /= lacunarity
    # A single octave of value noise has a standard deviation of about 0.42.
    return total / np.float32(0.42 * math.sqrt(max(norm, 1e-6)))


def ridged(noise: np.ndarray) -> np.ndarray:
    """Sharp crests from smooth noise (1 at the zero crossings), for cracks and wave crests."""
    return 1.0 - np.minimum(np.abs(noise), 1.0)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below edge0, 1 beyond edge1, smooth in between (edges may be given in reverse)."""
    t = (x - np.float32(edge0)) * np.float32(1.0 / (edge1 - edge0))
    np.clip(t, 0.0, 1.0, out=t)
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)
