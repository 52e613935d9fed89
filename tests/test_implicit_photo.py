"""implicit-roi mode of whole photos: bundles round-trip with the coded mask as side information."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from edge.cli import main
from edge.codec.container import decode_bundle, encode_bundle, read_bundle
from edge.codec.implicit.coder import MASK_CELL, ImplicitCoder, coded_mask
from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.lossy.tables import build_tables
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.photo import Coders, CodingSettings, compress_pixels, decompress_bundle
from edge.errors import InputError
from edge.registry import MODELS
from edge.synth import render_frame


@pytest.fixture(scope="module")
def coders():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = ImplicitROI(ImplicitConfig(n=8, m=16, nz=8, levels=2)).eval()
    return Coders(implicit=ImplicitCoder(model, build_tables(model.prior_z), "implicit-roi", "0" * 64, 128))


def _metadata(image):
    ok, png = cv2.imencode(".png", image[:, :, ::-1])
    return source_metadata_from_bytes(png.tobytes(), "frame.png")


def test_bundle_round_trip_uses_the_coded_mask(coders):
    image, mask = render_frame((300, 170), seed=5)
    settings = CodingSettings(mode="implicit-roi", quality=1)
    result = compress_pixels(image, _metadata(image), settings, coders, mask)
    assert result.bundle.patch_size == MASK_CELL
    bundle = decode_bundle(encode_bundle(result.bundle))
    decoded = decompress_bundle(bundle, coders)
    assert decoded.image.shape == image.shape
    np.testing.assert_array_equal(decoded.mask, coded_mask(mask))
    # The same picture as decoding the region directly with the encoder's mask.
    direct = coders.implicit.decompress_image(bundle.region("whole").coded, coded_mask(mask), 170, 300)
    np.testing.assert_array_equal(decoded.image, direct)


def test_implicit_mode_without_a_mask_is_an_input_error(coders):
    image, _ = render_frame((200, 120), seed=6)
    with pytest.raises(InputError, match="needs a blade mask"):
        compress_pixels(image, _metadata(image), CodingSettings(mode="implicit-roi"), coders, None)


@pytest.mark.skipif(not MODELS["implicit-roi"].weights_path.exists(), reason="no shipped implicit-roi weights")
def test_cli_compress_and_decompress_with_shipped_weights(tmp_path):
    image, mask = render_frame((260, 140), seed=7)
    cv2.imwrite(str(tmp_path / "photo.png"), image[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "mask.png"), mask.astype(np.uint8) * 255)
    bundle = tmp_path / "photo.edgb"
    assert main(["compress", str(tmp_path / "photo.png"), "--mode", "implicit-roi", "--mask",
                 str(tmp_path / "mask.png"), "--quality", "0", "-o", str(bundle)]) == 0
    assert read_bundle(bundle).region("whole").coded.coder == "implicit-roi"
    assert main(["decompress", str(bundle), "-o", str(tmp_path / "out.png")]) == 0
    out = cv2.imread(str(tmp_path / "out.png"))
    assert out.shape == image.shape


def test_daemon_config_selects_implicit_roi():
    from edge.config import CodingConfig
    from edge.daemon.coding import resolve_coder

    config = CodingConfig(mode="implicit-roi", quality=2)
    _, settings = resolve_coder(config, coders=Coders())
    assert settings == CodingSettings(mode="implicit-roi", quality=2, blade="auto")
