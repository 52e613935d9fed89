"""The ``jpeg-exact`` blade coder: a JPEG photo's blade kept as the camera's own DCT blocks.

Drone cameras write JPEG. Coding the decoded blade pixels losslessly costs several times the
JPEG itself; keeping the blade *in the DCT domain* costs a fraction of it and gives back the
blade exactly as the camera recorded it.

How a blade region is coded (the ROI assembly is :mod:`edge.codec.regions`, the header
parsing :mod:`edge.codec.jpegheaders`, the JPEG for JPEG tools :mod:`edge.codec.jpegwrite`)::

    source JPEG --libjpeg-turbo (edge.codec.turbojpeg)--> quantized DCT blocks per component
      cells      = 16x16-pixel cells holding any blade pixel (the bundle's mask grid)
      keep luma  = blocks inside a blade cell
      keep chroma= blocks inside a blade cell or one cell around it (subsampled chroma only:
                   fancy upsampling reads one chroma sample across the block edge)
      every other block's coefficients are set to 0
    --libjpeg-turbo--> a sequential JPEG with the source's quantization tables, no metadata
    --JPEG XL lossless JPEG transcoding--> the blade region's one stream (or the JPEG itself,
      whichever is smaller)
    background = every pixel outside the blade cells, coded by another coder (edge.codec.regions)

The cell size is 16 pixels for every supported sampling (factors 1 or 2): a block covers 8 or 16
pixels, so it lies inside one cell. The bundle's mask grid is this 16-pixel cell grid, so the
decoded blade region (the union of blade cells) is exactly the region decoded from the JPEG.
Why not the lossy coder's 256-pixel patches: measured on the 12 dtu-dev photos (drawn masks,
blade 4-24 %), keeping every block of the blade patches took 0.07-0.34 bpp, keeping the blocks of
16-pixel blade cells 0.019-0.13 bpp; the partly-blade 256 patches then also go through the
lossy coder at the background quality, which costs much less than the camera's blocks of grass.

Decoding turns the stream back into that JPEG (bit for bit), decodes it with Pillow (the
decoder every photo of this project goes through, see :mod:`edge.codec.imageio`), and pastes its
blade cells over the lossy background. Inside blade cells those pixels equal Pillow's decode of
the source file: same coefficients, same quantization, same IDCT, same upsampling input. The
encoder checks this before it writes the bundle, and the region carries the SHA-256 of the
blade-cell pixels (row-major ``image[cell_mask]``, shape (K, 3)) which the decoder checks.

Sources: sequential (baseline or extended) and progressive Huffman JPEGs with 1 or 3
components, 8-bit samples and sampling factors 1 or 2; restart intervals are fine (the
re-written JPEG has none). Arithmetic-coded, lossless, hierarchical, 12-bit, CMYK and
RGB-coded (Adobe transform 0) JPEGs are refused with :class:`NotKeptExactly` (an InputError);
``--blade auto`` then codes the blade losslessly instead and says why.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.codec import turbojpeg
from edge.codec.contract import CodedRegion
from edge.codec.imageio import decode_image_bytes
from edge.codec.jpegheaders import (JpegInfo, NotKeptExactly, component_block_shapes, describe, inspect_jpeg,
                                    is_jpeg, refusal)
from edge.codec.patches import PatchGrid, blade_cells
from edge.errors import CodingError, InputError

CODER = "jpeg-exact"
CELL = 16                       # pixels per side of a blade cell (the bundle's mask grid)
CONTAINERS = ("jxl", "jpeg")    # how the kept-block JPEG is stored


@dataclass(frozen=True)
class BladeChoice:
    coder: str                  # "jpeg-exact" or "lossless"
    chosen_by: str              # "auto" or "request"
    reason: str

    @property
    def params(self) -> dict:
        return {"chosen_by": self.chosen_by, "reason": self.reason}


def choose_blade_coder(requested: str, source_bytes: bytes | None, where: str = "") -> BladeChoice:
    """``auto``: jpeg-exact for JPEG sources it can keep, Bit-swap ("lossless") otherwise.
    ``jpeg-exact``: refuses (NotKeptExactly) a source it cannot keep."""
    if requested not in ("auto", CODER):
        return BladeChoice(requested, "request", f"--blade {requested}")
    if source_bytes is None:
        if requested == CODER:
            raise NotKeptExactly("jpeg-exact needs the source file's bytes (compress_pixels(source_bytes=...))", where)
        return BladeChoice("lossless", "auto", "source file bytes not given")
    if not is_jpeg(source_bytes):
        if requested == CODER:
            raise NotKeptExactly("jpeg-exact needs a JPEG source; this file is not a JPEG "
                                 "(use --blade lossless or auto)", where)
        return BladeChoice("lossless", "auto", "lossless (non-JPEG) source")
    info = inspect_jpeg(source_bytes, where)
    why = refusal(info)
    if not why and requested == "auto" and not turbojpeg.available():
        why = "JPEG source, but libjpeg-turbo's TurboJPEG library is not installed"
    if why:
        if requested == CODER:
            raise NotKeptExactly(f"jpeg-exact cannot keep a {why} (use --blade lossless or auto)", where)
        return BladeChoice("lossless", "auto", f"{why}: jpeg-exact cannot keep it, blade coded losslessly")
    return BladeChoice(CODER, "auto" if requested == "auto" else "request", describe(info))


# ---------------------------------------------------------------------------- the coder

def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs if getattr(imagecodecs, "JPEGXL", None) and imagecodecs.JPEGXL.available else None


def cell_grid(height: int, width: int) -> PatchGrid:
    return PatchGrid(height, width, CELL)


def kept_block_maps(info: JpegInfo, cells: np.ndarray, shapes) -> list[np.ndarray]:
    """Per component, a bool (block rows, block cols) map of the blocks to keep.

    ``shapes`` are the components' (block rows, block cols). Full-resolution components keep
    the blocks inside blade cells; subsampled ones also the blocks one cell around them.
    """
    h_max = max(h for h, _ in info.sampling)
    v_max = max(v for _, v in info.sampling)
    grown = _dilate(cells)
    maps = []
    for (h, v), (rows, cols) in zip(info.sampling, shapes):
        source = grown if (h < h_max or v < v_max) else cells
        row_cells = np.minimum(np.arange(rows) * 8 * (v_max // v) // CELL, cells.shape[0] - 1)
        col_cells = np.minimum(np.arange(cols) * 8 * (h_max // h) // CELL, cells.shape[1] - 1)
        maps.append(source[np.ix_(row_cells, col_cells)])
    return maps


def _dilate(cells: np.ndarray) -> np.ndarray:
    padded = np.pad(cells, 1)
    out = np.zeros_like(cells)
    rows, cols = cells.shape
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy:dy + rows, dx:dx + cols]
    return out


class JpegExactCoder:
    """Keeps a JPEG's blocks of the blade cells (and chroma margin); no model, no weights."""

    name = CODER
    model_name = ""
    weights_sha256 = ""
    patch_size = CELL

    def kept_jpeg(self, source: bytes, cells: np.ndarray, where: str = "") -> bytes:
        """A sequential JPEG (no metadata) holding only the blocks the cells need, others zero."""
        info = inspect_jpeg(source, where)
        why = refusal(info)
        if why:
            raise NotKeptExactly(f"jpeg-exact cannot keep a {why}", where)
        if cells.shape != (cell_grid(info.height, info.width).rows, cell_grid(info.height, info.width).cols):
            raise NotKeptExactly(f"cell map {cells.shape} does not fit the {info.width}x{info.height} JPEG", where)
        maps = kept_block_maps(info, cells, component_block_shapes(info))

        def blank(component: int, row: int, blocks: np.ndarray) -> None:
            blocks[~maps[component][row]] = 0

        try:
            return turbojpeg.edit_blocks(source, blank)
        except CodingError as error:
            raise NotKeptExactly(f"cannot keep the JPEG's DCT blocks: {error}", where) from None

    def compress(self, source: bytes, cells: np.ndarray, where: str = "") -> tuple[CodedRegion, bytes]:
        """The blade region (one stream) and the kept-block JPEG it decodes to."""
        count = int(cells.sum())
        if count == 0:
            return CodedRegion(CODER, "", "", CELL, 0, (), {"container": "none"}), b""
        kept = self.kept_jpeg(source, cells, where)
        container, stream = "jpeg", kept
        codecs = _imagecodecs()
        if codecs is not None:
            try:
                jxl = codecs.jpegxl_encode_jpeg(kept)
            except Exception:   # imagecodecs raises its own error types; the plain JPEG still works
                jxl = None
            if jxl is not None and len(jxl) < len(kept) and codecs.jpegxl_decode_jpeg(jxl) == kept:
                container, stream = "jxl", bytes(jxl)
        return CodedRegion(CODER, "", "", CELL, count, (stream,), {"container": container}), kept

    def decompress_jpeg(self, coded: CodedRegion) -> bytes:
        """The kept-block JPEG, bit for bit; CodingError if the stream does not decode."""
        container = coded.params.get("container")
        if container not in CONTAINERS or len(coded.streams) != 1:
            raise CodingError(f"jpeg-exact region: unknown container {container!r} or "
                              f"{len(coded.streams)} streams (expected one)")
        stream = coded.streams[0]
        if container == "jpeg":
            data = stream
        else:
            codecs = _imagecodecs()
            if codecs is None:
                raise CodingError("jpeg-exact region is JPEG XL: decoding needs imagecodecs with JPEG XL "
                                  "(pip install 'imagecodecs>=2024.1')")
            try:
                data = bytes(codecs.jpegxl_decode_jpeg(stream))
            except Exception as error:   # any libjxl failure means a damaged stream
                raise CodingError(f"jpeg-exact region does not decode as JPEG XL: {error}") from None
        if not is_jpeg(data):
            raise CodingError("jpeg-exact region does not decode to a JPEG")
        return data

    def decompress_image(self, coded: CodedRegion) -> np.ndarray:
        """Pillow's decode of the kept-block JPEG (valid inside the blade cells only)."""
        try:
            return decode_image_bytes(self.decompress_jpeg(coded), "jpeg-exact region")
        except InputError as error:
            raise CodingError(f"jpeg-exact region does not decode: {error}") from None


# ---------------------------------------------------------------------------- ROI coding

def lossy_patch_flags(cell_mask: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Bool (rows, cols) of the lossy grid: patches holding any pixel outside blade cells."""
    return blade_cells(~cell_mask, grid)
