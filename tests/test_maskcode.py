"""Blade cell map code: exact round trips, size on the real masks, clear errors on bad codes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.codec.maskcode import MAX_CELLS, decode_mask, encode_mask
from edge.codec.patches import PatchGrid, blade_cells
from edge.errors import BundleError
from tests.wta_sample import SAMPLE, SET_SIZE, mask_paths


def real_masks() -> list[Path]:
    """The sample's masks on every clone; all 189 of wta-train where the full set is here."""
    paths = mask_paths()
    assert len(paths) >= 7, f"the wta sample's masks are missing from {SAMPLE}"
    return paths


def read_at_set_size(path: Path) -> np.ndarray:
    """A real mask on the full set's 1920x1080 pixels (the sample's are half size), as bool."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(mask, SET_SIZE[::-1], interpolation=cv2.INTER_NEAREST) > 127


def round_trip(cells: np.ndarray) -> bytes:
    code = encode_mask(cells)
    decoded = decode_mask(code, cells.shape)
    assert decoded.dtype == bool and decoded.shape == cells.shape
    np.testing.assert_array_equal(decoded, cells)
    return code


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (2, 2), (17, 30), (47, 83), (64, 3)])
def test_constant_and_checkerboard_maps_round_trip_small(shape):
    checker = np.indices(shape).sum(axis=0) % 2 == 1
    for cells in (np.zeros(shape, bool), np.ones(shape, bool), checker, ~checker):
        code = round_trip(cells)
        # Constant and checkerboard maps are fully predicted by the neighbour context.
        assert len(code) <= 12, (shape, len(code))


def test_random_maps_round_trip():
    rng = np.random.default_rng(20240611)
    for seed in range(200):
        rows, cols = rng.integers(1, 40, size=2)
        density = rng.choice([0.0, 0.02, 0.3, 0.5, 0.9, 1.0])
        cells = rng.random((rows, cols)) < density
        round_trip(cells)


def test_random_rectangle_unions_round_trip_and_stay_small():
    """Rectilinear shapes with holes: unions of rectangles minus rectangles."""
    rng = np.random.default_rng(7)
    for _ in range(100):
        rows, cols = int(rng.integers(5, 60)), int(rng.integers(5, 90))
        cells = np.zeros((rows, cols), bool)
        for value in (True, True, True, False, False):
            r0, c0 = rng.integers(0, rows), rng.integers(0, cols)
            cells[r0 : r0 + rng.integers(1, rows), c0 : c0 + rng.integers(1, cols)] = value
        code = round_trip(cells)
        assert len(code) < 200


def test_independent_random_cells_cost_about_one_bit_each():
    cells = np.random.default_rng(1).random((100, 100)) < 0.5
    code = round_trip(cells)
    assert 10_000 / 8 * 0.95 < len(code) < 10_000 / 8 * 1.1


def test_every_real_mask_codes_under_200_bytes_at_patch_64():
    grid = PatchGrid(*SET_SIZE, 64)
    sizes = [len(round_trip(blade_cells(read_at_set_size(path), grid))) for path in real_masks()]
    assert max(sizes) < 200, max(sizes)


@pytest.mark.slow
def test_upscaled_real_masks_code_under_200_bytes_at_5280x2970():
    grid = PatchGrid(2970, 5280, 64)
    for path in real_masks()[::6]:
        small = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        mask = cv2.resize(small, (grid.width, grid.height), interpolation=cv2.INTER_NEAREST) > 127
        cells = blade_cells(mask, grid)
        assert len(round_trip(cells)) < 200, path


def test_code_carries_its_grid_and_checks_the_expected_shape():
    cells = np.zeros((17, 30), bool)
    cells[5:9, 3:20] = True
    code = encode_mask(cells)
    assert decode_mask(code).shape == (17, 30)
    with pytest.raises(BundleError) as caught:
        decode_mask(code, (30, 17))
    assert caught.value.section == "mask"


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\x00\x05", b"\x05\x00", b"\x05\x05", b"\x05\x05\x01\x02",
                                 b"\x80\x00\x05", b"\xff\xff\xff\xff\xff\x01\x01", b"\xff\xff\x7f\xff\xff\x7f"])
def test_malformed_codes_raise_bundle_error(bad):
    with pytest.raises(BundleError) as caught:
        decode_mask(bad)
    assert caught.value.section == "mask"


def test_truncated_or_extended_real_code_raises_bundle_error():
    code = encode_mask(blade_cells(read_at_set_size(real_masks()[0]), PatchGrid(*SET_SIZE, 64)))
    for end in range(len(code)):
        with pytest.raises(BundleError):
            decode_mask(code[:end])
    with pytest.raises(BundleError, match="left over"):
        decode_mask(code + b"\x00")


def test_bit_flips_never_raise_anything_but_bundle_error():
    """Without a checksum a flipped bit may decode to another map; it must never crash."""
    rng = np.random.default_rng(3)
    cells = np.zeros((47, 83), bool)
    cells[10:30, 5:70] = True
    code = encode_mask(cells)
    for _ in range(500):
        damaged = bytearray(code)
        bit = int(rng.integers(len(code) * 8))
        damaged[bit // 8] ^= 1 << (bit % 8)
        try:
            decoded = decode_mask(bytes(damaged))
        except BundleError as error:
            assert error.section == "mask"
        else:
            assert decoded.dtype == bool and decoded.size <= MAX_CELLS


def test_encoder_refuses_non_bool_or_empty_maps():
    with pytest.raises(ValueError):
        encode_mask(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError):
        encode_mask(np.zeros((0, 3), bool))
    with pytest.raises(ValueError):
        encode_mask(np.zeros((3,), bool))
