"""Drawn decoys (edge.train.segdecoys): pale roads, roofs and sheds that stay background."""
import numpy as np
import pytest

from edge.train.segaugment import Sample, augment
from edge.train.segdecoys import DEFAULT_KINDS, draw_decoy
from edge.train.seg import SegTrainConfig


def grass_with_blade():
    rgb = np.empty((96, 96, 3), np.uint8)
    rgb[:] = (60, 140, 40)
    blade = np.zeros((96, 96), bool)
    blade[:, 40:56] = True
    rgb[blade] = (230, 230, 230)
    return rgb, blade


@pytest.mark.parametrize("kinds", [DEFAULT_KINDS, ("nacelle",)])
def test_a_decoy_is_pale_and_neutral_and_never_drawn_over_the_blade(kinds):
    rgb, blade = grass_with_blade()
    drawn, neutral = 0, 0
    for seed in range(40):
        out = draw_decoy(rgb, blade, np.random.default_rng(seed), kinds)
        assert (out[blade] == rgb[blade]).all()
        changed = (out != rgb).any(axis=2) & ~blade
        if changed.sum() < 20:
            continue          # drawn mostly outside the crop
        drawn += 1
        pixels = out[changed].astype(int)
        # Grey-ish and pale as blades are, not grass (the softened rim of a thin decoy is a blend).
        neutral += np.median(np.ptp(pixels, axis=1)) < 40 and np.median(pixels.mean(axis=1)) > 80
    assert drawn >= 30
    assert neutral >= 0.8 * drawn


def test_augment_with_decoys_keeps_the_mask_and_draws_on_the_background():
    rgb, blade = grass_with_blade()
    sample = Sample("s", rgb, blade.astype(np.uint8), "closeup", 0)
    config = SegTrainConfig(long_side=96, rotate=0.0, zoom_min=1.0, zoom_max=1.0, colour_jitter=0.0, decoys=1.0)
    plain = SegTrainConfig(long_side=96, rotate=0.0, zoom_min=1.0, zoom_max=1.0, colour_jitter=0.0)
    grey_background = []
    for seed in range(20):
        out, mask = augment(sample, (96, 96), np.random.default_rng(seed), config)
        assert mask.sum() == blade.sum()
        background = out[~mask.astype(bool)].astype(int)
        grey_background.append((np.ptp(background, axis=1) < 40).mean())
    assert np.mean(grey_background) > 0.05
    out, mask = augment(sample, (96, 96), np.random.default_rng(0), plain)   # off by default
    assert (np.ptp(out[~mask.astype(bool)].astype(int), axis=1) > 60).all()
