"""The ``jpeg-exact`` blade coder: a JPEG photo's blade kept as the camera's own DCT blocks.

Drone cameras write JPEG. Coding the decoded blade pixels losslessly costs several times the
JPEG itself; keeping the blade *in the DCT domain* costs a fraction of it and gives back the
blade exactly as the camera recorded it.

How a blade region is coded (the ROI assembly is :mod:`edge.codec.regions`)::

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

import math
import struct
from dataclasses import dataclass

import numpy as np

from edge.codec import turbojpeg
from edge.codec.container import Bundle
from edge.codec.contract import CodedRegion
from edge.codec.imageio import decode_image_bytes
from edge.codec.patches import PatchGrid, blade_cells
from edge.errors import BundleError, CodingError, InputError

CODER = "jpeg-exact"
CELL = 16                       # pixels per side of a blade cell (the bundle's mask grid)
CONTAINERS = ("jxl", "jpeg")    # how the kept-block JPEG is stored

# Start-of-frame markers: (kind, entropy coding).
_SOF = {0xC0: ("baseline", "huffman"), 0xC1: ("extended sequential", "huffman"),
        0xC2: ("progressive", "huffman"), 0xC3: ("lossless", "huffman"),
        0xC5: ("hierarchical", "huffman"), 0xC6: ("hierarchical", "huffman"), 0xC7: ("hierarchical", "huffman"),
        0xC9: ("extended sequential", "arithmetic"), 0xCA: ("progressive", "arithmetic"),
        0xCB: ("lossless", "arithmetic"), 0xCD: ("hierarchical", "arithmetic"),
        0xCE: ("hierarchical", "arithmetic"), 0xCF: ("hierarchical", "arithmetic")}


class NotKeptExactly(InputError):
    """This source cannot be coded by jpeg-exact (not a JPEG, or a kind of JPEG it refuses)."""


# ---------------------------------------------------------------------------- the source

@dataclass(frozen=True)
class JpegInfo:
    """What the JPEG's headers say, read without decoding it."""

    kind: str                   # "baseline", "extended sequential", "progressive", ...
    coding: str                 # "huffman" or "arithmetic"
    precision: int              # bits per sample
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]   # (h, v) per component
    restart_interval: int       # 0: no restart markers
    adobe_transform: int | None  # APP14 Adobe colour transform, None if absent
    # Per component, its quantization table (64 steps in natural order); () if a table is missing.
    quant_tables: tuple[tuple[int, ...], ...] = ()

    @property
    def sampling_text(self) -> str:
        return ",".join(f"{h}x{v}" for h, v in self.sampling)


def is_jpeg(data: bytes | None) -> bool:
    return bool(data) and data[:3] == b"\xff\xd8\xff"


def inspect_jpeg(data: bytes, where: str = "") -> JpegInfo:
    """Read the frame header, restart interval and Adobe marker; raise NotKeptExactly if absent."""
    if not is_jpeg(data):
        raise NotKeptExactly("not a JPEG file", where)
    pos, frame, restart, adobe = 2, None, 0, None
    tables: dict[int, tuple[int, ...]] = {}
    table_ids: tuple[int, ...] = ()
    while True:
        while pos < len(data) and data[pos] != 0xFF:   # tolerate stray bytes as libjpeg does
            pos += 1
        while pos < len(data) and data[pos] == 0xFF:   # fill bytes
            pos += 1
        if pos + 3 > len(data):
            raise NotKeptExactly("JPEG headers end before the image data", where)
        marker = data[pos]
        pos += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0xD9:
            raise NotKeptExactly("JPEG ends before the image data", where)
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        body = data[pos + 2:pos + length]
        if length < 2 or len(body) != length - 2:
            raise NotKeptExactly(f"JPEG marker 0x{marker:02X} is truncated", where)
        if marker in _SOF:
            if len(body) < 6 or len(body) < 6 + 3 * body[5]:
                raise NotKeptExactly("JPEG frame header is truncated", where)
            precision, height, width, count = struct.unpack(">BHHB", body[:6])
            sampling = tuple((body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count))
            frame = (*_SOF[marker], precision, width, height, sampling)
            table_ids = tuple(body[8 + 3 * i] for i in range(count))
        elif marker == 0xDB:
            tables.update(_quant_tables(body))
        elif marker == 0xDD and len(body) >= 2:
            (restart,) = struct.unpack(">H", body[:2])
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            adobe = body[11]
        elif marker == 0xDA:
            break
        pos += length
    if frame is None:
        raise NotKeptExactly("JPEG has image data but no frame header", where)
    kind, coding, precision, width, height, sampling = frame
    quant = tuple(tables[i] for i in table_ids) if all(i in tables for i in table_ids) else ()
    return JpegInfo(kind, coding, precision, width, height, sampling, restart, adobe, quant)


# Position in natural (row-major) order of each zigzag index.
_ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, (i % 8) if (i // 8 + i % 8) % 2 == 0 else (i // 8)))


def _quant_tables(body: bytes) -> dict[int, tuple[int, ...]]:
    """The tables of one DQT segment, id -> 64 steps in natural order."""
    tables, pos = {}, 0
    while pos < len(body):
        wide, table_id = body[pos] >> 4, body[pos] & 15
        size = 128 if wide else 64
        raw = body[pos + 1:pos + 1 + size]
        if len(raw) != size:
            break
        zigzag = struct.unpack(">64H", raw) if wide else tuple(raw)
        natural = [0] * 64
        for index, value in enumerate(zigzag):
            natural[_ZIGZAG[index]] = value
        tables[table_id] = tuple(natural)
        pos += 1 + size
    return tables


def component_block_shapes(info: JpegInfo) -> list[tuple[int, int]]:
    """(block rows, block cols) of each component, as the decoder sees them (no MCU padding)."""
    h_max = max(h for h, _ in info.sampling)
    v_max = max(v for _, v in info.sampling)
    shapes = []
    for h, v in info.sampling:
        height, width = math.ceil(info.height * v / v_max), math.ceil(info.width * h / h_max)
        shapes.append((math.ceil(height / 8), math.ceil(width / 8)))
    return shapes


def refusal(info: JpegInfo) -> str:
    """Why jpeg-exact cannot keep this JPEG exactly, or "" when it can."""
    if info.coding != "huffman":
        return f"arithmetic-coded {info.kind} JPEG"
    if info.kind in ("lossless", "hierarchical"):
        return f"{info.kind} JPEG"
    if info.precision != 8:
        return f"{info.precision}-bit JPEG"
    if len(info.sampling) not in (1, 3):
        return f"JPEG with {len(info.sampling)} components (CMYK or other): only grey or YCbCr"
    if len(info.sampling) == 3 and info.adobe_transform == 0:
        return "RGB-coded JPEG (Adobe transform 0): only YCbCr"
    if any(h not in (1, 2) or v not in (1, 2) for h, v in info.sampling):
        return f"JPEG with sampling factors {info.sampling_text}: only factors 1 and 2"
    return ""


def describe(info: JpegInfo) -> str:
    """One phrase for the bundle: which source this was."""
    text = f"{info.kind} JPEG source ({info.sampling_text})"
    if info.restart_interval:
        text += ", restart markers dropped"
    return text


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


def holds_jpeg_exact(bundle: Bundle) -> bool:
    return any(r.name == "blade" and r.coded.coder == CODER for r in bundle.regions)


# ---------------------------------------------------------------------------- a JPEG for JPEG tools

def jpeg_bytes(bundle: Bundle, background: np.ndarray | None = None) -> bytes:
    """A standard JPEG whose blade blocks are the camera's own, with the source's EXIF, XMP and
    ICC profile; any JPEG decoder shows the blade cells exactly as the source.

    The other blocks are mid-grey, or with ``background`` (the decoded photo, uint8 H x W x 3)
    that picture's DCT quantized with the source's tables. Raises BundleError if the bundle has
    no jpeg-exact blade.
    """
    if not holds_jpeg_exact(bundle):
        raise BundleError("no jpeg-exact blade region: only JPEG sources coded with --blade "
                          "jpeg-exact or auto can give back a JPEG", section="header")
    coded = bundle.region("blade").coded
    if coded.count == 0:
        raise BundleError("the blade region is empty: there are no camera blocks to write", section="stream:blade")
    data = JpegExactCoder().decompress_jpeg(coded)
    if background is not None:
        if background.shape != (bundle.height, bundle.width, 3) or background.dtype != np.uint8:
            raise InputError(f"background must be uint8 {bundle.height}x{bundle.width}x3, got "
                             f"{background.dtype} {background.shape}")
        data = _fill_blank_blocks(data, bundle.blade_cells(), background)
    return insert_metadata(data, bundle.source.exif, bundle.source.xmp, bundle.source.icc)


# JFIF RGB -> YCbCr, and the 8-point DCT-II matrix that makes JPEG's 2-D DCT ``D @ block @ D.T``.
_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_DCT = np.array([[np.sqrt((1 if u == 0 else 2) / 8) * np.cos((2 * x + 1) * u * np.pi / 16) for x in range(8)]
                 for u in range(8)])


def _fill_blank_blocks(kept: bytes, cells: np.ndarray, picture: np.ndarray) -> bytes:
    """Put ``picture``'s quantized DCT into the blocks the kept-block JPEG left blank."""
    info = inspect_jpeg(kept)
    h_max = max(h for h, _ in info.sampling)
    v_max = max(v for _, v in info.sampling)
    ycc = picture.astype(np.float64) @ _YCBCR.T + np.array([0.0, 128.0, 128.0])
    planes = [ycc[..., 0]] if len(info.sampling) == 1 else [ycc[..., c] for c in range(3)]
    shapes = component_block_shapes(info)
    maps = kept_block_maps(info, cells, shapes)
    filled = []
    for plane, (h, v), shape, table in zip(planes, info.sampling, shapes, info.quant_tables):
        blocks = _blocks(plane, v_max // v, h_max // h, shape)
        coefficients = np.einsum("ux,rcxy,vy->rcuv", _DCT, blocks - 128.0, _DCT)
        step = np.asarray(table, dtype=np.float64).reshape(8, 8)
        filled.append(np.clip(np.round(coefficients / step), -1023, 1023).astype(np.int16))

    def fill(component: int, row: int, blocks: np.ndarray) -> None:
        blank = ~maps[component][row]
        blocks[blank] = filled[component][row][blank]

    return turbojpeg.edit_blocks(kept, fill)


def _blocks(plane: np.ndarray, step_y: int, step_x: int, shape: tuple[int, int]) -> np.ndarray:
    """(rows, cols, 8, 8) blocks of ``plane`` box-downsampled by the steps, edge-padded to ``shape``."""
    rows, cols = shape
    height, width = rows * 8 * step_y, cols * 8 * step_x
    padded = np.pad(plane[:height, :width], ((0, max(height - plane.shape[0], 0)), (0, max(width - plane.shape[1], 0))),
                    mode="edge")
    small = padded.reshape(rows * 8, step_y, cols * 8, step_x).mean(axis=(1, 3))
    return small.reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3)


_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_ICC_HEADER = b"ICC_PROFILE\x00"
_SEGMENT_MAX = 65533


def insert_metadata(jpeg: bytes, exif: bytes = b"", xmp: bytes = b"", icc: bytes = b"") -> bytes:
    """Put APP1 EXIF, APP1 XMP and APP2 ICC segments after the SOI (and JFIF APP0) of ``jpeg``."""
    segments = []
    if exif and len(exif) + 6 <= _SEGMENT_MAX:
        segments.append(_segment(0xE1, b"Exif\x00\x00" + exif))
    if xmp and len(xmp) + len(_XMP_HEADER) <= _SEGMENT_MAX:
        segments.append(_segment(0xE1, _XMP_HEADER + xmp))
    if icc:
        step = _SEGMENT_MAX - len(_ICC_HEADER) - 2
        chunks = [icc[i:i + step] for i in range(0, len(icc), step)]
        if len(chunks) <= 255:
            segments += [_segment(0xE2, _ICC_HEADER + bytes([n + 1, len(chunks)]) + chunk)
                         for n, chunk in enumerate(chunks)]
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":            # keep JFIF APP0 first, as JFIF asks
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + b"".join(segments) + jpeg[pos:]


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
