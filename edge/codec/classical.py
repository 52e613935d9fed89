"""Classical region coders: AVIF (lossy), JPEG XL (lossy and lossless), through imagecodecs.

A region is coded as one picture: the bounding box of the region's pixels, with every pixel
outside the region replaced by a fill, so the codec spends next to no bits on pixels nobody
will look at (for the background, the blade cells; for the blade, the grass around it). The
stream is the codec's file; ``params["box"]`` says where the picture lies in the photo.

The fill: lossy coders get a smooth continuation of the region (:func:`smooth_fill`), lossless
ones black. Measured on DJI_0057 (15.7 MP, drawn mask): AVIF of the background costs the same
flattened or smoothly filled (0.201 bpp at 27.0 dB either way), but a flat patch leaves a hard
edge where a blade is thin and the smooth fill does not; it is computed at 1/16 of the
resolution (about 0.1 s). For JPEG XL lossless the blade's bounding box is nearly the whole
photo, and a smooth fill is a gradient it must code exactly: 1.59 MB against 0.54 MB with
black (effort 3).

The decoders are libavif/dav1d and libjxl: integer pipelines whose output does not depend on
the thread count (tests/test_classical.py checks 1 and 2 threads).
"""
from __future__ import annotations

import cv2
import imagecodecs
import numpy as np

from edge.codec.contract import CodedRegion, Region
from edge.errors import CodingError, InputError

FILL_SCALE = 16          # the fill is computed at 1/FILL_SCALE of the resolution
_FORMATS = {"avif": "AVIF", "jxl": "JPEG XL"}


def smooth_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``image`` with the ``hole`` pixels replaced by a smooth continuation of the others.

    Masked averages on a pyramid (push-pull): each coarse pixel is the mean of the known
    pixels under it; pixels with none take the next coarser level's value, upsampled.
    """
    if not hole.any() or hole.all():
        out = image.copy()
        if hole.all():
            out[:] = 128
        return out
    height, width = hole.shape
    known = np.where(hole, 0, 255).astype(np.uint8)
    cleared = np.where(hole[..., None], 0, image).astype(np.uint8)
    size = (max(1, width // FILL_SCALE), max(1, height // FILL_SCALE))
    weight = cv2.resize(known, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    values = cv2.resize(cleared, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    filled = _push_pull(values, weight)
    up = cv2.resize(np.clip(filled + 0.5, 0, 255).astype(np.uint8), (width, height),
                    interpolation=cv2.INTER_LINEAR)
    out = image.copy()
    out[hole] = up[hole]
    return out


def _push_pull(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Mean colour of known pixels (``values`` are premultiplied by ``weight``); gaps filled from coarser levels."""
    known = weight > 1e-3
    mean = values / np.maximum(weight, 1e-6)[..., None]
    if known.all() or min(weight.shape) <= 1:
        if not known.any():
            return np.full_like(values, 128.0)
        return np.where(known[..., None], mean, values.sum((0, 1)) / max(weight.sum(), 1e-6))
    half = (max(1, weight.shape[1] // 2), max(1, weight.shape[0] // 2))
    coarse = _push_pull(cv2.resize(values, half, interpolation=cv2.INTER_AREA),
                        cv2.resize(weight, half, interpolation=cv2.INTER_AREA))
    up = cv2.resize(coarse, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.where(known[..., None], mean, up)


def region_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the mask's pixels, grown to even sides (4:2:0 chroma)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]) & ~1, int(cols[0]) & ~1
    bottom = min(mask.shape[0], (int(rows[-1]) + 2) & ~1)
    right = min(mask.shape[1], (int(cols[-1]) + 2) & ~1)
    return top, left, bottom - top, right - left


class ClassicalCoder:
    """One classical codec at a quality level (``levels``: the codec's own quality scale)."""

    learned = False

    def __init__(self, name: str, codec: str, lossless: bool = False, threads: int = 2):
        if codec not in _FORMATS:
            raise ValueError(f"unknown classical codec {codec!r}")
        self.name = name
        self.codec = codec
        self.lossless = lossless
        self.threads = threads
        # AVIF quality 2-98 (100 would be lossless); JPEG XL quality 5-95 (its scale ends at 100 = lossless).
        self.levels = () if lossless else tuple(range(2, 99, 2)) if codec == "avif" else tuple(range(5, 96, 3))
        self.model_name = ""
        self.weights_sha256 = ""

    def encode(self, region: Region, level: int | None = None) -> CodedRegion:
        if self.lossless != (level is None) or (level is not None and level not in self.levels):
            raise InputError(f"{self.name}: level {level!r} is not one of its levels "
                             f"({'none: lossless' if self.lossless else f'{self.levels[0]}-{self.levels[-1]}'})",
                             region.where)
        if region.pixels == 0:
            return CodedRegion(self.name, "", "", 1, 0, (), {"box": [0, 0, 0, 0]})
        top, left, height, width = region_box(region.mask)
        box = (slice(top, top + height), slice(left, left + width))
        inside = region.mask[box]
        if self.lossless:
            picture = np.ascontiguousarray(np.where(inside[..., None], region.image[box], 0).astype(np.uint8))
        else:
            picture = np.ascontiguousarray(smooth_fill(region.image[box], ~inside))
        try:
            stream = self._encode(picture, level)
        except Exception as error:   # imagecodecs raises its own types for a codec failure
            raise InputError(f"{self.name} cannot code the region: {error}", region.where) from None
        params = {"box": [top, left, height, width]}
        if level is not None:
            params["level"] = level
        return CodedRegion(self.name, "", "", 1, region.pixels, (bytes(stream),), params)

    def _encode(self, picture: np.ndarray, level: int | None) -> bytes:
        if self.codec == "avif":
            return imagecodecs.avif_encode(picture, level=level, speed=8, numthreads=self.threads)
        if self.lossless:   # effort 7, libjxl's default: a lossless blade is asked for when bytes matter most
            return imagecodecs.jpegxl_encode(picture, lossless=True, effort=7, numthreads=self.threads)
        return imagecodecs.jpegxl_encode(picture, level=level, effort=3, numthreads=self.threads)

    def decode(self, coded: CodedRegion, mask: np.ndarray) -> np.ndarray:
        frame = np.zeros((*mask.shape, 3), dtype=np.uint8)
        if coded.count == 0:
            if mask.any():
                raise CodingError(f"{self.name} region is empty but the mask holds {int(mask.sum())} pixels")
            return frame
        box = coded.params.get("box")
        if (not isinstance(box, list) or len(box) != 4 or not all(type(v) is int and v >= 0 for v in box)
                or box[0] + box[2] > mask.shape[0] or box[1] + box[3] > mask.shape[1] or len(coded.streams) != 1):
            raise CodingError(f"{self.name} region: bad box {box!r} or {len(coded.streams)} streams for a "
                              f"{mask.shape[1]}x{mask.shape[0]} photo")
        top, left, height, width = box
        if (top, left, height, width) != region_box(mask) or coded.count != int(mask.sum()):
            raise CodingError(f"{self.name} region: its box or pixel count does not match the bundle's mask")
        try:
            if self.codec == "avif":
                picture = imagecodecs.avif_decode(coded.streams[0], numthreads=self.threads)
            else:
                picture = imagecodecs.jpegxl_decode(coded.streams[0], numthreads=self.threads)
        except Exception as error:   # any codec failure means a damaged stream
            raise CodingError(f"{self.name} region does not decode as {_FORMATS[self.codec]}: {error}") from None
        if picture.shape != (height, width, 3) or picture.dtype != np.uint8:
            raise CodingError(f"{self.name} region decodes to {picture.dtype} {picture.shape}, "
                              f"expected uint8 {(height, width, 3)}")
        frame[top:top + height, left:left + width] = picture
        return frame
