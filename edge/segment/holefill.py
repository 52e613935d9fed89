"""Hole filling of a blade mask, as in BU-Netv2+P.

A plain hole fill misses holes that touch the image border, which are common: a blade in a
close-up runs from one border to the opposite one, and glare or a defect near the border opens
its mask to the outside. So:

1. **Orientation** from the accumulated Sobel gradients of the mask: if the x-gradients
   dominate, the blade's long edges are vertical (a vertical blade), else it is horizontal.
2. **Border contacts**: a vertical blade meets the top and bottom borders, a horizontal one the
   left and right borders. Along each of those two border lines, the runs of blade pixels are
   found, each labelled by its connected component.
3. **Closing**: the gap between two consecutive runs of the same component is set to blade, so
   a hole that reached the border is now enclosed. (Our guard, not in the paper: a gap is closed
   only if it is at most ``max_gap_ratio`` times the two runs' total length, so the space between
   two blades of a rotor, which are one component through the hub, is not filled.)
4. **Fill holes**: every background region not connected to the image border becomes blade.
"""
from __future__ import annotations

import cv2
import numpy as np


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Mask with every background region that does not reach the image border set to blade."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, flood_mask, (0, 0), 2)   # 2 = background reachable from outside
    return padded[1:-1, 1:-1] != 2


def is_vertical(mask: np.ndarray) -> bool:
    """True when the accumulated |d/dx| of the mask exceeds the accumulated |d/dy|."""
    m = mask.astype(np.float32)
    gx = np.abs(cv2.Sobel(m, cv2.CV_32F, 1, 0, ksize=3)).sum()
    gy = np.abs(cv2.Sobel(m, cv2.CV_32F, 0, 1, ksize=3)).sum()
    return bool(gx >= gy)


def _close_line(line: np.ndarray, labels: np.ndarray, max_gap_ratio: float) -> None:
    """Fill, in place, the gaps between consecutive runs of one component on a border line."""
    padded = np.concatenate([[False], line, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # run = [start, end)
    for i in range(len(starts) - 1):
        gap_start, gap_end = ends[i], starts[i + 1]
        if labels[ends[i] - 1] != labels[starts[i + 1]]:
            continue
        runs_length = (ends[i] - starts[i]) + (ends[i + 1] - starts[i + 1])
        if gap_end - gap_start <= max_gap_ratio * runs_length:
            line[gap_start:gap_end] = True


def close_borders(mask: np.ndarray, vertical: bool, max_gap_ratio: float = 2.0) -> np.ndarray:
    """Copy of ``mask`` with its blade closed along the borders the blade runs into."""
    closed = mask.astype(bool).copy()
    _, labels = cv2.connectedComponents(closed.astype(np.uint8), connectivity=8)
    if vertical:
        lines = [(closed[0], labels[0]), (closed[-1], labels[-1])]
    else:
        lines = [(closed[:, 0], labels[:, 0]), (closed[:, -1], labels[:, -1])]
    for line, line_labels in lines:
        values = line.copy()
        _close_line(values, line_labels, max_gap_ratio)
        line[:] = values     # line is a view into ``closed``
    return closed


def hole_fill(mask: np.ndarray, max_gap_ratio: float = 2.0) -> np.ndarray:
    """Blade mask with holes filled, including holes that touch the borders the blade meets."""
    mask = mask.astype(bool)
    if not mask.any():
        return mask.copy()
    return fill_holes(close_borders(mask, is_vertical(mask), max_gap_ratio))
