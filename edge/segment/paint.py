"""Colour rules for blade paint and for the ground beside a blade, shared by the dtu-dev reference
masks (``edge.segment.reference``) and the training augmentation (``edge.train.segaugment``).

Neither finds a blade on its own, since the tower, nacelle and grey roofs are painted alike: the
reference applies them only inside hand-drawn blade regions, and the augmentation uses them only
to leave every painted surface as it is.
"""
from __future__ import annotations

import cv2
import numpy as np


def painted_surface(image: np.ndarray) -> np.ndarray:
    """Pixels of white or grey paint (bool, same size as ``image``): unsaturated and not warm, or
    burnt out; never green grass and never dark."""
    rgb = image.astype(np.int16)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    saturation, value = hsv[..., 1], hsv[..., 2]
    return (((saturation < 80) & ~_warm(rgb)) | (value > 225)) & (value > 70) & ~_green(rgb)


def ground_showing(image: np.ndarray) -> np.ndarray:
    """Pixels of grass, soil or deep shadow (bool, same size as ``image``): green, or warm and
    saturated, or dark. Blade paint is none of these, even in shade: the shaded side of a white
    blade turns blue-grey under the sky (saturated, but cool), and repair tape is warm but pale."""
    rgb = image.astype(np.int16)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    saturation, value = hsv[..., 1], hsv[..., 2]
    soil = _warm(rgb) & (saturation > 45)
    return _green(rgb) | soil | (value < 50)


def _green(rgb: np.ndarray) -> np.ndarray:
    """Grass: green clearly above red and blue (``rgb`` as int16)."""
    return (rgb[..., 1] > rgb[..., 0] + 14) & (rgb[..., 1] > rgb[..., 2] + 14)


def _warm(rgb: np.ndarray) -> np.ndarray:
    """Soil, gravel and tape: red above blue (``rgb`` as int16)."""
    return rgb[..., 0] > rgb[..., 2] + 10
