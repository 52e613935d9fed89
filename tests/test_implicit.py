"""Implicit ROI coder: latent round trips, mask-conditioned decoding, mask errors, weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.codec.implicit.coder import ImplicitCoder, coded_mask, mask_digest
from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.implicit.weights import export_weights, load_coder
from edge.codec.lossy.tables import build_tables
from edge.errors import CodingError, ModelError

TINY = dict(n=8, m=16, nz=8, levels=2)


def _coder(explicit: bool = False, seed: int = 0, patch_size: int = 64) -> ImplicitCoder:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    model = ImplicitROI(ImplicitConfig(**TINY, explicit=explicit, bg_channels=4)).eval()
    with torch.no_grad():
        # Larger gains than at initialisation, so latents span several symbols and escapes occur.
        model.log_gain.add_(2.0)
    return ImplicitCoder(model, build_tables(model.prior_z), "implicit-roi", "0" * 64, patch_size)


def _tiles(count: int = 3, size: int = 64, seed: int = 1):
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, (count, 3, size, size), dtype=np.uint8)
    masks = np.zeros((count, size, size), dtype=bool)
    masks[0, :, : size // 2] = True                  # half blade
    masks[1] = True                                  # all blade; the third tile has none
    return patches, masks


@pytest.mark.parametrize("explicit", [False, True])
def test_latents_round_trip(explicit):
    coder = _coder(explicit)
    patches, masks = _tiles()
    y_hat, _ = coder.analyse(patches, masks, 1)
    coded = coder.compress(patches, 1, masks)
    assert len(coded.streams) == 3
    np.testing.assert_array_equal(coder.decode_latents(coded, masks), y_hat)


def test_explicit_gate_codes_fewer_latents_in_background():
    coder = _coder(explicit=True)
    patches, masks = _tiles()
    y_hat, _ = coder.analyse(patches, masks, 1)
    # The background tile keeps only bg_channels channels; the blade tile keeps them all.
    assert not y_hat[2, 4:].any()
    coded = coder.compress(patches, 1, masks)
    assert len(coded.streams[2]) < len(coded.streams[1])


def test_decoding_is_deterministic_and_thread_independent():
    coder = _coder()
    patches, masks = _tiles()
    coded = coder.compress(patches, 0, masks)
    torch.set_num_threads(1)
    first = coder.decompress(coded, masks)
    torch.set_num_threads(2)
    try:
        second = coder.decompress(coded, masks)
    finally:
        torch.set_num_threads(1)
    np.testing.assert_array_equal(first, second)
    assert first.shape == patches.shape and first.dtype == np.uint8


def test_decoding_depends_on_the_mask():
    coder = _coder()
    patches, masks = _tiles()
    y_hat, _ = coder.analyse(patches, masks, 1)
    flipped = ~masks
    assert not np.array_equal(coder.synthesize(y_hat, masks, 1), coder.synthesize(y_hat, flipped, 1))


def test_missing_mask_is_a_clear_error():
    coder = _coder()
    patches, masks = _tiles()
    coded = coder.compress(patches, 0, masks)
    with pytest.raises(CodingError, match="needs the blade mask"):
        coder.decompress(coded)
    with pytest.raises(CodingError, match="needs the blade mask"):
        coder.compress(patches, 0)


def test_wrong_mask_is_a_clear_error():
    coder = _coder()
    patches, masks = _tiles()
    coded = coder.compress(patches, 0, masks)
    wrong = masks.copy()
    wrong[2, 10, 10] = True
    with pytest.raises(CodingError, match="not the one the encoder used"):
        coder.decompress(coded, wrong)
    with pytest.raises(CodingError, match="shape"):
        coder.decompress(coded, masks[:2])


def test_damaged_stream_is_a_clear_error():
    coder = _coder()
    patches, masks = _tiles()
    coded = coder.compress(patches, 1, masks)
    stream = bytearray(coded.streams[0])
    stream[len(stream) // 2] ^= 0xFF
    damaged = type(coded)(**{**coded.__dict__, "streams": (bytes(stream),) + coded.streams[1:]})
    with pytest.raises(CodingError):
        coder.decompress(damaged, masks)


def test_mask_digest_sees_shape_and_pixels():
    mask = np.zeros((32, 48), bool)
    assert mask_digest(mask) != mask_digest(mask.reshape(48, 32))
    changed = mask.copy()
    changed[31, 47] = True
    assert mask_digest(mask) != mask_digest(changed)


def test_coded_mask_is_a_cell_superset():
    mask = np.zeros((40, 50), bool)
    mask[17, 33] = True
    cells = coded_mask(mask)
    assert cells[mask].all() and cells.sum() == 16 * 16
    assert cells[16:32, 32:48].all()


def test_weights_export_and_whole_image_round_trip(tmp_path):
    coder = _coder()
    path = tmp_path / "implicit.pt"
    digest = export_weights(coder.model, path)
    loaded = load_coder(path)
    assert loaded.weights_sha256 == digest
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 270, 3), dtype=np.uint8)   # odd size: mirror-padded tiles
    mask = np.zeros((300, 270), bool)
    mask[100:200, 40:230] = True
    mask = coded_mask(mask)
    coded = loaded.compress_image(image, mask, 1)
    decoded = loaded.decompress_image(coded, mask, 300, 270)
    assert decoded.shape == image.shape
    np.testing.assert_array_equal(decoded, loaded.decompress_image(coded, mask, 300, 270))
    with pytest.raises(CodingError, match="needs the blade mask"):
        loaded.decompress_image(coded, None, 300, 270)


def test_bad_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, path)
    with pytest.raises(ModelError, match="not an implicit-roi weights file"):
        load_coder(path)
