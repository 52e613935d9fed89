"""Classical baselines for the ROI coder, measured on the same pixels in the same run.

Regions (all from the lossy coder's patch grid, the grid our ROI bundles use):

* ``cells``: the blade patches (any blade pixel), the area our blade coder codes;
* ``mask``: the blade pixels themselves, where blade quality is measured;
* ``background``: every pixel outside the blade patches.

**Lossless blade** (:func:`lossless_blade`): the bounding box of the blade patches, pixels
outside the patches set to zero, through PNG, WebP, JPEG XL, JPEG 2000 and JPEG-LS (lossless);
bits per blade-patch pixel, comparable with Bit-swap's blade bits over the same patches.

**Two-layer classical ROI** (:func:`two_layer_roi`), what a user could do without us:

1. base layer: the whole photo through the classical codec at the lowest quality step whose
   background PSNR reaches ``background_psnr`` (the background PSNR our bundle reaches);
2. blade layer over the bounding box of the blade patches, either lossy (the same codec at the
   lowest step whose blade PSNR, after pasting the layer's blade patches over the base, reaches
   ``blade_psnr``; pixels outside the patches are the base layer's, so the layer has no hard
   edges to pay for) or lossless (the smallest of the lossless codecs above);
3. the blade patch map, coded with our mask code (the same bytes a bundle carries).

Quality steps are searched by bisection over each codec's ladder (quality rises along it).
"""
from __future__ import annotations

import math

import numpy as np

from edge.bench.classical import encoder
from edge.bench.lossless import classical_codecs, measure_classical
from edge.bench.msssim import ms_ssim
from edge.codec.quality import psnr

# Each codec's quality knob, from lowest to highest quality (see edge.bench.classical.encoder).
LADDERS = {
    "avif": tuple(range(0, 101, 2)),                                  # quality level, 100 = lossless
    "webp": tuple(range(0, 101, 2)),                                  # quality level
    "jpegxl": tuple(round(25 * 0.85**k, 3) for k in range(36)),        # butteraugli distance 25 .. 0.07
    "jpeg2000": tuple(float(db) for db in range(20, 71)),             # target PSNR in dB
}


def bounding_box(cells: np.ndarray) -> tuple[slice, slice] | None:
    rows, cols = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def lossless_blade(image: np.ndarray, cells: np.ndarray, codecs: dict | None = None) -> dict | None:
    """Each lossless codec on the blade patches (bounding box, zeros outside); None without blade."""
    box = bounding_box(cells)
    if box is None:
        return None
    layer = np.where(cells[box][..., None], image[box], 0).astype(np.uint8)
    blade_pixels = int(cells.sum())
    results = measure_classical(np.ascontiguousarray(layer), codecs or classical_codecs())
    for result in results.values():
        if "bytes" in result:
            result["bits_per_blade_pixel"] = 8 * result["bytes"] / blade_pixels
    return {"blade_pixels": blade_pixels, "box": [box[0].start, box[1].start, box[0].stop, box[1].stop],
            "codecs": results}


def _code(image: np.ndarray, codec: str, parameter) -> tuple[int, np.ndarray]:
    encode, decode = encoder(codec, parameter)
    data = encode(np.ascontiguousarray(image))
    return len(data), np.asarray(decode(data))[..., :3].reshape(image.shape)


def lowest_step(ladder, good) -> tuple[int, bool]:
    """Index of the first ladder step where ``good(step)`` holds (bisection, ``good`` monotone).

    Returns (index, reached); when no step is good, the last one with ``reached`` False.
    """
    low, high = 0, len(ladder) - 1
    if not good(ladder[high]):
        return high, False
    while low < high:
        middle = (low + high) // 2
        if good(ladder[middle]):
            high = middle
        else:
            low = middle + 1
    return low, True


def two_layer_roi(image: np.ndarray, mask: np.ndarray, cells: np.ndarray, mask_bytes: int,
                  background_psnr: float, codec: str = "avif", blade: str = "lossy",
                  blade_psnr: float = 40.0, lossless: dict | None = None) -> dict:
    """The classical two-layer ROI of the module doc; sizes, chosen steps and region quality.

    ``lossless``: the :func:`lossless_blade` result of these pixels, if already measured.
    """
    ladder = LADDERS[codec]
    background = ~cells
    out = {"codec": codec, "blade": blade, "target_background_psnr": background_psnr,
           "target_blade_psnr": blade_psnr if blade == "lossy" else math.inf, "mask_bytes": mask_bytes}

    # 1. base layer: the whole photo, just good enough for the background.
    cache: dict = {}

    def base(step):
        if step not in cache:
            cache[step] = _code(image, codec, step)
        return cache[step]

    if background.any() and math.isfinite(background_psnr):
        index, reached = lowest_step(ladder, lambda s: psnr(image, base(s)[1], background) >= background_psnr)
        base_bytes, base_image = base(ladder[index])
        out.update(base_parameter=ladder[index], base_reached=reached)
    else:   # nothing to show outside the blade, or no target: no base layer
        base_bytes, base_image = 0, np.zeros_like(image)
        out.update(base_parameter=None, base_reached=True)
    composed = base_image.copy()

    # 2. blade layer over the bounding box of the blade patches.
    box = bounding_box(cells)
    layer_bytes = 0
    if box is not None:
        inside = cells[box][..., None]
        if blade == "lossy":
            layer_source = np.where(inside, image[box], base_image[box]).astype(np.uint8)

            def paste(step):
                decoded = _code(layer_source, codec, step)
                trial = composed.copy()
                trial[box] = np.where(inside, decoded[1], composed[box])
                return decoded[0], trial

            index, reached = lowest_step(ladder, lambda s: psnr(image, paste(s)[1], mask) >= blade_psnr)
            layer_bytes, composed = paste(ladder[index])
            out.update(layer_parameter=ladder[index], layer_reached=reached)
        else:
            result = lossless or lossless_blade(image, cells)
            sizes = {name: r["bytes"] for name, r in result["codecs"].items() if r.get("exact")}
            best = min(sizes, key=sizes.get)
            layer_bytes = sizes[best]
            composed[box] = np.where(inside, image[box], composed[box])
            out.update(layer_codec=best, layer_reached=True)

    pixels = image.shape[0] * image.shape[1]
    total = base_bytes + layer_bytes + mask_bytes
    out.update(base_bytes=base_bytes, layer_bytes=layer_bytes, bytes=total, bpp=8 * total / pixels,
               quality=region_quality(image, composed, mask, background))
    return out


def region_quality(image: np.ndarray, decoded: np.ndarray, mask: np.ndarray, background: np.ndarray) -> dict:
    """PSNR and MS-SSIM of the blade pixels, the background and the whole image.

    A region's MS-SSIM compares the image with a copy that holds the decoded pixels inside the
    region only, averaged over the windows centred in the region: the score of that region's
    coding alone (an exact blade scores 1 even where windows reach into a lossy background).
    """
    quality = {}
    for name, where in (("blade", mask), ("background", background), ("whole", None)):
        entry = {"psnr": psnr(image, decoded, where), "ms_ssim": None}
        if where is None or where.any():
            only_region = decoded if where is None else np.where(where[..., None], decoded, image)
            try:
                entry["ms_ssim"] = ms_ssim(image, only_region, where)
            except ValueError:      # image smaller than the 5 scales need
                pass
        quality[name] = entry
    return quality
