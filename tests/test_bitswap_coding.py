"""Bit-swap coding: exact round trips, seeding, determinism and damaged streams.

Coding must be exact for any weights, so most tests use a tiny randomly initialized model.
"""
from __future__ import annotations

import hashlib

import constriction
import numpy as np
import pytest
import torch

from edge.codec.bitswap.coder import BitswapCoder, standalone_seed
from edge.codec.bitswap.coding import CanonicalNetworks, decode_patches, encode_patches
from edge.codec.bitswap.discretize import canonical_exp, latent_layout, pixel_layout
from edge.codec.bitswap.model import BitswapConfig, BitswapVAE
from edge.codec.bitswap.streams import StreamPool
from edge.errors import CodingError, InputError
from tests.wta_sample import SAMPLE

WTA_HELD_OUT_FRAME = SAMPLE / "images" / "envC_45.JPG"


def make_tiny_model(pixel_stages: int) -> BitswapVAE:
    torch.manual_seed(3)
    model = BitswapVAE(BitswapConfig(width=8, depth=1, pixel_stages=pixel_stages))
    # Random weights give nearly flat distributions; scale the output layers so that the
    # means and scales vary as much as a trained model's do.
    with torch.no_grad():
        for transform in [*model.q, *model.p, model.px, *getattr(model, "px_stage", [])]:
            transform.head.weight.mul_(8.0)
    return model.eval()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread unless a test says otherwise (the machine is shared; OpenMP waits badly when it is busy)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_model() -> BitswapVAE:
    return make_tiny_model(pixel_stages=10)


@pytest.mark.parametrize("levels", [1, 3])
def test_round_trip_reference_model_other_depths(levels):
    """The reference's factorized p(x|z1), with one and with three latent levels."""
    torch.manual_seed(4)
    model = BitswapVAE(BitswapConfig(width=8, depth=1, levels=levels, pixel_stages=1)).eval()
    patches = np.stack([smooth_image(64, 64, seed).transpose(2, 0, 1) for seed in range(2)])
    seeds = random_seeds(1)
    nets = CanonicalNetworks(model, latent_bins=256)
    streams = encode_patches(nets, patches, seeds)
    decoded, remaining = decode_patches(nets, streams, len(patches))
    assert np.array_equal(decoded, patches) and np.array_equal(remaining[0], seeds[0])


@pytest.fixture(scope="module")
def nets(tiny_model) -> CanonicalNetworks:
    return CanonicalNetworks(tiny_model, latent_bins=256)   # fewer bins: faster tests


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 13.0)[..., None] + np.array([10, 0, -20])
    return np.clip(base + rng.normal(0, 3, (height, width, 3)), 0, 255).astype(np.uint8)


def random_seeds(count: int, words: int = 2000, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 2**32, words, dtype=np.uint32) for _ in range(count)]


def test_round_trip_patches_several_streams(nets):
    patches = np.random.default_rng(5).integers(0, 256, (3, 3, 64, 64), dtype=np.uint8)
    patches[1] = 200                                   # a flat patch next to noise
    seeds = random_seeds(2)
    streams = encode_patches(nets, patches, seeds)
    decoded, remaining = decode_patches(nets, streams, len(patches))
    assert np.array_equal(decoded, patches)
    for left, seed in zip(remaining, seeds):
        assert np.array_equal(left, seed)


def test_round_trip_odd_sized_image_standalone(tiny_model):
    image = smooth_image(70, 45)
    coder = BitswapCoder(tiny_model)
    coded = coder.compress_image(image)
    assert coded.count == 2 and coded.params["mode"] == "standalone"
    assert np.array_equal(coder.decompress_image(coded), image)
    # Only the seed words the coding touched are stored.
    assert all(0 < prefix < 4096 for prefix in coded.params["prefix"])


def test_round_trip_real_crop(tiny_model):
    import cv2

    frame = cv2.cvtColor(cv2.imread(str(WTA_HELD_OUT_FRAME)), cv2.COLOR_BGR2RGB)
    crop = np.ascontiguousarray(frame[250:313, 450:580])           # 63 x 130: padded on both axes
    coder = BitswapCoder(tiny_model, streams=2, latent_bins=256)
    assert np.array_equal(coder.decompress_image(coder.compress_image(crop)), crop)


def test_seeded_by_another_stream_gives_its_words_back(tiny_model):
    # A "background" stream coded with an unrelated model seeds the lossless patches.
    background = constriction.stream.stack.AnsCoder()
    symbols = np.arange(-50, 50, dtype=np.int32)
    gaussian = constriction.stream.model.QuantizedGaussian(-100, 100)
    background.encode_reverse(symbols, gaussian, np.zeros(100), np.full(100, 20.0))
    seed = background.get_compressed()
    coder = BitswapCoder(tiny_model, latent_bins=256)
    patches = smooth_image(64, 128).reshape(64, 2, 64, 3).transpose(1, 3, 0, 2).copy()
    coded = coder.compress(patches, initial_words=[seed])
    assert coded.params["mode"] == "seeded" and len(coded.streams[0]) > 4 * len(seed)
    decoded, remaining = coder.decompress_with_seeds(coded)
    assert np.array_equal(decoded, patches)
    assert np.array_equal(remaining[0], seed)
    rest = constriction.stream.stack.AnsCoder(remaining[0])
    assert np.array_equal(rest.decode(gaussian, np.zeros(100), np.full(100, 20.0)), symbols)
    assert rest.is_empty()


def test_same_streams_with_one_or_two_threads(nets):
    patches = np.stack([smooth_image(64, 64, seed).transpose(2, 0, 1) for seed in range(2)])
    seeds = random_seeds(2)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = encode_patches(nets, patches, seeds)
        torch.set_num_threads(2)
        two = encode_patches(nets, patches, seeds)
        decoded, _ = decode_patches(nets, one, len(patches))
    finally:
        torch.set_num_threads(previous)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    assert np.array_equal(decoded, patches)


def test_same_stream_whatever_the_batch(nets):
    """A patch coded alone (network batch 1) and in a round of three gives the same stream."""
    patches = np.stack([smooth_image(64, 64, seed).transpose(2, 0, 1) for seed in range(3)])
    seeds = random_seeds(3)
    together = encode_patches(nets, patches, seeds)
    alone = encode_patches(nets, patches[1:2], seeds[1:2])
    assert np.array_equal(together[1], alone[0])


@pytest.mark.slow
def test_process_pool_matches_local_coding(tiny_model):
    image = smooth_image(64, 64 * 3)
    local = BitswapCoder(tiny_model, streams=3, latent_bins=256).compress_image(image)
    with StreamPool(2) as pool:
        parallel = BitswapCoder(tiny_model, streams=3, pool=pool, latent_bins=256)
        coded = parallel.compress_image(image)
        assert coded.streams == local.streams
        assert np.array_equal(parallel.decompress_image(coded), image)
        # A damaged stream fails cleanly and leaves the pool usable.
        damaged = type(coded)(**{**coded.__dict__, "streams": (coded.streams[0][:-4],) + coded.streams[1:]})
        with pytest.raises(CodingError):
            parallel.decompress_image(damaged)
        assert np.array_equal(parallel.decompress_image(coded), image)
        # A failure in the middle of a pipelined job (non-finite parameters) too.
        broken = BitswapVAE(tiny_model.config)
        broken.load_state_dict(tiny_model.state_dict())
        with torch.no_grad():
            broken.px_stage[3].head.bias.fill_(float("nan"))
        with pytest.raises(CodingError, match="non-finite"):
            BitswapCoder(broken, streams=3, pool=pool, latent_bins=256).compress_image(image)
        assert np.array_equal(parallel.decompress_image(coded), image)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_process_pool_with_requests_larger_than_a_pipe_buffer(tiny_model):
    """48 streams of 64x64 patches: each request and answer between the pool and its workers is
    megabytes, far more than a pipe buffer; nothing may block and the streams equal local coding.
    """
    patches = np.stack([smooth_image(64, 64, seed).transpose(2, 0, 1) for seed in range(48)])
    seeds = random_seeds(48)
    local = encode_patches(tiny_model, patches, seeds)
    with StreamPool(2) as pool:
        pooled = encode_patches(tiny_model, patches, seeds, pool)
        decoded, remaining = decode_patches(tiny_model, pooled, len(patches), pool)
    assert all(np.array_equal(a, b) for a, b in zip(local, pooled))
    assert np.array_equal(decoded, patches)
    assert all(np.array_equal(a, b) for a, b in zip(remaining, seeds))


def test_damaged_stream_raises_coding_error(tiny_model):
    image = smooth_image(64, 64)
    coder = BitswapCoder(tiny_model, latent_bins=256)
    coded = coder.compress_image(image)
    data = bytearray(coded.streams[0])
    data[len(data) // 2] ^= 0x10
    damaged = type(coded)(**{**coded.__dict__, "streams": (bytes(data),)})
    with pytest.raises(CodingError):
        coder.decompress_image(damaged)
    truncated = type(coded)(**{**coded.__dict__, "streams": (coded.streams[0][:-2],)})
    with pytest.raises(CodingError, match="whole number of words"):
        coder.decompress_image(truncated)
    shorter = type(coded)(**{**coded.__dict__, "streams": (coded.streams[0][4:],)})
    with pytest.raises(CodingError):
        coder.decompress_image(shorter)


def test_non_finite_parameters_are_refused(tiny_model):
    broken = BitswapVAE(tiny_model.config)
    broken.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        broken.px_stage[0].head.bias.fill_(float("nan"))
    with pytest.raises(CodingError, match="non-finite"):
        BitswapCoder(broken).compress(np.zeros((1, 3, 64, 64), dtype=np.uint8))


def test_bad_patches_are_an_input_error(tiny_model):
    with pytest.raises(InputError):
        BitswapCoder(tiny_model).compress(np.zeros((1, 3, 32, 32), dtype=np.uint8))


def test_canonical_exp_is_accurate():
    x = np.linspace(-60, 60, 100001)
    assert np.max(np.abs(canonical_exp(x) / np.exp(x) - 1)) < 1e-15


def test_tables_match_the_logistic_and_are_pinned():
    """Rows equal the discretized logistic; their digest pins the table format (streams depend on it)."""
    layout = pixel_layout()
    n = np.array([0, 1000, 2047, 4096])
    j = np.array([layout.j_min, -200, -64, layout.j_max])
    rows = layout.probabilities(n, j)
    mean = layout.low + n * layout.width / layout.mean_steps
    scale = layout.scale_unit * np.exp(j / 64)
    edges = layout.low + np.arange(1, layout.bins) * layout.width
    with np.errstate(over="ignore"):
        cdf = 1 / (1 + np.exp(-(edges[None] - mean[:, None]) / scale[:, None]))
    expected = np.diff(np.concatenate([np.zeros((4, 1)), cdf, np.ones((4, 1))], axis=1), axis=1)
    assert np.abs(rows - expected).max() < 1e-7
    latent_rows = latent_layout(1024).probabilities(np.array([0, 2048, 3001]), np.array([-384, 0, 128]))
    digest = hashlib.sha256(rows.tobytes() + latent_rows.tobytes()).hexdigest()[:16]
    assert digest == GOLDEN_TABLE_DIGEST


def test_standalone_seed_is_fixed():
    seed = standalone_seed(3, 8)
    assert seed.dtype == np.uint32 and np.all(seed & 1)
    assert np.array_equal(seed, standalone_seed(3, 8)) and not np.array_equal(seed, standalone_seed(4, 8))


GOLDEN_TABLE_DIGEST = "85387fc278415f0f"
