"""Bundle container: round trips with metadata, durable files, and damaged bundles.

The damage tests build sections with their own small implementation of the framing in
docs/bundle-format.md, so they check the written spec as well as the code.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from edge.codec.container import (FORMAT_VERSION, MAGIC, Bundle, BundleRegion,
                                  decode_bundle, encode_bundle, pixels_sha256, read_bundle,
                                  verify_region_pixels, write_bundle)
from edge.codec.contract import CodedRegion
from edge.codec.maskcode import encode_mask
from edge.codec.metadata import read_source_metadata, save_image
from edge.codec.patches import PatchGrid, blade_cells, mirror_pad, to_patches
from edge.errors import BundleError, InputError
from tests.wta_sample import SAMPLE

DATA = Path(__file__).resolve().parent / "data"
SCALE = 16   # the toy "coder" below keeps 4x4 means of each 64x64 patch


# ---------------------------------------------------------------------------- fixtures

def toy_code_patches(patches: np.ndarray) -> tuple[np.ndarray, tuple[bytes, ...]]:
    """A stand-in region coder with real data: per-patch 16x16 block means, zlib'd, one stream each."""
    n, c, p, _ = patches.shape
    small = patches.reshape(n, c, p // SCALE, SCALE, p // SCALE, SCALE).mean(axis=(3, 5)).round()
    small = small.astype(np.uint8)
    return small, tuple(zlib.compress(patch.tobytes(), 9) for patch in small)


@pytest.fixture(scope="module")
def real_source():
    image_path = SAMPLE / "images" / "envA_03.JPG"
    mask_path = SAMPLE / "masks" / "envA_03.png"
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
    return image_path, image, mask


@pytest.fixture(scope="module")
def real_bundle(real_source):
    """A bundle of a real photo: its metadata, its mask, a few KB of streams from its pixels."""
    image_path, image, mask = real_source
    grid = PatchGrid(image.shape[0], image.shape[1], 64)
    cells = blade_cells(mask, grid)
    patches = to_patches(mirror_pad(image, grid), grid)
    blade_index = np.flatnonzero(cells.ravel())
    background_index = np.flatnonzero(~cells.ravel())
    blade_small, blade_streams = toy_code_patches(patches[blade_index])
    # The background as one stream: a 1/32 thumbnail of all background patches.
    background = patches[background_index][:, :, ::32, ::32]
    regions = (
        BundleRegion("background", CodedRegion(
            coder="toy-thumbnail", model="", weights_sha256="", patch_size=64,
            count=len(background_index), streams=(zlib.compress(background.tobytes(), 9),),
            params={"step": 32})),
        BundleRegion("blade", CodedRegion(
            coder="toy-means", model="toy-model", weights_sha256=hashlib.sha256(b"toy").hexdigest(),
            patch_size=64, count=len(blade_index), streams=blade_streams,
            params={"block": SCALE, "levels": [0, 255]}), pixel_sha256=pixels_sha256(blade_small)),
    )
    bundle = Bundle(width=grid.width, height=grid.height, channels=3, patch_size=64,
                    mask_code=encode_mask(cells), regions=regions,
                    source=read_source_metadata(image_path))
    return bundle, blade_small


@pytest.fixture(scope="module")
def real_data(real_bundle):
    return encode_bundle(real_bundle[0])


def camera_jpeg(path: Path) -> dict:
    """A JPEG like a drone camera's: EXIF with capture time and GPS, an sRGB ICC profile, XMP."""
    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "DJI"
    exif[0x0110] = "ZH20T"
    exif[0x0112] = 1
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 12:34:56"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (55.0, 30.0, 12.5), "E", (8.0, 1.0, 2.25)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
           '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
           'xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" drone-dji:GimbalYawDegree="-12.3"/>'
           '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()
    image.save(path, "JPEG", quality=90, exif=exif.tobytes(), icc_profile=icc, xmp=xmp)
    return {"pixels": np.asarray(image), "icc": icc, "xmp": xmp}


# Our own reading of the framing in docs/bundle-format.md.
def split_sections(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, sections = 16, []
    while pos < len(data):
        tag, length = struct.unpack_from("<4sI", data, pos)
        sections.append((tag, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return sections


def join_sections(sections: list[tuple[bytes, bytes]], version: int = FORMAT_VERSION) -> bytes:
    first = MAGIC + struct.pack("<HH", version, 0)
    out = first + struct.pack("<I", zlib.crc32(first))
    for tag, payload in sections:
        head = struct.pack("<4sI", tag, len(payload))
        out += head + payload + struct.pack("<I", zlib.crc32(head + payload))
    return out


def with_header(data: bytes, edit) -> bytes:
    """Re-frame ``data`` after ``edit(header_dict)``, CRCs made valid again."""
    sections = split_sections(data)
    header = json.loads(sections[0][1])
    edit(header)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return join_sections([(b"HEAD", text)] + sections[1:])


def assert_bundle_error(data: bytes, section: str | None = None, match: str | None = None) -> BundleError:
    with pytest.raises(BundleError, match=match) as caught:
        decode_bundle(data, name="test.edgb")
    if section is not None:
        assert caught.value.section == section, str(caught.value)
    assert caught.value.bundle == "test.edgb"
    return caught.value


# ---------------------------------------------------------------------------- round trips

def test_real_bundle_round_trips_exactly(real_bundle, real_data):
    bundle, blade_small = real_bundle
    assert 2_000 < sum(len(s) for r in bundle.regions for s in r.coded.streams) < 10_000
    decoded = decode_bundle(real_data)
    assert decoded == bundle
    assert decoded.bundle_id == bundle.bundle_id
    assert decoded.source.sha256 == hashlib.sha256((SAMPLE / "images" / "envA_03.JPG").read_bytes()).hexdigest()
    np.testing.assert_array_equal(decoded.blade_cells(), blade_cells(
        cv2.imread(str(SAMPLE / "masks" / "envA_03.png"), cv2.IMREAD_GRAYSCALE) > 127, decoded.grid))
    # The decoder side: rebuild the blade "pixels" from the streams and check their hash.
    blade = decoded.region("blade")
    rebuilt = np.stack([np.frombuffer(zlib.decompress(s), np.uint8) for s in blade.coded.streams])
    verify_region_pixels(blade, rebuilt.reshape(blade_small.shape))
    wrong = rebuilt.copy()
    wrong[0, 0] ^= 1
    with pytest.raises(BundleError) as caught:
        verify_region_pixels(blade, wrong.reshape(blade_small.shape), bundle="x.edgb")
    assert caught.value.section == "stream:blade"


def test_real_jpeg_metadata(real_source):
    image_path = real_source[0]
    meta = read_source_metadata(image_path)
    assert meta.filename == image_path.name
    assert meta.size == image_path.stat().st_size
    assert meta.sha256 == hashlib.sha256(image_path.read_bytes()).hexdigest()
    assert meta.format == "JPEG"


def test_camera_metadata_survives_bundle_and_decoded_png_and_tiff(tmp_path):
    made = camera_jpeg(tmp_path / "DJI_0001.JPG")
    meta = read_source_metadata(tmp_path / "DJI_0001.JPG")
    assert meta.exif.startswith((b"MM\x00*", b"II*\x00")) and meta.icc == made["icc"] and meta.xmp == made["xmp"]
    cells = np.zeros((1, 1), bool)
    region = CodedRegion("lossy", "m", hashlib.sha256(b"m").hexdigest(), 64, 1, (b"abc",), {})
    bundle = Bundle(64, 48, 3, 64, encode_mask(cells), (BundleRegion("whole", region),), meta)
    write_bundle(tmp_path / "DJI_0001.edgb", bundle)
    back = read_bundle(tmp_path / "DJI_0001.edgb").source
    assert back == meta
    for name in ("out.png", "out.tif"):
        save_image(tmp_path / name, made["pixels"], back)
        written = read_source_metadata(tmp_path / name)
        assert written.icc == meta.icc and written.xmp == meta.xmp, name
        if name.endswith(".png"):
            assert written.exif == meta.exif
        tags = Image.open(tmp_path / name).getexif()
        assert tags[0x010F] == "DJI" and tags.get_ifd(0x8769)[0x9003] == "2024:06:01 12:34:56", name
        assert tags.get_ifd(0x8825)[2] == (55.0, 30.0, 12.5), name
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name)), made["pixels"])


def test_metadata_errors_are_input_errors(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8not a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        read_source_metadata(tmp_path / "broken.jpg")
    with pytest.raises(InputError):
        read_source_metadata(tmp_path / "missing.jpg")
    with pytest.raises(InputError):
        save_image(tmp_path / "out.jpg", np.zeros((2, 2, 3), np.uint8))


def test_write_bundle_is_atomic_and_leaves_no_temp_files(tmp_path, real_bundle):
    path = tmp_path / "photo.edgb"
    path.write_bytes(b"old content")
    write_bundle(path, real_bundle[0])
    assert read_bundle(path) == real_bundle[0]
    assert sorted(os.listdir(tmp_path)) == ["photo.edgb"]
    with pytest.raises(BundleError):                 # a bad bundle never replaces a good file
        write_bundle(path, replace(real_bundle[0], mask_code=b""))
    assert read_bundle(path) == real_bundle[0]
    assert sorted(os.listdir(tmp_path)) == ["photo.edgb"]


def test_read_missing_file_is_a_bundle_error(tmp_path):
    with pytest.raises(BundleError) as caught:
        read_bundle(tmp_path / "nope.edgb")
    assert caught.value.section == "file" and "nope.edgb" in str(caught.value)


# ---------------------------------------------------------------------------- bundle id

def test_bundle_id_is_stable_and_follows_the_settings(real_bundle):
    bundle = real_bundle[0]
    background, blade = bundle.regions
    other_streams = replace(bundle, regions=(
        replace(background, coded=replace(background.coded, streams=(b"different",))), blade))
    assert other_streams.bundle_id == bundle.bundle_id          # same photo, same settings
    assert replace(bundle, mask_code=encode_mask(np.ones((17, 30), bool))).bundle_id == bundle.bundle_id
    changed = [
        replace(bundle, source=replace(bundle.source, sha256="0" * 64)),
        replace(bundle, patch_size=32, mask_code=encode_mask(np.zeros((34, 60), bool))),
        replace(bundle, regions=(replace(background, coded=replace(background.coded, params={"step": 16})), blade)),
        replace(bundle, regions=(background, replace(blade, coded=replace(blade.coded, weights_sha256="1" * 64)))),
    ]
    ids = {b.bundle_id for b in changed} | {bundle.bundle_id}
    assert len(ids) == len(changed) + 1


# ---------------------------------------------------------------------------- golden file

def load_golden_script():
    spec = importlib.util.spec_from_file_location("make_golden_bundle", DATA / "make_golden_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_golden_bundle_format_is_unchanged():
    """Fails on any change to the bytes a bundle is written as: bump the version on purpose."""
    script = load_golden_script()
    golden = (DATA / f"golden-v{FORMAT_VERSION}.edgb").read_bytes()
    expected = script.build_golden_bundle()
    assert encode_bundle(expected) == golden
    decoded = decode_bundle(golden)
    assert decoded == expected
    assert golden[:8] == MAGIC and struct.unpack_from("<H", golden, 8)[0] == FORMAT_VERSION
    assert [tag for tag, _ in split_sections(golden)] == [b"HEAD", b"MASK", b"META", b"STRM", b"STRM", b"END "]
    assert decoded.blade_cells().sum() == 3


def test_golden_v1_bundle_still_reads():
    """Bundles written before format 2 keep decoding (format 2 only added coders)."""
    golden = (DATA / "golden-v1.edgb").read_bytes()
    assert struct.unpack_from("<H", golden, 8)[0] == 1
    decoded = decode_bundle(golden)
    assert decoded == load_golden_script().build_golden_bundle(1)
    assert decoded.blade_cells().sum() == 10


# ---------------------------------------------------------------------------- damage

def test_every_truncation_is_a_bundle_error(real_data):
    for end in range(len(real_data)):
        try:
            decode_bundle(real_data[:end], name="cut.edgb")
        except BundleError as error:
            assert error.section and error.bundle == "cut.edgb"
        else:
            pytest.fail(f"a bundle cut at byte {end} of {len(real_data)} decoded")


def test_random_bit_flips_are_bundle_errors(real_data):
    rng = np.random.default_rng(1234)
    sections = set()
    for bit in rng.integers(0, len(real_data) * 8, size=1000):
        damaged = bytearray(real_data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        try:
            decode_bundle(bytes(damaged))
        except BundleError as error:
            sections.add(error.section.split(":")[0])
        else:
            pytest.fail(f"a bundle with bit {bit} flipped decoded")
    assert {"header", "stream"} <= sections


def test_trailing_bytes_wrong_magic_and_garbage(real_data):
    assert_bundle_error(real_data + b"\x00", "end", "follow")
    assert_bundle_error(b"GIF89a" + real_data[6:], "preamble", "magic")
    assert_bundle_error(b"", "preamble", "truncated")
    for seed in range(50):
        garbage = np.random.default_rng(seed).integers(0, 256, 200, dtype=np.uint8).tobytes()
        assert_bundle_error(garbage)
        assert_bundle_error(real_data[:16] + garbage)


def test_unknown_version_names_the_version(real_data):
    future = join_sections(split_sections(real_data), version=FORMAT_VERSION + 1)
    error = assert_bundle_error(future, "version", "not supported")
    assert str(FORMAT_VERSION + 1) in str(error)


def test_huge_bogus_lengths_are_refused_before_allocating(real_data):
    sections = split_sections(real_data)
    # A section length near 4 GiB with nothing behind it.
    bogus = bytearray(real_data)
    struct.pack_into("<I", bogus, 16 + 4, 0xFFFFFFF0)
    assert_bundle_error(bytes(bogus), "header", "truncated")
    # A stream table claiming 2^40 streams, with a valid CRC.
    table = bytearray()
    value = 1 << 40
    while value >= 0x80:
        table.append(value & 0x7F | 0x80)
        value >>= 7
    table.append(value)
    damaged = sections[:3] + [(b"STRM", bytes(table) + b"\x01\x02")] + sections[4:]
    assert_bundle_error(join_sections(damaged), "stream:background", "claims")
    # A metadata blob length past the end.
    damaged = sections[:2] + [(b"META", struct.pack("<I", 0xFFFFFFFF))] + sections[3:]
    assert_bundle_error(join_sections(damaged), "metadata", "exceeds")


def test_header_claims_are_checked_against_the_sections(real_data):
    def set_region(index, key, value):
        return lambda header: header["regions"][index].__setitem__(key, value)

    cases = [
        (set_region(1, "streams", 3), "stream:blade", "header says"),
        (set_region(0, "bits", 8), "stream:background", "header says"),
        (set_region(0, "stream_section", 1), "header", "own stream section"),
        (set_region(0, "name", "blade"), "header", "repeat"),
        (set_region(0, "name", "../etc"), "header", "region name"),
        (set_region(1, "pixel_sha256", "XYZ"), "header", "pixel_sha256"),
        (set_region(0, "count", -1), "header", "count"),
        (set_region(0, "count", True), "header", "count"),
        (set_region(0, "params", [1]), "header", "params"),
        (lambda h: h.__setitem__("width", 10**12), "header", "width"),
        (lambda h: h.__setitem__("patch_size", 32), "mask", "grid"),
        (lambda h: h.__setitem__("bundle_id", "0" * 32), "header", "bundle id"),
        (lambda h: h.__setitem__("extra", 1), "header", "unknown"),
        (lambda h: h.pop("source"), "header", "missing"),
        (lambda h: h["source"].__setitem__("sha256", 5), "header", "sha256"),
        (lambda h: h.__setitem__("regions", []), "header", "regions"),
        (lambda h: h.__setitem__("regions", {"a": 1}), "header", "regions"),
        (lambda h: h["regions"][0].__setitem__("params", {"x": float("nan")}), "header", "JSON"),
    ]
    for edit, section, match in cases:
        if match == "JSON":   # NaN cannot come out of json.dumps(allow_nan=False): write it by hand
            sections = split_sections(real_data)
            text = sections[0][1].replace(b'"params":{"step":32}', b'"params":{"x":NaN}')
            assert text != sections[0][1]
            assert_bundle_error(join_sections([(b"HEAD", text)] + sections[1:]), section, match)
            continue
        assert_bundle_error(with_header(real_data, edit), section, match)


def test_header_must_be_canonical_json(real_data):
    sections = split_sections(real_data)
    spaced = json.dumps(json.loads(sections[0][1]), sort_keys=True).encode()
    assert_bundle_error(join_sections([(b"HEAD", spaced)] + sections[1:]), "header", "canonical")
    for bad in (b"\xff\xfe", b"[" * 100_000, b'{"a":1,"a":2}', b"null"):
        assert_bundle_error(join_sections([(b"HEAD", bad)] + sections[1:]), "header")


def test_sections_out_of_order_or_missing(real_data):
    sections = split_sections(real_data)
    assert_bundle_error(join_sections([sections[1], sections[0]] + sections[2:]), "header", "expected tag")
    assert_bundle_error(join_sections(sections[:-1]), "end", "truncated")
    assert_bundle_error(join_sections(sections[:4] + sections[5:]), "stream:blade", "expected tag")


# ---------------------------------------------------------------------------- refusing to write

def test_encoder_refuses_what_the_decoder_would_refuse(real_bundle):
    bundle = real_bundle[0]
    background, blade = bundle.regions
    bad = [
        replace(bundle, regions=(background, replace(blade, name="background"))),
        replace(bundle, regions=(background, replace(blade, pixel_sha256="abc"))),
        replace(bundle, regions=(replace(background, coded=replace(background.coded, params={"shape": (1, 2)})),)),
        replace(bundle, regions=(replace(background, coded=replace(background.coded, params={1: 2})),)),
        replace(bundle, regions=(replace(background, coded=replace(background.coded, streams=("text",))),)),
        replace(bundle, regions=(replace(background, coded=replace(background.coded, weights_sha256="x")),)),
        replace(bundle, regions=()),
        replace(bundle, mask_code=encode_mask(np.zeros((3, 3), bool))),
        replace(bundle, source=replace(bundle.source, sha256="")),
        replace(bundle, width=0),
    ]
    for candidate in bad:
        with pytest.raises(BundleError, match="cannot write"):
            encode_bundle(candidate)
