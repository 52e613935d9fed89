"""The source photo's metadata: read it from the camera file, put it back on the decoded image.

A bundle keeps the original file's EXIF (capture time, GPS, camera), XMP (drone gimbal and
flight data) and ICC profile as bytes, with the file's name, size and SHA-256
(:class:`edge.codec.container.SourceMetadata`). Pixels are never rotated, so the EXIF
orientation tag stays true for the decoded image.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from edge.codec.container import SourceMetadata, write_file_atomically
from edge.errors import InputError

EXIF_PREFIX = b"Exif\x00\x00"               # JPEG APP1 marker text; not part of the EXIF block
_XMP_PNG_KEY = "XML:com.adobe.xmp"          # the iTXt keyword XMP uses in PNG
_TIFF_XMP_TAG = 700
_EXIF_SUB_IFDS = (0x8769, 0x8825, 0xA005)   # Exif, GPS and interoperability IFDs


def read_source_metadata(path: str | os.PathLike) -> SourceMetadata:
    """Hash a source photo and pull its EXIF, XMP and ICC bytes (JPEG, PNG, WebP; ICC/XMP of TIFF)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", path=str(path)) from None
    return source_metadata_from_bytes(data, path.name, str(path))


def source_metadata_from_bytes(data: bytes, filename: str, where: str = "") -> SourceMetadata:
    """Same as :func:`read_source_metadata` for a file already in memory."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            info = dict(image.info)
            image_format = image.format or ""
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"not an image Pillow can read ({error})", path=where or filename) from None
    exif = info.get("exif") or b""
    if exif.startswith(EXIF_PREFIX):
        exif = exif[len(EXIF_PREFIX):]
    xmp = info.get("xmp") or info.get(_XMP_PNG_KEY) or b""
    if isinstance(xmp, str):                 # older Pillow gives PNG's iTXt as text
        xmp = xmp.encode("utf-8")
    icc = info.get("icc_profile") or b""
    return SourceMetadata(filename=filename, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                          format=image_format, exif=bytes(exif), xmp=bytes(xmp), icc=bytes(icc))


def save_image(path: str | os.PathLike, pixels: np.ndarray, metadata: SourceMetadata | None = None) -> None:
    """Write a decoded uint8 (H, W, 3) or (H, W) image as PNG or TIFF (by suffix), durably.

    PNG keeps the EXIF, XMP (UTF-8, as XMP must be) and ICC bytes exactly (eXIf, iTXt and
    iCCP chunks). TIFF (uncompressed) keeps ICC and XMP exactly and re-writes the EXIF tags
    of IFD0 and its Exif, GPS and interoperability IFDs (values kept, byte layout not).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise InputError("decoded images are written as .png, .tif or .tiff", path=str(path))
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"pixels must be uint8 (H, W, 3) or (H, W), got {pixels.dtype} {pixels.shape}")
    image = Image.fromarray(pixels)
    options: dict = {}
    if metadata is not None and metadata.icc:
        options["icc_profile"] = metadata.icc
    buffer = io.BytesIO()
    if suffix == ".png":
        if metadata is not None and metadata.exif:
            options["exif"] = metadata.exif
        if metadata is not None and metadata.xmp:
            text = PngImagePlugin.PngInfo()
            text.add_itxt(_XMP_PNG_KEY, metadata.xmp.decode("utf-8", errors="replace"))
            options["pnginfo"] = text
        image.save(buffer, "PNG", **options)
    else:
        # EXIF and XMP both go in as one tag set: Pillow writes the EXIF sub-IFDs (GPS ...)
        # only this way, and only uncompressed (its libtiff path refuses sub-IFD offsets).
        tags = Image.Exif()
        if metadata is not None and metadata.exif:
            tags.load(metadata.exif)
            for ifd in _EXIF_SUB_IFDS:       # loaded sub-IFDs are written; unloaded ones dropped
                tags.get_ifd(ifd)
        if metadata is not None and metadata.xmp:
            tags[_TIFF_XMP_TAG] = metadata.xmp
        image.save(buffer, "TIFF", exif=tags, **options)
    write_file_atomically(path, buffer.getvalue())
