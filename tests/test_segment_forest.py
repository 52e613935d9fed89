import numpy as np
import pytest

from edge.segment.forest import (ForestSettings, feature_size, soft_vote,
                                 surface_forest_probabilities)


def bar_photo(rng, height=90, width=160, top=30, bottom=55):
    """Dark textured ground with a light grey horizontal bar (the blade)."""
    rgb = rng.normal(60, 15, (height, width, 3))
    rgb[:, :, 1] += 20
    rgb[top:bottom] = rng.normal(215, 8, (bottom - top, width, 3))
    mask = np.zeros((height, width), bool)
    mask[top:bottom] = True
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def test_soft_vote_threshold_and_shape():
    settings = ForestSettings()                        # equal weights, threshold 0.37
    unet = np.full((4, 6), 0.30, np.float32)
    forest = np.full((4, 6), 0.30, np.float32)
    forest[0, 0] = 2 * settings.threshold - 0.30 + 1e-4  # vote just above 0.37
    forest[1, 1] = 2 * settings.threshold - 0.30 - 1e-3  # vote just below 0.37
    vote = soft_vote(unet, forest, settings)
    assert vote.shape == (4, 6) and vote.dtype == bool
    assert vote[0, 0] and not vote[1, 1]
    assert vote.sum() == 1
    with pytest.raises(ValueError):
        soft_vote(unet, forest[:3], settings)


def test_forest_learns_the_surface_from_noisy_labels():
    rng = np.random.default_rng(1)
    photos, truths = zip(*[bar_photo(rng, top=20 + 5 * i, bottom=45 + 5 * i) for i in range(4)])
    labels = []
    for truth in truths:                               # labels with a wrong blob, as a U-Net might give
        label = truth.copy()
        label[0:8, 0:8] = True
        labels.append(label)
    settings = ForestSettings(long_side=120)
    probabilities = surface_forest_probabilities(list(photos), labels, settings)
    assert len(probabilities) == 4
    for probability, truth in zip(probabilities, truths):
        assert probability.shape == feature_size(*truth.shape, settings.long_side)
        assert probability.min() >= 0 and probability.max() <= 1
        rows = np.linspace(0, truth.shape[0] - 1, probability.shape[0]).round().astype(int)
        blade_rows = truth[rows, 0]
        inner = np.convolve(blade_rows, np.ones(5), "same") == 5   # rows well inside the bar
        outer = np.convolve(~blade_rows, np.ones(5), "same") == 5
        assert probability[inner].mean() > 0.9
        assert probability[outer].mean() < 0.1


def test_forest_needs_both_classes():
    rng = np.random.default_rng(2)
    photo, _ = bar_photo(rng)
    assert surface_forest_probabilities([photo], [np.zeros(photo.shape[:2], bool)]) is None
