"""jpeg-exact: a JPEG photo's blade kept as the camera's own DCT blocks, exact after decoding."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from edge.codec import jpegexact, jpegheaders, jpegwrite, turbojpeg
from edge.codec.container import BundleRegion, decode_bundle, encode_bundle
from edge.codec.imageio import decode_image_bytes
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask
from edge.codec.photo import Coders, CodingSettings, compress_pixels, decompress_bundle
from edge.codec.quality import psnr
from edge.errors import BundleError, CodingError, InputError
from edge.synth import render_frame
from tests.tiny_models import tiny_bitswap_coder, tiny_lossy_coder

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


@pytest.fixture(scope="module")
def coders(tmp_path_factory):
    return Coders(lossy=tiny_lossy_coder(tmp_path_factory.mktemp("jpegexact"), patch_size=128),
                  lossless=tiny_bitswap_coder())


def jpeg_of(image: np.ndarray, subsampling: str = "4:2:0", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90, subsampling=SUBSAMPLING[subsampling], **options)
    return buffer.getvalue()


def code(data: bytes, mask: np.ndarray, coders, blade: str = "jpeg-exact", pixels: np.ndarray | None = None):
    """Compress (pixels = Pillow's decode of the file, as edge.codec.imageio reads photos),
    write and read the bundle, decode it."""
    pixels = decode_image_bytes(data) if pixels is None else pixels
    metadata = source_metadata_from_bytes(data, "photo.jpg")
    result = compress_pixels(pixels, metadata, CodingSettings(mode="roi", blade=blade), coders, mask,
                             source_bytes=data)
    bundle = decode_bundle(encode_bundle(result.bundle))
    return result, bundle, decompress_bundle(bundle, coders), pixels


def blade_cell_mask(mask: np.ndarray) -> np.ndarray:
    grid = PatchGrid(mask.shape[0], mask.shape[1], jpegexact.CELL)
    return cells_to_mask(blade_cells(mask, grid), grid)


@pytest.mark.parametrize("subsampling", list(SUBSAMPLING))
@pytest.mark.parametrize("size", [(203, 150), (97, 61)])
def test_blade_cells_decode_identical_to_the_source(coders, subsampling, size):
    image, mask = render_frame(size, seed=5)
    data = jpeg_of(image, subsampling)
    result, bundle, decoded, source = code(data, mask, coders)
    where = blade_cell_mask(mask)
    assert where.any() and not where.all()
    np.testing.assert_array_equal(decoded.mask, where)
    np.testing.assert_array_equal(decoded.image[where], source[where])
    assert decoded.image.shape == source.shape
    blade = bundle.region("blade").coded
    assert blade.coder == "jpeg-exact" and blade.params["chosen_by"] == "request"
    assert result.report["regions"]["blade"]["coder"] == "jpeg-exact"


def test_kept_blocks_are_the_cameras_own_and_the_jpeg_keeps_its_exif(coders):
    image, mask = render_frame((180, 133), seed=9)
    exif = Image.Exif()
    exif[0x010F] = "DroneMaker"     # Make
    data = jpeg_of(image, "4:2:0", exif=exif.tobytes())
    _, bundle, decoded, source = code(data, mask, coders)

    written = jpegwrite.jpeg_bytes(bundle)
    with Image.open(io.BytesIO(written)) as reopened:
        assert reopened.getexif()[0x010F] == "DroneMaker"
    np.testing.assert_array_equal(decode_image_bytes(written)[decoded.mask], source[decoded.mask])

    assert jpegheaders.inspect_jpeg(written).quant_tables == jpegheaders.inspect_jpeg(data).quant_tables
    original_y, original_cb, original_cr = turbojpeg.read_blocks(data)
    kept_y, kept_cb, kept_cr = turbojpeg.read_blocks(written)
    cells = bundle.blade_cells()
    luma = cells.repeat(2, axis=0).repeat(2, axis=1)[: original_y.shape[0], : original_y.shape[1]]
    np.testing.assert_array_equal(kept_y[luma], original_y[luma])
    assert not kept_y[~luma].any()                       # everything else blanked
    chroma = jpegexact._dilate(cells)[: original_cb.shape[0], : original_cb.shape[1]]
    np.testing.assert_array_equal(kept_cb[chroma], original_cb[chroma])
    np.testing.assert_array_equal(kept_cr[chroma], original_cr[chroma])


@pytest.mark.parametrize("subsampling", list(SUBSAMPLING))
@pytest.mark.parametrize("progressive", [False, True])
def test_blocks_and_tables_read_as_an_independent_libjpeg_wrapper_reads_them(tmp_path, subsampling, progressive):
    jpeglib = pytest.importorskip("jpeglib")     # a second reader of DCT coefficients (x86-64 wheels only)
    image, _ = render_frame((77, 101), seed=4)
    data = jpeg_of(image, subsampling, progressive=progressive)
    (tmp_path / "photo.jpg").write_bytes(data)
    reference = jpeglib.read_dct(str(tmp_path / "photo.jpg"))
    reference.load()
    ours = turbojpeg.read_blocks(data)
    for blocks, expected in zip(ours, (reference.Y, reference.Cb, reference.Cr)):
        np.testing.assert_array_equal(blocks, expected)
    info = jpegheaders.inspect_jpeg(data)
    assert [blocks.shape[:2] for blocks in ours] == jpegheaders.component_block_shapes(info)
    for index, table in enumerate(info.quant_tables):
        np.testing.assert_array_equal(np.reshape(table, (8, 8)), reference.qt[reference.quant_tbl_no[index]])


def test_an_error_inside_a_block_edit_reaches_the_caller():
    data = jpeg_of(render_frame((40, 40), seed=1)[0])

    def broken(component, row, blocks):
        raise ValueError("edit failed on purpose")

    with pytest.raises(ValueError, match="on purpose"):
        turbojpeg.edit_blocks(data, broken)
    with pytest.raises(CodingError, match="libjpeg-turbo"):
        turbojpeg.edit_blocks(data[:200], lambda *_: None)


@pytest.mark.parametrize("subsampling", ["4:2:2", "4:2:0"])
def test_jpeg_with_a_background_picture_fills_the_blank_blocks(coders, subsampling):
    image, mask = render_frame((150, 97), seed=12)
    _, bundle, decoded, source = code(jpeg_of(image, subsampling), mask, coders)
    grey = decode_image_bytes(jpegwrite.jpeg_bytes(bundle))
    filled = decode_image_bytes(jpegwrite.jpeg_bytes(bundle, background=source))
    outside = ~decoded.mask
    np.testing.assert_array_equal(filled[decoded.mask], source[decoded.mask])
    # the source as background: blank blocks get (almost) the camera's blocks back
    assert psnr(filled[outside], source[outside]) > 45 > psnr(grey[outside], source[outside])


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0"])
def test_masks_touching_the_borders(coders, subsampling):
    image, _ = render_frame((141, 103), seed=2)
    mask = np.zeros(image.shape[:2], bool)
    mask[:, -3:] = True         # right edge, inside a partial MCU
    mask[-1, :40] = True        # bottom row
    mask[:5, :5] = True         # top-left corner
    data = jpeg_of(image, subsampling)
    _, _, decoded, source = code(data, mask, coders)
    assert decoded.mask[mask].all()
    np.testing.assert_array_equal(decoded.image[decoded.mask], source[decoded.mask])


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_masks(coders, fill):
    image, _ = render_frame((150, 110), seed=4)
    mask = np.full(image.shape[:2], fill)
    _, bundle, decoded, source = code(jpeg_of(image), mask, coders)
    assert decoded.mask.all() == fill and decoded.mask.any() == fill
    if fill:   # no background at all: the whole photo is the camera's
        assert bundle.region("background").coded.count == 0
        np.testing.assert_array_equal(decoded.image, source)
    else:
        assert bundle.region("blade").coded.count == 0 and not bundle.region("blade").coded.streams
        assert decoded.image.shape == source.shape
        with pytest.raises(BundleError, match="empty"):
            jpegwrite.jpeg_bytes(bundle)


def test_progressive_jpeg_is_kept_exactly(coders):
    image, mask = render_frame((170, 120), seed=6)
    data = jpeg_of(image, "4:2:0", progressive=True)
    _, bundle, decoded, source = code(data, mask, coders, blade="auto")
    params = bundle.region("blade").coded.params
    assert params["chosen_by"] == "auto" and params["reason"].startswith("progressive JPEG")
    np.testing.assert_array_equal(decoded.image[decoded.mask], source[decoded.mask])


def test_restart_markers_are_handled(coders):
    image, mask = render_frame((160, 96), seed=7)
    data = jpeg_of(image, "4:2:0", restart_marker_blocks=2)
    assert jpegheaders.inspect_jpeg(data).restart_interval == 2
    _, bundle, decoded, source = code(data, mask, coders, blade="auto")
    assert "restart markers dropped" in bundle.region("blade").coded.params["reason"]
    np.testing.assert_array_equal(decoded.image[decoded.mask], source[decoded.mask])


def test_grey_jpeg(coders):
    image, mask = render_frame((120, 90), seed=8)
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 1]).save(buffer, "JPEG", quality=90)
    _, _, decoded, source = code(buffer.getvalue(), mask, coders)
    np.testing.assert_array_equal(decoded.image[decoded.mask], source[decoded.mask])


def arithmetic_coded(data: bytes) -> bytes:
    """The same file with its frame marker claiming arithmetic coding (SOF0 -> SOF9)."""
    at = data.index(b"\xff\xc0")
    return data[:at] + b"\xff\xc9" + data[at + 2:]


@pytest.mark.slow
def test_auto_codes_png_and_refused_jpegs_losslessly(coders):
    image, mask = render_frame((128, 64), seed=1)
    png = io.BytesIO()
    Image.fromarray(image).save(png, "PNG")
    for data, reason in [(png.getvalue(), "lossless (non-JPEG) source"),
                         (arithmetic_coded(jpeg_of(image)), "arithmetic-coded")]:
        pixels = image if reason.startswith("lossless") else decode_image_bytes(jpeg_of(image))
        result, bundle, decoded, _ = code(data, mask, coders, blade="auto", pixels=pixels)
        blade = bundle.region("blade")
        assert blade.coded.coder in ("jxl-lossless", "bitswap") and blade.pixel_sha256 is not None
        assert reason in result.report["choices"]["blade"]["reason"]
        np.testing.assert_array_equal(decoded.image[decoded.mask], pixels[decoded.mask])


def test_jpeg_exact_refuses_what_it_cannot_keep(coders):
    image, mask = render_frame((128, 64), seed=1)
    png = io.BytesIO()
    Image.fromarray(image).save(png, "PNG")
    with pytest.raises(InputError, match="needs a JPEG source"):
        code(png.getvalue(), mask, coders, pixels=image)
    with pytest.raises(InputError, match="arithmetic-coded"):
        code(arithmetic_coded(jpeg_of(image)), mask, coders, pixels=decode_image_bytes(jpeg_of(image)))
    # pixels that are not the file's decode cannot be "the camera's own"
    with pytest.raises(InputError, match="do not decode to the source's blade pixels"):
        code(jpeg_of(image), mask, coders, pixels=image)


@pytest.mark.parametrize("change, message", [
    ({"precision": 12}, "12-bit"),
    ({"sampling": ((4, 1), (1, 1), (1, 1))}, "sampling factors 4x1"),
    ({"sampling": ((1, 1),) * 4}, "4 components"),
    ({"adobe_transform": 0}, "RGB-coded"),
    ({"kind": "lossless"}, "lossless JPEG"),
])
def test_refusals_name_the_feature(change, message):
    info = jpegheaders.JpegInfo("baseline", "huffman", 8, 64, 48, ((2, 2), (1, 1), (1, 1)), 0, None)
    assert jpegheaders.refusal(info) == ""
    assert message in jpegheaders.refusal(replace(info, **change))


def test_truncated_headers_are_refused():
    data = jpeg_of(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="before the image data|truncated"):
        jpegheaders.inspect_jpeg(data[:data.index(b"\xff\xda")])


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_blade_stream_fails_clearly(coders, damage):
    image, mask = render_frame((200, 140), seed=3)
    result, _, _, _ = code(jpeg_of(image), mask, coders)
    blade = result.bundle.region("blade")
    stream = bytearray(blade.coded.streams[0])
    if damage == "flip":
        stream[len(stream) // 2] ^= 0x10
    else:
        del stream[len(stream) // 2:]
    coded = replace(blade.coded, streams=(bytes(stream),))
    damaged = replace(result.bundle, regions=(result.bundle.region("background"),
                                              BundleRegion("blade", coded, blade.pixel_sha256)))
    with pytest.raises(CodingError):
        decompress_bundle(damaged, coders)


def test_damaged_bundle_bytes_name_the_section(coders):
    image, mask = render_frame((150, 100), seed=3)
    result, _, _, _ = code(jpeg_of(image), mask, coders)
    data = bytearray(encode_bundle(result.bundle))
    data[-40] ^= 0x01       # inside the last stream section (the blade)
    with pytest.raises(BundleError, match="stream:blade"):
        decode_bundle(bytes(data))


def test_compress_command_and_daemon_offer_the_new_coders():
    import argparse

    from edge.commands import compress
    from edge.config import CodingConfig

    parser = argparse.ArgumentParser()
    compress.add_arguments(parser)
    for choice in ("jpeg-exact", "auto"):
        assert parser.parse_args(["p.jpg", "-o", "b", "--blade", choice]).blade == choice
    assert CodingConfig().codec_options()["blade"] == "auto"


def test_offshore_output_and_decompress_write_a_jpeg_with_the_cameras_blade(coders, tmp_path):
    from edge.cli import main
    from edge.config import OutputConfig
    from edge.offshore.decode import DecodedImage
    from edge.offshore.output import OutputFolder

    image, mask = render_frame((180, 120), seed=4)
    data = jpeg_of(image)
    _, bundle, decoded, pixels = code(data, mask, coders)
    where = blade_cell_mask(mask)

    def blade_of(jpeg: bytes) -> np.ndarray:
        return decode_image_bytes(jpeg)[where]

    folder = OutputFolder(OutputConfig(folder=str(tmp_path / "out")))
    sidecar = folder.write("drone1", bundle, encode_bundle(bundle),
                           DecodedImage(decoded.image, decoded.mask, {}, None), {})
    written = (tmp_path / "out" / "drone1" / sidecar["jpeg"]).read_bytes()
    np.testing.assert_array_equal(blade_of(written), pixels[where])

    assert written == jpegwrite.jpeg_bytes(bundle, background=decoded.image)

    # The same through the command line, with the shipped models.
    (tmp_path / "photo.jpg").write_bytes(data)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    assert main(["compress", str(tmp_path / "photo.jpg"), "--mask", str(tmp_path / "mask.png"),
                 "-o", str(tmp_path / "b.edgb")]) == 0          # --blade auto: jpeg-exact for a JPEG
    assert main(["decompress", str(tmp_path / "b.edgb"), "-o", str(tmp_path / "x.png"),
                 "--jpeg-out", str(tmp_path / "x.jpg")]) == 0
    np.testing.assert_array_equal(blade_of((tmp_path / "x.jpg").read_bytes()), pixels[where])
