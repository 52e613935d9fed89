"""The lossy coder: exact latents through constriction, canonical scales, damaged streams."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from edge.codec.entropy import open_stream
from edge.codec.lossy.tables import PRECISION_BITS, quantize_pmf
from edge.codec.patches import PatchGrid
from edge.codec.roi import image_patches
from edge.errors import CodingError
from edge.synth import render_frame
from tests.tiny_models import tiny_lossy_coder


@pytest.fixture(scope="module")
def coder(tmp_path_factory):
    return tiny_lossy_coder(tmp_path_factory.mktemp("lossy"))


@pytest.fixture(scope="module")
def patches():
    image, _ = render_frame((410, 300), seed=5)
    return image_patches(image, PatchGrid(300, 410, 256))


@pytest.mark.parametrize("level", [0, 3, 5])
def test_decoded_latents_equal_the_encoders(coder, patches, level):
    coded = coder.compress(patches, level)
    assert len(coded.streams) == len(patches) == coded.count
    np.testing.assert_array_equal(coder.decode_latents(coded), coder.analyse(patches, level).y_hat)
    decoded = coder.decompress(coded)
    assert decoded.shape == patches.shape and decoded.dtype == np.uint8


def test_values_outside_the_tables_travel_exactly_as_escapes(coder, patches):
    # Huge gains push latents far beyond every table's support.
    original = coder.model.log_gain.data.clone()
    try:
        coder.model.log_gain.data += 6.0
        latents = coder.analyse(patches[:1], 2)
        half_width = coder.tables.gaussian_half_width[coder.scale_indexes(latents.z_hat)]
        assert (np.abs(latents.y_hat) > half_width).any()
        coded = coder.compress(patches[:1], 2)
        np.testing.assert_array_equal(coder.decode_latents(coded), latents.y_hat)
    finally:
        coder.model.log_gain.data = original


def test_higher_quality_costs_more_bits(coder, patches):
    assert coder.compress(patches, 5).bits > coder.compress(patches, 0).bits


def test_scales_do_not_depend_on_the_thread_count(coder, patches):
    z_hat = coder.analyse(patches, 3).z_hat
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = coder.scale_indexes(z_hat)
        torch.set_num_threads(2)
        two = coder.scale_indexes(z_hat)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_decoding_with_one_and_two_threads_gives_identical_pictures(tmp_path, patches):
    """Separate processes, as on two machines: each loads the same weights and decodes."""
    coder = tiny_lossy_coder(tmp_path, seed=1)
    coded = coder.compress(patches, 4)
    streams = tmp_path / "streams.npz"
    np.savez(streams, *[np.frombuffer(s, np.uint8) for s in coded.streams])
    script = (
        "import sys, numpy as np, torch; torch.set_num_threads(int(sys.argv[1]));"
        "from edge.codec.contract import CodedRegion; from edge.codec.lossy.weights import load_coder;"
        "c = load_coder(sys.argv[2], 'tiny-lossy'); f = np.load(sys.argv[3]);"
        "s = tuple(f[k].tobytes() for k in sorted(f.files, key=lambda k: int(k.split('_')[1])));"
        "r = CodedRegion('lossy', 'tiny-lossy', c.weights_sha256, 256, len(s), s, {'quality': 4});"
        "np.save(sys.argv[4], c.decompress(r))"
    )
    outputs = []
    for threads in (1, 2):
        out = tmp_path / f"out{threads}.npy"
        subprocess.run([sys.executable, "-c", script, str(threads), str(tmp_path / "tiny-lossy-1.pt"),
                        str(streams), str(out)], check=True)
        outputs.append(np.load(out))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], coder.decompress(coded))


def test_a_damaged_stream_is_a_coding_error_not_a_crash(coder, patches):
    coded = coder.compress(patches[:2], 3)
    stream = bytearray(coded.streams[0])
    stream[len(stream) // 2] ^= 0x10
    damaged = type(coded)(**{**coded.__dict__, "streams": (bytes(stream), coded.streams[1])})
    # ANS decodes any bits, so a flip shows up as a stream that does not end where it should.
    with pytest.raises(CodingError):
        coder.decompress(damaged)
    for bad in (b"", b"\x01\x02\x03", b"\x00" * 8):
        with pytest.raises(CodingError):
            open_stream(bad, 0)


def test_quality_level_out_of_range_is_refused(coder, patches):
    with pytest.raises(CodingError, match="quality level 9"):
        coder.compress(patches, 9)


def test_quantised_tables_are_positive_and_exact():
    pmf = np.array([1e-30, 0.2, 0.5, 0.3, 0.0])
    counts = quantize_pmf(pmf)
    assert counts.min() >= 1 and counts.sum() == 1 << PRECISION_BITS
    assert counts.argmax() == 2
