"""The source-file region coder (the fallback that always delivers) and the offshore decoder
dispatch, output writing and idempotency."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from tests.daemon_helpers import decoded_source, jpeg_bytes, photo_pixels, write_photo
from edge.codec.container import decode_bundle, encode_bundle
from edge.codec.sourcefile import compress_source_file, decompress_source_file
from edge.config import OutputConfig
from edge.errors import BundleError, CodingError, InputError
from edge.offshore.decode import PhotoDecoder
from edge.offshore.output import OutputFolder


def test_round_trip_is_the_exact_file(tmp_path):
    path = write_photo(tmp_path, 5)
    _, mask = photo_pixels(5)
    result = compress_source_file(path, mask=mask)
    bundle = decode_bundle(encode_bundle(result.bundle))
    decoded = decompress_source_file(bundle)
    assert decoded.file_bytes == path.read_bytes()
    assert np.array_equal(decoded.image, decoded_source(path))
    assert decoded.mask[mask].all() and not decoded.mask.all()       # blade cells cover the blade
    assert bundle.source.exif and bundle.source.format == "JPEG"
    fallback = compress_source_file(path, mask=mask, fallback_for=result.bundle.bundle_id)
    assert fallback.bundle.bundle_id != result.bundle.bundle_id        # a fallback is its own bundle
    assert compress_source_file(path, mask=mask).bundle.bundle_id == result.bundle.bundle_id   # stable


def test_a_changed_file_is_refused_naming_the_stream(tmp_path):
    path = write_photo(tmp_path, 1)
    bundle = compress_source_file(path).bundle
    region = bundle.regions[0]
    data = bytearray(region.coded.streams[0])
    data[len(data) // 2] ^= 0x10
    damaged = dataclasses.replace(bundle, regions=(dataclasses.replace(
        region, coded=dataclasses.replace(region.coded, streams=(bytes(data),))),))
    with pytest.raises(BundleError) as caught:
        decompress_source_file(damaged, "drone/DJI_0001.JPG")
    assert caught.value.section == "stream:whole" and "SHA-256" in str(caught.value)


def test_unusable_files_are_input_errors(tmp_path):
    whole = jpeg_bytes(2)
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.jpg").write_text("hello")
    for name in ("cut.jpg", "text.jpg", "absent.jpg"):
        with pytest.raises(InputError, match=name):
            compress_source_file(tmp_path / name)
    with pytest.raises(InputError, match="does not fit"):
        compress_source_file(write_photo(tmp_path, 3), mask=np.zeros((10, 10), bool))


def test_decoder_dispatch_and_output_written_once(tmp_path):
    path = write_photo(tmp_path, 7)
    bundle = compress_source_file(path, mask=photo_pixels(7)[1]).bundle
    data = encode_bundle(bundle)
    decoded = PhotoDecoder()(bundle, "drone/x")
    output = OutputFolder(OutputConfig(folder=tmp_path / "out", image_format="tiff"))
    assert not output.has_photo(bundle)
    sidecar = output.write("drone-1", bundle, data, decoded, {"surface": "s"})
    assert output.has_photo(bundle)
    folder = tmp_path / "out" / "drone-1"
    image = folder / sidecar["image"]
    assert image.suffix == ".tif" and np.array_equal(decoded_source(image), decoded_source(path))
    with Image.open(image) as tiff:
        assert tiff.getexif().get_ifd(0x8769).get(0x9003)                  # capture time kept
    assert (folder / sidecar["source_file"]).read_bytes() == path.read_bytes()
    assert json.loads(image.with_suffix(".json").read_text())["regions"][0]["coder"] == "source-file"
    # Any other coder goes to the codec, which refuses what it has no model for.
    other = dataclasses.replace(bundle, regions=(dataclasses.replace(
        bundle.regions[0], coded=dataclasses.replace(bundle.regions[0].coded, coder="no-such-coder")),))
    with pytest.raises(CodingError):
        PhotoDecoder()(other, "drone/y")
