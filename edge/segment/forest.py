"""Per-surface random forest: the "+P" of BU-Netv2+P.

All photos of one blade surface share the blade's paint and the background's look, so a small
random forest trained on those photos alone, with the hole-filled U-Net masks as labels,
corrects the U-Net where it is unsure. Its probabilities are soft-voted with the U-Net's
(equal weights by default) and the vote is thresholded at 0.37.

Cost is kept small: features are computed on the photo downscaled to ``long_side`` pixels, the
forest trains on ``samples_per_image`` randomly drawn pixels per photo, taken away from the mask
edge (``edge_margin`` pixels) where the U-Net labels are least reliable, and it has few shallow
trees.

Features per pixel (12): CIE Lab colour; Lab box means over 5x5 and 15x15 neighbourhoods;
the local standard deviation of L over 7x7; the gradient magnitude of L at two scales.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from sklearn.ensemble import RandomForestClassifier

N_FEATURES = 12


@dataclass(frozen=True)
class ForestSettings:
    long_side: int = 384
    samples_per_image: int = 600
    edge_margin: int = 2
    n_trees: int = 12
    max_depth: int = 10
    unet_weight: float = 0.5       # soft vote: w * p_unet + (1 - w) * p_forest
    threshold: float = 0.37
    seed: int = 0


def feature_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def pixel_features(rgb_small: np.ndarray) -> np.ndarray:
    """(H, W, 12) float32 features of a (downscaled) uint8 RGB photo."""
    lab = cv2.cvtColor(rgb_small, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean5 = cv2.blur(lab, (5, 5))
    mean15 = cv2.blur(lab, (15, 15))
    lightness = lab[..., 0]
    local_mean = cv2.blur(lightness, (7, 7))
    local_sq = cv2.blur(lightness * lightness, (7, 7))
    local_std = np.sqrt(np.maximum(local_sq - local_mean * local_mean, 0))
    gradients = []
    for source in (lightness, cv2.GaussianBlur(lightness, (0, 0), 2.0)):
        gx = cv2.Sobel(source, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(source, cv2.CV_32F, 0, 1, ksize=3)
        gradients.append(np.sqrt(gx * gx + gy * gy))
    return np.dstack([lab, mean5, mean15, local_std, *gradients]).astype(np.float32)


def surface_features(images: list[np.ndarray], settings: ForestSettings) -> list[np.ndarray]:
    """Features of every photo at its feature size."""
    features = []
    for rgb in images:
        h, w = feature_size(*rgb.shape[:2], settings.long_side)
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        features.append(pixel_features(small))
    return features


def sample_training_pixels(features: list[np.ndarray], labels: list[np.ndarray],
                           settings: ForestSettings) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) drawn from pixels at least ``edge_margin`` pixels away from the mask edge."""
    rng = np.random.default_rng(settings.seed)
    kernel = np.ones((2 * settings.edge_margin + 1,) * 2, np.uint8)
    xs, ys = [], []
    for feature, label in zip(features, labels):
        label = cv2.resize(label.astype(np.uint8), feature.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        if settings.edge_margin > 0:
            inner = cv2.erode(label, kernel) | cv2.erode(1 - label, kernel)  # not near an edge
        else:
            inner = np.ones_like(label)
        candidates = np.flatnonzero(inner)
        if candidates.size == 0:
            continue
        picks = rng.choice(candidates, min(settings.samples_per_image, candidates.size), replace=False)
        xs.append(feature.reshape(-1, N_FEATURES)[picks])
        ys.append(label.reshape(-1)[picks])
    if not xs:
        return np.zeros((0, N_FEATURES), np.float32), np.zeros(0, np.uint8)
    return np.concatenate(xs), np.concatenate(ys)


def train_forest(x: np.ndarray, y: np.ndarray, settings: ForestSettings) -> RandomForestClassifier | None:
    """A fitted forest, or None when the labels hold a single class (nothing to learn)."""
    if len(np.unique(y)) < 2:
        return None
    forest = RandomForestClassifier(n_estimators=settings.n_trees, max_depth=settings.max_depth,
                                    min_samples_leaf=3, n_jobs=1, random_state=settings.seed)
    return forest.fit(x, y)


def forest_probability(forest: RandomForestClassifier, feature: np.ndarray) -> np.ndarray:
    """Blade probability (feature size) of one photo."""
    blade_column = list(forest.classes_).index(1)
    probability = forest.predict_proba(feature.reshape(-1, N_FEATURES))[:, blade_column]
    return probability.reshape(feature.shape[:2]).astype(np.float32)


def soft_vote(unet_probability: np.ndarray, forest_prob: np.ndarray, settings: ForestSettings) -> np.ndarray:
    """Blade mask from the weighted average of the two probability maps (same shape)."""
    if unet_probability.shape != forest_prob.shape:
        raise ValueError(f"probability maps differ in shape: {unet_probability.shape} vs {forest_prob.shape}")
    vote = settings.unet_weight * unet_probability + (1 - settings.unet_weight) * forest_prob
    return vote >= settings.threshold


def surface_forest_probabilities(images: list[np.ndarray], labels: list[np.ndarray],
                                 settings: ForestSettings = ForestSettings()) -> list[np.ndarray] | None:
    """Forest probabilities (feature size) for every photo of a surface, trained on those photos.

    ``labels`` are the hole-filled U-Net masks (any size; resized to the feature size).
    Returns None when the surface has no blade or no background to learn from.
    """
    features = surface_features(images, settings)
    x, y = sample_training_pixels(features, labels, settings)
    forest = train_forest(x, y, settings)
    if forest is None:
        return None
    return [forest_probability(forest, feature) for feature in features]
