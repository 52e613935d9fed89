"""Augmentation of segmentation training crops (edge.train.segaugment, with the decoys of
edge.train.segdecoys and the stains of edge.train.segstains): each change keeps the mask true to
the pixels."""
import cv2
import numpy as np
import pytest

from edge.train.seg import SegTrainConfig
from edge.train.segaugment import Sample, augment, paste_blade, paste_donors, pasted_blade_fraction
from edge.train.segdecoys import DEFAULT_KINDS, draw_decoy
from edge.train.segstains import shade_blade, stain_blade


def blade_over(background: np.ndarray):
    """A training sample of a white vertical blade (the middle quarter of the columns) over the
    RGB ``background``."""
    rgb = background.copy()
    height, width = background.shape[:2]
    blade = slice(width * 3 // 8, width * 5 // 8)
    rgb[:, blade] = (230, 230, 230)
    mask = np.zeros((height, width), np.uint8)
    mask[:, blade] = 1
    return Sample("s", rgb, mask, "closeup", 0), mask


def uniform(colour, size: int = 96) -> np.ndarray:
    return np.full((size, size, 3), colour, np.uint8)


def photometric_only(**augmentation):
    """Augmentation settings without geometry or colour jitter, plus ``augmentation``."""
    return SegTrainConfig(long_side=64, rotate=0.0, zoom_min=1.0, zoom_max=1.0, colour_jitter=0.0, **augmentation)


def test_channel_shuffle_changes_background_hues_and_keeps_white_blades():
    grass = np.empty((64, 64, 3), np.uint8)
    grass[:] = (60, 140, 40)
    sample, mask = blade_over(grass)
    config = photometric_only(channel_shuffle=1.0)
    rng = np.random.default_rng(0)
    greens = set()
    for _ in range(30):
        out, out_mask = augment(sample, (64, 64), rng, config)
        assert out_mask.sum() == mask.sum()
        blade = out[out_mask.astype(bool)]
        assert np.ptp(blade, axis=1).max() == 0           # the blade is still grey: R = G = B
        greens.add(int(np.argmax(out[0, 0])))             # which channel the grass is brightest in
    assert greens == {0, 1, 2}
    out, _ = augment(sample, (64, 64), np.random.default_rng(0), photometric_only())
    assert np.argmax(out[0, 0]) == 1                      # off by default: grass stays green


def test_field_recolour_turns_the_background_into_a_green_field_and_keeps_the_blade():
    rng = np.random.default_rng(1)
    sea = np.empty((64, 64, 3), np.uint8)
    sea[:] = (40, 80, 130)
    sea[::2] += rng.integers(0, 20, size=(32, 64, 1), dtype=np.uint8)   # with a texture
    sample, _ = blade_over(sea)
    config = photometric_only(field_recolour=1.0)
    for _ in range(10):
        out, out_mask = augment(sample, (64, 64), rng, config)
        blade, background = out[out_mask.astype(bool)].astype(int), out[~out_mask.astype(bool)].astype(int)
        assert np.ptp(blade, axis=1).max() <= 2                     # the blade stays grey
        assert (background[:, 1] > background[:, 2]).mean() > 0.95  # the sea became green ...
        assert (background[:, 1] > background[:, 0]).mean() > 0.95
        assert background.std(axis=0).max() > 2                     # ... with its texture kept
    out, _ = augment(sample, (64, 64), np.random.default_rng(0), photometric_only())
    assert out[0, 0, 2] > out[0, 0, 1]                              # off by default: the sea stays blue


def test_a_pasted_blade_is_blade_in_the_mask_and_leaves_the_rest_untouched():
    sea = np.empty((64, 64, 3), np.uint8)
    sea[:] = (40, 80, 130)
    donor, _ = blade_over(sea)
    empty = np.zeros((64, 64), np.uint8)
    rng = np.random.default_rng(2)
    pasted_any = False
    for _ in range(10):
        out, out_mask = paste_blade(sea.copy(), empty, donor, rng)
        inside = cv2.erode(out_mask.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT,
                           borderValue=0).astype(bool)      # past the soft edge
        outside = ~cv2.dilate(out_mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        assert (out[inside] == 230).all()                     # the donor's white blade, as blade
        assert (out[outside] == sea[outside]).all()           # the sea elsewhere, as background
        pasted_any |= bool(inside.any())
    assert pasted_any


def test_a_blade_already_in_the_crop_stays_blade_under_a_pasted_one():
    grass = np.empty((64, 64, 3), np.uint8)
    grass[:] = (60, 140, 40)
    sample, mask = blade_over(grass)
    rng = np.random.default_rng(5)
    for _ in range(10):
        _, out_mask = paste_blade(sample.rgb, mask, sample, rng)
        assert out_mask[mask.astype(bool)].all()


def test_paste_donors_leave_out_frames_without_blade_or_filled_by_it():
    sea = np.zeros((64, 64, 3), np.uint8)
    some, _ = blade_over(sea)
    none = Sample("none", sea, np.zeros((64, 64), np.uint8), "far", 0)
    full = Sample("full", sea, np.ones((64, 64), np.uint8), "closeup", 0)
    assert [s.name for s in paste_donors([some, none, full])] == ["s"]


def test_without_blade_paste_the_donors_change_nothing():
    """Runs started before pasting existed resume with the same random draws."""
    rng_rows = np.random.default_rng(7).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    sample, _ = blade_over(rng_rows)
    config = SegTrainConfig(long_side=64, field_recolour=0.5, channel_shuffle=0.5)
    plain = augment(sample, (48, 48), np.random.default_rng(0), config)
    with_donors = augment(sample, (48, 48), np.random.default_rng(0), config, [sample])
    assert all((a == b).all() for a, b in zip(plain, with_donors))
    pasting = SegTrainConfig(long_side=64, blade_paste=1.0)
    _, mask = augment(sample, (48, 48), np.random.default_rng(0), pasting, [sample])
    _, unpasted = augment(sample, (48, 48), np.random.default_rng(0), SegTrainConfig(long_side=64))
    assert mask.sum() > unpasted.sum()


def test_pasted_blade_fraction_is_the_blade_area_pasting_adds_to_training_crops():
    sea = np.empty((64, 64, 3), np.uint8)
    sea[:] = (40, 80, 130)
    donor, _ = blade_over(sea)
    no_blade = Sample("sea", sea, np.zeros((64, 64), np.uint8), "far", 0)
    rng = np.random.default_rng(3)
    seen = np.mean([augment(no_blade, (48, 48), rng, photometric_only(blade_paste=1.0), [donor])[1].mean()
                    for _ in range(200)])
    estimate = pasted_blade_fraction([donor], (48, 48))
    assert 0.05 < estimate < 0.6
    assert estimate == pytest.approx(seen, rel=0.25)
    assert pasted_blade_fraction([], (48, 48)) == 0.0


GRASS, SEA = (60, 140, 40), (40, 80, 130)


@pytest.mark.parametrize("kinds", [DEFAULT_KINDS, ("nacelle",), ("hub",)])
def test_a_decoy_is_pale_and_neutral_and_never_drawn_over_the_blade(kinds):
    sample, mask = blade_over(uniform(GRASS))
    rgb, blade = sample.rgb, mask.astype(bool)
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


def test_a_hub_is_drawn_against_the_blade():
    sample, mask = blade_over(uniform(GRASS))
    blade = mask.astype(bool)
    beside_blade = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool) & ~blade
    touching = 0
    for seed in range(20):
        changed = (draw_decoy(sample.rgb, blade, np.random.default_rng(seed), ("hub",)) != sample.rgb).any(axis=2)
        touching += changed[beside_blade].any()
    assert touching >= 18


def test_augment_with_decoys_keeps_the_mask_and_draws_on_the_background():
    sample, blade = blade_over(uniform(GRASS))
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


def test_stains_colour_part_of_the_blade_and_nothing_else():
    sample, mask = blade_over(uniform(SEA))
    rgb, blade = sample.rgb, mask.astype(bool)
    stained_shares = []
    for seed in range(20):
        out = stain_blade(rgb, blade, np.random.default_rng(seed), count=2)
        assert (out[~blade] == rgb[~blade]).all()
        changed = (out != rgb).any(axis=2)
        stained_shares.append(changed[blade].mean())
    assert 0.05 < np.mean(stained_shares) < 0.9       # part of the blade, not all of it
    assert stain_blade(rgb, np.zeros_like(blade), np.random.default_rng(0)) is rgb


def test_shade_darkens_and_blues_one_side_of_the_blade_only():
    sample, mask = blade_over(uniform(SEA))
    rgb, blade = sample.rgb, mask.astype(bool)
    shaded_shares = []
    for seed in range(20):
        out = shade_blade(rgb, blade, np.random.default_rng(seed))
        assert (out[~blade] == rgb[~blade]).all()
        darker = out.astype(int).sum(axis=2) < rgb.astype(int).sum(axis=2) - 30
        shaded_shares.append(darker[blade].mean())
        shaded = out[blade & darker].astype(int)
        assert (shaded[:, 2] >= shaded[:, 0]).all()         # sky light: blue at least as strong as red
    assert 0.1 < np.mean(shaded_shares) < 0.9        # one side of the blade, not all of it
    assert shade_blade(rgb, np.zeros_like(blade), np.random.default_rng(0)) is rgb


def augmented_blade_pixels(seeds: int, **augmentation):
    """Per seed, the blade pixels (int RGB rows) of a white blade over sea after ``augment`` with
    ``augmentation`` and no geometry, once checked that the mask still holds the whole blade."""
    sample, blade = blade_over(uniform(SEA))
    config = SegTrainConfig(long_side=96, rotate=0.0, zoom_min=1.0, zoom_max=1.0, colour_jitter=0.0, **augmentation)
    for seed in range(seeds):
        out, mask = augment(sample, (96, 96), np.random.default_rng(seed), config)
        assert mask.sum() == blade.sum()
        yield out[mask.astype(bool)].astype(int)


def test_augment_with_shade_keeps_the_blade_in_the_mask():
    dark_shares = [(on_blade.mean(axis=1) < 150).mean()             # the paint is 230
                   for on_blade in augmented_blade_pixels(5, blade_shade=1.0)]
    assert np.mean(dark_shares) > 0.1


def test_augment_with_stains_keeps_the_blade_in_the_mask():
    coloured = [(np.ptp(on_blade, axis=1) > 30).mean()               # white paint has R = G = B
                for on_blade in augmented_blade_pixels(10, blade_stains=1.0)]
    assert np.mean(coloured) > 0.05


def test_blade_zoom_fills_crops_with_the_blade_and_keeps_the_mask_true():
    grass = np.empty((96, 96, 3), np.uint8)
    grass[:] = (60, 140, 40)
    sample, _ = blade_over(grass)
    rng = np.random.default_rng(3)
    plain = [augment(sample, (32, 32), rng, photometric_only())[1].mean() for _ in range(40)]
    zoomed = [augment(sample, (32, 32), rng, photometric_only(blade_zoom=1.0)) for _ in range(40)]
    assert np.mean(plain) < 0.5
    assert np.mean([mask.mean() for _, mask in zoomed]) > 0.8
    blade = np.concatenate([out[mask.astype(bool)] for out, mask in zoomed]).astype(int)
    background = np.concatenate([out[~mask.astype(bool)] for out, mask in zoomed]).astype(int)
    assert np.mean(np.ptp(blade, axis=1) < 12) > 0.9                      # blade pixels stay grey
    assert len(background) and np.mean(background[:, 1] - background[:, 0] > 30) > 0.9   # grass stays grass
