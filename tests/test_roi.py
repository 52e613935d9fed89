"""ROI-eML coding of whole photos (HP+EASN-deep background, seeded Bit-swap blade): blade exact,
background lossy, bundles round-trip."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.codec.container import decode_bundle, encode_bundle
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask
from edge.codec.photo import Coders, CodingSettings, compress_pixels, decompress_bundle
from edge.codec.roi import join_patches, split_patches
from edge.errors import CodingError, InputError
from edge.synth import render_frame
from tests.tiny_models import tiny_bitswap_coder, tiny_lossy_coder


# ROI-eML: HP+EASN-deep background, Bit-swap blade seeded by the background's streams.
ROI_EML = CodingSettings(mode="roi", background="hp-easn", bg_quality=0, blade="bitswap")


@pytest.fixture(scope="module")
def coders(tmp_path_factory):
    return Coders(lossy=tiny_lossy_coder(tmp_path_factory.mktemp("roi"), patch_size=128),
                  lossless=tiny_bitswap_coder())


def metadata_for(image: np.ndarray):
    ok, png = cv2.imencode(".png", image[:, :, ::-1])
    return source_metadata_from_bytes(png.tobytes(), "frame.png")


def round_trip(image, mask, settings, coders):
    result = compress_pixels(image, metadata_for(image), settings, coders, mask)
    bundle = decode_bundle(encode_bundle(result.bundle))
    return result, decompress_bundle(bundle, coders)


def blade_pixels(image, mask, patch_size=128):
    grid = PatchGrid(image.shape[0], image.shape[1], patch_size)
    return cells_to_mask(blade_cells(mask, grid), grid)


@pytest.mark.parametrize("size", [(201, 333), (128, 700)])
def test_lossless_blade_comes_back_bit_for_bit(coders, size):
    image, mask = render_frame((size[1], size[0]), seed=11)
    result, decoded = round_trip(image, mask, ROI_EML, coders)
    where = blade_pixels(image, mask)
    assert where.any() and not where.all()
    np.testing.assert_array_equal(decoded.image[where], image[where])
    np.testing.assert_array_equal(decoded.mask, where)
    assert set(result.report["regions"]) == {"background", "blade"}


def test_mask_touching_the_border_and_more_blade_than_background(coders):
    image, _ = render_frame((260, 150), seed=2)
    mask = np.zeros(image.shape[:2], bool)
    mask[:, :200] = True   # 4 of 6 patches are blade: 16 sub-patches chain on 2 background streams
    _, decoded = round_trip(image, mask, ROI_EML, coders)
    where = blade_pixels(image, mask)
    np.testing.assert_array_equal(decoded.image[where], image[where])


def test_blade_streams_carry_several_background_streams(coders):
    """10 background streams on 8 blade streams: two blade streams carry two each."""
    image, _ = render_frame((512, 384), seed=8)
    mask = np.zeros(image.shape[:2], bool)
    mask[:128, :200] = True            # 2 of 12 patches of 128: 8 sub-patches of 64, 10 background streams
    result, decoded = round_trip(image, mask, ROI_EML, coders)
    blade = result.bundle.region("blade").coded
    background = result.bundle.region("background").coded
    assert len(blade.streams) == 8 and len(background.streams) == 10
    assert background.params["carried_by_blade"] == 10 and not any(background.streams)
    where = blade_pixels(image, mask)
    np.testing.assert_array_equal(decoded.image[where], image[where])
    # The report counts the carried streams as background bits.
    bits = result.report["regions"]
    assert bits["background"]["bits"] == 32 * sum(blade.params["carried_words"]) > 0
    assert bits["blade"]["bits"] + bits["background"]["bits"] == blade.bits


@pytest.mark.slow
def test_stream_pool_gives_the_same_bundle(coders):
    """Blade streams coded by two worker processes: byte-identical bundle, same pixels back."""
    from edge.codec.bitswap.coder import BitswapCoder
    from edge.codec.bitswap.streams import StreamPool

    image, mask = render_frame((520, 260), seed=5)
    settings = ROI_EML
    alone = compress_pixels(image, metadata_for(image), settings, coders, mask)
    assert len(alone.bundle.region("blade").coded.streams) > 2
    with StreamPool(2) as pool:
        tiny = coders.lossless
        pooled_bitswap = BitswapCoder(tiny.nets.net, tiny.weights_sha256, tiny.model_name,
                                      latent_bins=tiny.latent_bins, pool=pool)
        pooled = Coders(lossy=coders.lossy, lossless=pooled_bitswap)
        together = compress_pixels(image, metadata_for(image), settings, pooled, mask)
        assert encode_bundle(together.bundle) == encode_bundle(alone.bundle)
        decoded = decompress_bundle(decode_bundle(encode_bundle(together.bundle)), pooled)
    where = blade_pixels(image, mask)
    np.testing.assert_array_equal(decoded.image[where], image[where])


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_masks(coders, fill):
    image, _ = render_frame((150, 140), seed=4)
    mask = np.full(image.shape[:2], fill)
    _, decoded = round_trip(image, mask, ROI_EML, coders)
    assert decoded.image.shape == image.shape
    if fill:  # blade only: Bit-swap standalone, the whole photo exact
        np.testing.assert_array_equal(decoded.image, image)
    assert decoded.mask.all() == fill


def test_lossy_blade_mode(coders):
    image, mask = render_frame((300, 200), seed=8)
    result, decoded = round_trip(image, mask, CodingSettings(mode="roi", blade="lossy", blade_quality=5), coders)
    assert result.bundle.region("blade").coded.coder == "lossy"
    assert decoded.image.shape == image.shape


@pytest.mark.parametrize("mode", ["lossy", "lossless"])
def test_whole_photo_modes(coders, mode):
    image, _ = render_frame((130, 97), seed=1)
    _, decoded = round_trip(image, None, CodingSettings(mode=mode), coders)
    assert decoded.image.shape == image.shape
    if mode == "lossless":
        np.testing.assert_array_equal(decoded.image, image)


def test_roi_without_a_mask_is_refused(coders):
    image, _ = render_frame((64, 64), seed=1)
    with pytest.raises(InputError, match="needs a blade mask"):
        compress_pixels(image, metadata_for(image), CodingSettings(mode="roi"), coders, None)


def test_corrupt_blade_stream_fails_clearly(coders):
    image, mask = render_frame((300, 200), seed=8)
    result = compress_pixels(image, metadata_for(image), CodingSettings(mode="roi"), coders, mask)
    blade = result.bundle.region("blade")
    stream = bytearray(blade.coded.streams[0])
    stream[len(stream) // 3] ^= 0x01
    coded = type(blade.coded)(**{**blade.coded.__dict__, "streams": (bytes(stream),) + blade.coded.streams[1:]})
    damaged = type(result.bundle)(**{**result.bundle.__dict__, "regions": (
        result.bundle.region("background"), type(blade)(blade.name, coded, blade.pixel_sha256))})
    with pytest.raises(CodingError):
        decompress_bundle(damaged, coders)


def test_sub_patches_split_and_join():
    patches = np.random.default_rng(0).integers(0, 255, (3, 3, 256, 256), dtype=np.uint8)
    np.testing.assert_array_equal(join_patches(split_patches(patches, 64), 256), patches)
    np.testing.assert_array_equal(split_patches(patches, 64)[1], patches[0, :, :64, 64:128])


def test_roi_eml_at_a_background_psnr_target_finds_its_level(coders):
    image, mask = render_frame((520, 260), seed=8)
    mask[:, 256:] = False     # background patches to calibrate on
    settings = CodingSettings(mode="roi", background="hp-easn", blade="bitswap")   # bg_psnr, no level
    result, decoded = round_trip(image, mask, settings, coders)
    where = blade_pixels(image, mask)
    np.testing.assert_array_equal(decoded.image[where], image[where])
    level = result.report["choices"]["background"]["level"]
    assert result.bundle.region("background").coded.count > 0
    assert result.bundle.region("background").coded.params["quality"] == level
