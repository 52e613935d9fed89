"""Where the pipeline gets blade masks: the seam between the daemon and :mod:`edge.segment`.

A segmenter is a callable ``(paths of one surface's photos) -> list of bool (H, W) masks or
None`` (None: no mask for that photo; the coder then decides). :func:`make_segmenter` builds
the one the config asks for:

- ``model``: BU-Netv2+P over the whole surface (``edge.segment.pipeline.segment_surface``:
  U-Net with flips, hole filling, the per-surface forest);
- ``mask-files``: ``STEM + mask_suffix`` beside the photo or in ``mask_folder`` (ground
  truth of a synthetic inspection, masks drawn by hand);
- ``none``: no masks.

A segmenter may also name the photos of its last call whose masks it is unsure of (attribute
``unsure``, a set of paths; the model's confidence guard, :mod:`edge.segment.confidence`): the
daemon sends those as source files, as it does for a mask that holds almost no blade.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edge.config import SegmentationConfig

log = logging.getLogger(__name__)

Segmenter = Callable[[list[Path]], list[np.ndarray | None]]


def unsure_flag(work_folder: Path, photo_id: int) -> Path:
    """Marks a photo whose mask the model is unsure of; lives beside its mask in the spool's work
    folder, so that a restart between segmentation and coding keeps it."""
    return Path(work_folder) / f"{photo_id}.unsure"


def no_masks(paths: list[Path]) -> list[np.ndarray | None]:
    return [None] * len(paths)


class MaskFiles:
    """Masks read from files named after the photos (blade where the mask is above 127)."""

    def __init__(self, folder: Path | None, suffix: str):
        self.folder = folder
        self.suffix = suffix

    def mask_path(self, photo: Path) -> Path:
        return (self.folder or photo.parent) / (photo.stem + self.suffix)

    def __call__(self, paths: list[Path]) -> list[np.ndarray | None]:
        masks = []
        for photo in paths:
            path = self.mask_path(photo)
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
            if mask is None:
                log.warning("no readable mask %s for %s: coding it without a mask", path, photo.name)
            masks.append(None if mask is None else mask > 127)
        return masks


class ModelSegmenter:
    """BU-Netv2+P on one surface; the network is loaded on first use."""

    def __init__(self, weights: Path | None, runtime=None, min_confidence: float | None = None):
        self.weights = weights
        self.runtime = runtime       # edge.config.RuntimeConfig: which backend runs the U-Net
        self.min_confidence = min_confidence   # None: the confidence guard's threshold stored with the weights
        self._model = None
        self.unsure: set[Path] = set()   # photos of the last call whose masks the model is unsure of

    def __call__(self, paths: list[Path]) -> list[np.ndarray | None]:
        # Imported here: edge.segment pulls in torch (2.7 s on a 2-core CPU), which only model masks need.
        from edge.segment.dataset import read_rgb
        from edge.segment.pipeline import (SegmentSettings, load_segmenter, segment_surface, to_photo_size,
                                           work_size)
        if self._model is None:
            self._model = load_segmenter(self.weights, runtime=self.runtime)
        settings = SegmentSettings(min_confidence=self.min_confidence)
        # Keep only a work-size copy of each photo: every step after the U-Net's own downscale
        # runs at that size anyway, and a surface of 40 photos of 20 MP would hold 2.4 GB.
        images, sizes = [], []
        for path in paths:
            rgb = read_rgb(path)
            sizes.append(rgb.shape[:2])
            height, width = work_size(*rgb.shape[:2], settings.work_long_side)
            images.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
            del rgb
        result = segment_surface(images, self._model, settings)
        self.unsure = {path for path, unsure in zip(paths, result.unsure) if unsure}
        return [to_photo_size(mask, size) for mask, size in zip(result.masks, sizes)]


def make_segmenter(config: SegmentationConfig, runtime=None) -> Segmenter:
    if config.mode == "none":
        return no_masks
    if config.mode == "mask-files":
        return MaskFiles(config.mask_folder, config.mask_suffix)
    return ModelSegmenter(config.weights, runtime, config.min_confidence)
