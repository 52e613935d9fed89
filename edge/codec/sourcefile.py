"""The ``source-file`` region coder: the original camera file, byte for byte, as one stream.

It is the fallback that makes sure a photo always arrives: when the offshore side cannot
decode a bundle (a checksum or lossless-hash failure) it answers with a negative ack and the
edge sends the photo again in this form; the daemon also uses it when a coded bundle would be
larger than the photo itself (``coding.if_larger_than_source: send-source``).

A source-file bundle has one region, ``whole``, holding the file as its single stream; the
blade cell map is still coded (when a mask is known), so the offshore side gets the mask too.
Decoding checks the stream's size and SHA-256 against the bundle's source metadata before
decoding the file (with Pillow), so a damaged file is refused, never shown.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.codec.container import Bundle, BundleRegion
from edge.codec.contract import CodedRegion
from edge.codec.imageio import decode_image_bytes
from edge.codec.maskcode import encode_mask
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask
from edge.errors import BundleError, InputError

CODER = "source-file"
REGION = "whole"
PATCH_SIZE = 64                 # grid of the blade cell map carried alongside


@dataclass(frozen=True)
class SourceFileResult:
    """What :func:`compress_source_file` returns (same shape as the codec's CompressResult)."""

    bundle: Bundle
    report: dict


@dataclass(frozen=True)
class DecodedSource:
    """A decoded source-file bundle: pixels, the cell-level blade mask and the exact file."""

    image: np.ndarray               # uint8 (H, W, 3)
    mask: np.ndarray                # bool (H, W), blade cells expanded to pixels
    report: dict
    file_bytes: bytes               # the camera's original file


def compress_source_file(path: str | os.PathLike, settings=None, mask: np.ndarray | None = None,
                         fallback_for: str = "") -> SourceFileResult:
    """Bundle the photo file as it is. ``settings`` is ignored (same call shape as the codec);
    ``fallback_for`` names the bundle this one replaces (it changes the bundle id)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", path=str(path)) from None
    return compress_source_bytes(data, path.name, mask, fallback_for, where=str(path))


def compress_source_bytes(data: bytes, filename: str, mask: np.ndarray | None = None,
                          fallback_for: str = "", where: str = "") -> SourceFileResult:
    where = where or filename
    source = source_metadata_from_bytes(data, filename, where)
    pixels = decode_image_bytes(data, where)
    height, width = pixels.shape[:2]
    grid = PatchGrid(height, width, PATCH_SIZE)
    if mask is None:
        cells = np.zeros((grid.rows, grid.cols), dtype=bool)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise InputError(f"mask of {mask.shape[1]}x{mask.shape[0]} does not fit the {width}x{height} photo",
                             path=where)
        cells = blade_cells(mask, grid)
    params = {"format": source.format}
    if fallback_for:
        params["fallback_for"] = fallback_for
    region = CodedRegion(coder=CODER, model="", weights_sha256="", patch_size=PATCH_SIZE, count=grid.count,
                         streams=(data,), params=params)
    bundle = Bundle(width=width, height=height, channels=3, patch_size=PATCH_SIZE, mask_code=encode_mask(cells),
                    regions=(BundleRegion(REGION, region),), source=source)
    report = {"coder": CODER, "bytes": len(data), "bpp": 8 * len(data) / (width * height),
              "blade_fraction": float(cells.mean()), "fallback_for": fallback_for}
    return SourceFileResult(bundle, report)


def is_source_file_bundle(bundle: Bundle) -> bool:
    return len(bundle.regions) == 1 and bundle.regions[0].coded.coder == CODER


def decompress_source_file(bundle: Bundle, name: str = "") -> DecodedSource:
    """Check the embedded file against the source's size and SHA-256, then decode it."""
    if not is_source_file_bundle(bundle):
        raise BundleError(f"not a {CODER} bundle (regions: {[r.coded.coder for r in bundle.regions]})",
                          section="header", bundle=name)
    region = bundle.regions[0]
    section = f"stream:{region.name}"
    if len(region.coded.streams) != 1:
        raise BundleError(f"a {CODER} region holds one stream, not {len(region.coded.streams)}",
                          section=section, bundle=name)
    data = region.coded.streams[0]
    if len(data) != bundle.source.size or hashlib.sha256(data).hexdigest() != bundle.source.sha256:
        raise BundleError("the embedded file differs from the source file (size or SHA-256 mismatch)",
                          section=section, bundle=name)
    try:
        pixels = decode_image_bytes(data, name or bundle.source.filename)
    except InputError as error:
        raise BundleError(f"the embedded file does not decode: {error}", section=section, bundle=name) from None
    if pixels.shape[:2] != (bundle.height, bundle.width):
        raise BundleError(f"the embedded file is {pixels.shape[1]}x{pixels.shape[0]}, the header says "
                          f"{bundle.width}x{bundle.height}", section=section, bundle=name)
    mask = cells_to_mask(bundle.blade_cells(), bundle.grid)
    report = {"coder": CODER, "exact": True, "bytes": len(data),
              "bpp": 8 * len(data) / (bundle.width * bundle.height),
              "fallback_for": region.coded.params.get("fallback_for", "")}
    return DecodedSource(pixels, mask, report, data)
