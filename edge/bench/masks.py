"""Where a benchmark's blade masks come from: a folder of mask files, or drawn from colour.

``--masks DIR`` reads DIR/STEM.png (or STEM.mask.png, STEM.PNG; non-zero = blade). For photos
that have no drawn mask (dtu-dev), :func:`draw_blade_mask` draws a rough one from colour alone.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.codec.imageio import read_mask
from edge.errors import InputError

MASK_NAMES = ("{stem}.png", "{stem}.mask.png", "{stem}.PNG")


def find_mask(masks_dir: Path, image_path: Path) -> Path:
    for name in MASK_NAMES:
        candidate = Path(masks_dir) / name.format(stem=Path(image_path).stem)
        if candidate.exists():
            return candidate
    raise InputError(f"no mask {Path(image_path).stem}.png or {Path(image_path).stem}.mask.png in {masks_dir}",
                     str(image_path))


def load_mask(path: Path, image: np.ndarray, masks: Path | None) -> np.ndarray:
    """The mask of photo ``path`` from the folder ``masks``, or drawn when ``masks`` is None."""
    if masks is None:
        return draw_blade_mask(image)
    return read_mask(find_mask(masks, path), image.shape[:2])


def draw_blade_mask(image: np.ndarray) -> np.ndarray:
    """A rough blade mask from colour alone, for photos that have no drawn mask.

    Blades, nacelle and tower are white or light grey paint lit by the sky: neutral or slightly
    blue (blue >= red + 4), unsaturated (HSV saturation < 110 of 255) and not dark (value > 80).
    Grass, soil and gravel roads are warm (red > blue) and fail the blue test. Computed at 1/8
    resolution, then opened and closed with a 5x5 ellipse, holes filled, components under
    0.2 % of the photo dropped, and scaled back up. Grey roofs pass too: the mask is a stand-in
    for the segmentation model, not a ground truth.
    """
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(width // 8, 1), max(height // 8, 1)), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    rgb = small.astype(np.int16)
    mask = ((rgb[..., 2] >= rgb[..., 0] + 4) & (hsv[..., 1] < 110) & (hsv[..., 2] > 80)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = _fill_holes(mask)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 0.002 * mask.size
    mask = keep[labels].astype(np.uint8)
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that do not touch the border."""
    count, labels = cv2.connectedComponents((mask == 0).astype(np.uint8))
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = ~np.isin(labels, border) & (mask == 0)
    return (mask.astype(bool) | holes).astype(np.uint8)
