"""A standard JPEG from a jpeg-exact bundle, for JPEG tools: the camera's own blade blocks, the
other blocks filled from the decoded background, and the source's EXIF, XMP and ICC profile
(``edge decompress --jpeg-out`` and the subscriber's ``STEM.jpg``).
"""
from __future__ import annotations

import struct

import numpy as np

from edge.codec import turbojpeg
from edge.codec.container import Bundle
from edge.codec.jpegexact import CODER, JpegExactCoder, kept_block_maps
from edge.codec.jpegheaders import component_block_shapes, inspect_jpeg
from edge.errors import BundleError, InputError


def holds_jpeg_exact(bundle: Bundle) -> bool:
    return any(r.name == "blade" and r.coded.coder == CODER for r in bundle.regions)


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
