"""Classical lossy codecs for comparisons, each swept over its quality knob (imagecodecs).

Every codec maps one quality parameter to an encoder; the sweeps cover roughly 0.02-2 bpp on
drone photos so RD curves overlap ours.
"""
from __future__ import annotations

import imagecodecs
import numpy as np

from edge.codec.quality import psnr

SWEEPS = {
    # JPEG 2000: the parameter is the target PSNR in dB (OpenJPEG's fixed-quality mode).
    "jpeg2000": (24, 27, 30, 33, 36, 39, 42, 45),
    "webp": (0, 5, 15, 30, 50, 70, 85, 95),
    "jpegxl": (12.0, 8.0, 5.0, 3.0, 2.0, 1.4, 1.0, 0.6),   # butteraugli distance
    "avif": (0, 10, 25, 40, 55, 70, 85),
}


def encoder(name: str, parameter):
    if name == "jpeg2000":
        return lambda a: imagecodecs.jpeg2k_encode(a, level=parameter), imagecodecs.jpeg2k_decode
    if name == "webp":
        # lossless=False: this imagecodecs' webp_encode codes losslessly unless told otherwise.
        return lambda a: imagecodecs.webp_encode(a, level=parameter, lossless=False), imagecodecs.webp_decode
    if name == "jpegxl":
        return lambda a: imagecodecs.jpegxl_encode(a, distance=parameter, effort=7), imagecodecs.jpegxl_decode
    if name == "avif":
        return lambda a: imagecodecs.avif_encode(a, level=parameter, speed=6), imagecodecs.avif_decode
    raise ValueError(f"unknown classical codec {name!r}")


def rd_points(image: np.ndarray, name: str, where: np.ndarray | None = None) -> list[dict]:
    """(bpp, PSNR) of ``image`` at each point of the codec's sweep; PSNR over ``where`` if given."""
    points = []
    pixels = image.shape[0] * image.shape[1]
    for parameter in SWEEPS[name]:
        encode, decode = encoder(name, parameter)
        data = encode(image)
        decoded = np.asarray(decode(data))[..., :3]
        points.append({"parameter": parameter, "bytes": len(data), "bpp": 8 * len(data) / pixels,
                       "psnr": psnr(image, decoded, where)})
    return points


def bd_rate(anchor: list[dict], test: list[dict]) -> float | None:
    """Bjontegaard delta rate (%) of ``test`` against ``anchor`` over their common PSNR range.

    Negative means ``test`` needs fewer bits. None when the curves do not overlap.
    """
    import bjontegaard   # imported here: an optional dependency (the classical extra)

    def curve(points):
        pts = sorted((p["bpp"], p["psnr"]) for p in points if np.isfinite(p["psnr"]) and p["bpp"] > 0)
        # Keep it strictly increasing in both, as the interpolation needs.
        out = []
        for rate, quality in pts:
            if not out or (rate > out[-1][0] and quality > out[-1][1]):
                out.append((rate, quality))
        return np.array(out)

    a, t = curve(anchor), curve(test)
    if len(a) < 4 or len(t) < 4:
        return None
    low, high = max(a[:, 1].min(), t[:, 1].min()), min(a[:, 1].max(), t[:, 1].max())
    if high <= low:
        return None
    try:
        return float(bjontegaard.bd_rate(a[:, 0], a[:, 1], t[:, 0], t[:, 1], method="akima",
                                         require_matching_points=False))
    except (ValueError, AssertionError):  # too little overlap for a meaningful number
        return None
