"""Reading source photos strictly: a truncated or damaged file is an error, never a partial image.

OpenCV decodes a truncated JPEG into a grey-bottomed picture with only a warning; Pillow
raises. So pixels come from Pillow, with truncated-image loading left off.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from edge.errors import InputError

ImageFile.LOAD_TRUNCATED_IMAGES = False
SUPPORTED_MODES = {"RGB", "L", "P", "CMYK", "YCbCr"}
MAX_PIXELS = 120_000_000   # far above any drone camera; refuses decompression bombs


def decode_image_bytes(data: bytes, where: str = "") -> np.ndarray:
    """Pixels of an encoded image as uint8 (H, W, 3) RGB. ``where`` names the file in errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise InputError(f"{image.width}x{image.height} is larger than {MAX_PIXELS} pixels", where)
                if image.mode not in SUPPORTED_MODES:
                    raise InputError(f"pixel format {image.mode} is not supported "
                                     f"(8-bit RGB or grey only)", where)
                image.load()
                rgb = image.convert("RGB")
                return np.asarray(rgb, dtype=np.uint8).copy()
    except InputError:
        raise
    except UnidentifiedImageError:     # its own message names a BytesIO object, not the file
        raise InputError(f"cannot identify image file: its content is not an image format this reads "
                         f"(it starts with {bytes(data[:16])!r})", where) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(f"not a readable image: {error}", where) from None


def read_image(path: Path) -> tuple[np.ndarray, bytes]:
    """(pixels, file bytes) of a photo on disk."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", str(path)) from None
    if not data:
        raise InputError("file is empty", str(path))
    return decode_image_bytes(data, str(path)), data


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A blade mask file (non-zero = blade) as bool (H, W); must match the image size."""
    pixels, _ = read_image(path)
    mask = pixels.max(axis=2) > 127
    if mask.shape != tuple(shape):
        raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {shape[1]}x{shape[0]}", str(path))
    return mask
