"""Stains drawn on blades (edge.train.segstains): coloured, only on the blade, still blade."""
import numpy as np

from edge.train.seg import SegTrainConfig
from edge.train.segaugment import Sample, augment
from edge.train.segstains import stain_blade


def sea_with_blade():
    rgb = np.empty((96, 96, 3), np.uint8)
    rgb[:] = (40, 80, 130)
    blade = np.zeros((96, 96), bool)
    blade[:, 30:60] = True
    rgb[blade] = (225, 225, 225)
    return rgb, blade


def test_stains_colour_part_of_the_blade_and_nothing_else():
    rgb, blade = sea_with_blade()
    stained_shares = []
    for seed in range(20):
        out = stain_blade(rgb, blade, np.random.default_rng(seed), count=2)
        assert (out[~blade] == rgb[~blade]).all()
        changed = (out != rgb).any(axis=2)
        stained_shares.append(changed[blade].mean())
    assert 0.05 < np.mean(stained_shares) < 0.9       # part of the blade, not all of it
    assert stain_blade(rgb, np.zeros_like(blade), np.random.default_rng(0)) is rgb


def test_augment_with_stains_keeps_the_blade_in_the_mask():
    rgb, blade = sea_with_blade()
    sample = Sample("s", rgb, blade.astype(np.uint8), "closeup", 0)
    config = SegTrainConfig(long_side=96, rotate=0.0, zoom_min=1.0, zoom_max=1.0, colour_jitter=0.0, blade_stains=1.0)
    coloured = []
    for seed in range(10):
        out, mask = augment(sample, (96, 96), np.random.default_rng(seed), config)
        assert mask.sum() == blade.sum()
        on_blade = out[mask.astype(bool)].astype(int)
        coloured.append((np.ptp(on_blade, axis=1) > 30).mean())   # white paint has R = G = B
    assert np.mean(coloured) > 0.05
