"""Build the golden bundles tests/data/golden-v<N>.edgb, byte for byte the same on every run.

The test suite rebuilds it and compares with the committed file: a difference means the
bundle format changed. If that was meant, bump FORMAT_VERSION in edge/codec/container.py,
describe the change in docs/bundle-format.md, and run this script to write golden-v<N>.edgb.

    python tests/data/make_golden_bundle.py
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge.codec.container import (FORMAT_VERSION, Bundle, BundleRegion, SourceMetadata,  # noqa: E402
                                  encode_bundle)
from edge.codec.contract import CodedRegion  # noqa: E402
from edge.codec.maskcode import encode_mask  # noqa: E402

GOLDEN = Path(__file__).with_name(f"golden-v{FORMAT_VERSION}.edgb")


def fixed_bytes(label: str, size: int) -> bytes:
    """Deterministic filler bytes (SHA-256 in counter mode): the same on every machine."""
    out = b"".join(hashlib.sha256(f"{label}/{i}".encode()).digest() for i in range(size // 32 + 1))
    return out[:size]


def build_golden_bundle(version: int = FORMAT_VERSION) -> Bundle:
    """The golden bundle's content; version 1 is a ROI-eML bundle, version 2 a classical background
    with a jpeg-exact blade on 16-pixel cells."""
    if version >= 2:
        return build_golden_bundle_v2()
    # A 300x200 image at patch size 64: a 4x5 grid with an L-shaped blade and a hole.
    cells = np.array([[0, 1, 1, 1, 0],
                      [0, 1, 0, 1, 0],
                      [0, 1, 1, 1, 1],
                      [0, 0, 0, 0, 1]], dtype=bool)
    blade_count = int(cells.sum())
    background = CodedRegion(
        coder="lossy", model="golden-lossy", weights_sha256=hashlib.sha256(b"lossy").hexdigest(),
        patch_size=64, count=20 - blade_count,
        streams=tuple(fixed_bytes(f"bg{i}", 5 + 3 * i) for i in range(20 - blade_count)),
        params={"quality": 2, "latent_shape": [192, 4, 4], "lambda": 0.0018})
    blade = CodedRegion(
        coder="bitswap", model="golden-bitswap", weights_sha256=hashlib.sha256(b"bitswap").hexdigest(),
        patch_size=64, count=blade_count,
        streams=(fixed_bytes("blade", 40), b"", fixed_bytes("blade-tail", 7)),
        params={"initial_bits_from": "background"})
    source = SourceMetadata(
        filename="DJI_0042.JPG", size=123_456, sha256=hashlib.sha256(b"source").hexdigest(),
        format="JPEG", exif=b"MM\x00*" + fixed_bytes("exif", 28), xmp=b"<x:xmpmeta/>",
        icc=fixed_bytes("icc", 16))
    return Bundle(width=300, height=200, channels=3, patch_size=64, mask_code=encode_mask(cells),
                  regions=(BundleRegion("background", background),
                           BundleRegion("blade", blade, hashlib.sha256(b"blade pixels").hexdigest())),
                  source=source)


def build_golden_bundle_v2() -> Bundle:
    # A 40x24 image at patch size 16: a 2x3 cell grid, blade in the middle column.
    cells = np.array([[0, 1, 0],
                      [0, 1, 1]], dtype=bool)
    background = CodedRegion(coder="avif", model="", weights_sha256="", patch_size=1, count=600,
                             streams=(fixed_bytes("avif", 61),), params={"box": [0, 0, 24, 40], "level": 12})
    blade = CodedRegion(coder="jpeg-exact", model="", weights_sha256="", patch_size=16, count=3,
                        streams=(fixed_bytes("jxl", 33),),
                        params={"container": "jxl", "chosen_by": "auto", "reason": "baseline JPEG source"})
    source = SourceMetadata(filename="DJI_0042.JPG", size=4_321, sha256=hashlib.sha256(b"source").hexdigest(),
                            format="JPEG", exif=b"MM\x00*" + fixed_bytes("exif", 12))
    return Bundle(width=40, height=24, channels=3, patch_size=16, mask_code=encode_mask(cells),
                  regions=(BundleRegion("background", background),
                           BundleRegion("blade", blade, hashlib.sha256(b"blade pixels").hexdigest())),
                  source=source)


if __name__ == "__main__":
    data = encode_bundle(build_golden_bundle())
    GOLDEN.write_bytes(data)
    print(f"wrote {GOLDEN} ({len(data)} bytes)")
