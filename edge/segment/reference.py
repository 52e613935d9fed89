"""Reference blade masks for photos without drawn masks: hand-drawn blade regions refined by colour.

A colour rule alone (``edge.bench.masks.draw_blade_mask``) also takes the tower, the nacelle,
grey roofs and gravel for blade, and misses blade paint in shade or burnt out, so it cannot
judge a segmenter. Here a person draws a generous polygon around each blade (a few points on a
downscaled view, nothing else in the photo needs to be traced) and the colour rule only
decides, inside those polygons, which pixels are grass, soil or deep shadow showing beside the
blade (:func:`ground_showing`); everything else inside is blade, whatever its paint: white, grey,
blue-grey where the blade's shaded side reflects the sky, or a band of repair tape. Where a blade
passes in front of the tower, nacelle or hub, all painted alike, the polygon has to follow the
blade's edges there.

The regions file (JSON)::

    {"frame": [WIDTH, HEIGHT],                  # the view the points were drawn on
     "photos": {"DJI_0057": [[[x, y], ...], ...]}}   # photo stem -> polygons

Points are in ``frame`` pixels and scale to any photo of the same aspect ratio.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.segment.holefill import fill_holes
from edge.segment.paint import ground_showing, painted_surface

# The rule is applied at a quarter of the photo size: paint areas are large, and this keeps the
# mask free of single-pixel speckle without losing blade edges by more than two photo pixels.
_SCALE = 4


@dataclass(frozen=True)
class BladeRegions:
    frame: tuple[int, int]
    photos: dict[str, list[np.ndarray]]   # stem -> polygons, each (N, 2) float points in frame pixels

    @classmethod
    def read(cls, path: Path) -> "BladeRegions":
        """Regions from ``path``; an error names the file, the key and what is wrong."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read blade regions: {error}", str(path)) from None
        frame = data.get("frame") if isinstance(data, dict) else None
        if not (isinstance(frame, list) and len(frame) == 2 and all(isinstance(v, int) and v > 0 for v in frame)):
            raise InputError("key 'frame' must be [width, height] in pixels", str(path))
        photos = data.get("photos")
        if not isinstance(photos, dict) or not photos:
            raise InputError("key 'photos' must map photo names to lists of polygons", str(path))
        parsed = {}
        for stem, polygons in photos.items():
            try:
                parsed[stem] = [_polygon(p) for p in polygons]
            except (TypeError, ValueError) as error:
                raise InputError(f"photos.{stem}: {error}", str(path)) from None
            if not parsed[stem]:
                raise InputError(f"photos.{stem}: no polygon", str(path))
        return cls(frame=(frame[0], frame[1]), photos=parsed)

    def region(self, stem: str, height: int, width: int) -> np.ndarray:
        """The union of ``stem``'s polygons as a bool mask of ``height`` x ``width``."""
        region = np.zeros((height, width), np.uint8)
        scale = np.array([width / self.frame[0], height / self.frame[1]])
        for polygon in self.photos[stem]:
            cv2.fillPoly(region, [np.round(polygon * scale).astype(np.int32)], 1)
        return region.astype(bool)


def _polygon(points) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) < 3:
        raise ValueError("each polygon needs at least three [x, y] points")
    return array


def reference_mask(image: np.ndarray, regions: BladeRegions, stem: str) -> np.ndarray:
    """Blade mask of ``image`` (uint8 RGB): what is not ground inside the photo's blade regions,
    opened and closed with a 5x5 ellipse and its holes filled."""
    _, _, mask = _reference_small(image, regions, stem)
    height, width = image.shape[:2]
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def paint_cut_off(image: np.ndarray, regions: BladeRegions, stem: str, margin: int = 6) -> float:
    """The paint just outside the photo's blade regions (within ``margin`` pixels of the reference
    mask, at the rule's quarter size), as a share of the mask's area.

    Near 0 when the polygons are as generous as meant; a polygon edge drawn inside a blade cuts
    a strip of its paint off the reference, and shows here as a few per cent. (So does a tower or
    nacelle painted like the blade and touching it, which rightly stays outside.)"""
    small, region, mask = _reference_small(image, regions, stem)
    size = 2 * margin + 1
    near = cv2.dilate(mask.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
    cut = near & ~region & painted_surface(small)
    return float(cut.sum() / max(int(mask.sum()), 1))


def _reference_small(image: np.ndarray, regions: BladeRegions, stem: str):
    """(photo, blade regions, reference mask) at the rule's quarter size."""
    if stem not in regions.photos:
        raise InputError("no blade regions for this photo", stem)
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(width // _SCALE, 1), max(height // _SCALE, 1)), interpolation=cv2.INTER_AREA)
    region = regions.region(stem, *small.shape[:2])
    mask = (~ground_showing(small) & region).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return small, region, fill_holes(mask) & region
