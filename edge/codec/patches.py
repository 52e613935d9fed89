"""Patch grid: mirror padding to a multiple of the patch size and the blade/background split.

Images are ``uint8`` arrays of shape (H, W, 3); masks are ``bool`` arrays of shape (H, W).
A patch is *blade* when any of its pixels is blade (the paper's rule), so the blade region is
a union of grid cells and its outline is a polygon with axis-aligned edges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PatchGrid:
    """Geometry of a padded image cut into square patches."""

    height: int
    width: int
    patch_size: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.patch_size)

    @property
    def cols(self) -> int:
        return -(-self.width // self.patch_size)

    @property
    def padded_height(self) -> int:
        return self.rows * self.patch_size

    @property
    def padded_width(self) -> int:
        return self.cols * self.patch_size

    @property
    def count(self) -> int:
        return self.rows * self.cols


def mirror_pad(array: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Pad the bottom and right edges by reflection (edge pixel not repeated) up to the grid.

    Falls back to symmetric padding when the image is smaller than the pad (reflect needs
    at least pad+1 pixels).
    """
    pad_h = grid.padded_height - array.shape[0]
    pad_w = grid.padded_width - array.shape[1]
    if pad_h == 0 and pad_w == 0:
        return array
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    out = array
    # np.pad's reflect mode cannot pad more than size-1 at once; repeat until done.
    while out.shape[0] < grid.padded_height or out.shape[1] < grid.padded_width:
        step_h = min(grid.padded_height - out.shape[0], max(out.shape[0] - 1, 0))
        step_w = min(grid.padded_width - out.shape[1], max(out.shape[1] - 1, 0))
        if step_h == 0 and step_w == 0:  # 1-pixel-wide image: only edge padding is possible
            widths = [(0, grid.padded_height - out.shape[0]), (0, grid.padded_width - out.shape[1])]
            return np.pad(out, widths + [(0, 0)] * (array.ndim - 2), mode="edge")
        widths = [(0, step_h), (0, step_w)] + [(0, 0)] * (array.ndim - 2)
        out = np.pad(out, widths, mode="reflect")
    return out


def to_patches(padded: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """(Hp, Wp, C) -> (rows*cols, C, p, p) in row-major patch order."""
    p = grid.patch_size
    c = padded.shape[2]
    blocks = padded.reshape(grid.rows, p, grid.cols, p, c)
    return np.ascontiguousarray(blocks.transpose(0, 2, 4, 1, 3).reshape(grid.count, c, p, p))


def from_patches(patches: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Inverse of :func:`to_patches`, cropped back to the original (H, W, C)."""
    p = grid.patch_size
    c = patches.shape[1]
    blocks = patches.reshape(grid.rows, grid.cols, c, p, p).transpose(0, 3, 1, 4, 2)
    full = blocks.reshape(grid.padded_height, grid.padded_width, c)
    return np.ascontiguousarray(full[: grid.height, : grid.width])


def blade_cells(mask: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Boolean (rows, cols) map: True where the patch holds at least one blade pixel.

    The mask is zero-padded (not mirrored) so that padding never creates blade cells.
    """
    if mask.shape != (grid.height, grid.width):
        raise ValueError(f"mask shape {mask.shape} does not match image {(grid.height, grid.width)}")
    p = grid.patch_size
    padded = np.zeros((grid.padded_height, grid.padded_width), dtype=bool)
    padded[: grid.height, : grid.width] = mask
    return padded.reshape(grid.rows, p, grid.cols, p).any(axis=(1, 3))


def cells_to_mask(cells: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Expand a (rows, cols) cell map to a pixel mask of the image size."""
    p = grid.patch_size
    full = np.repeat(np.repeat(cells, p, axis=0), p, axis=1)
    return full[: grid.height, : grid.width]
