"""Decode any bundle into pixels, dispatching on its region coders.

``source-file`` bundles (the original camera file) are decoded here; every other coder
(lossy, Bit-swap, ROI, jpeg-exact) goes through the codec's ``edge.codec.photo.decompress_bundle``,
the same function ``edge decompress`` uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.codec.container import Bundle
from edge.codec.sourcefile import decompress_source_file, is_source_file_bundle
from edge.errors import CodingError


@dataclass(frozen=True)
class DecodedImage:
    image: np.ndarray               # uint8 (H, W, 3)
    mask: np.ndarray                # bool (H, W)
    report: dict
    source_file: bytes | None       # the camera's original file, when the bundle carries it


class PhotoDecoder:
    """``decoder(bundle, name) -> DecodedImage``; raises BundleError/CodingError/ModelError when the
    bundle cannot be trusted. The codec's models (``coders``) load on first use unless given."""

    def __init__(self, coders: Any = None):
        self.coders = coders

    def __call__(self, bundle: Bundle, name: str = "") -> DecodedImage:
        if is_source_file_bundle(bundle):
            decoded = decompress_source_file(bundle, name)
            return DecodedImage(decoded.image, decoded.mask, decoded.report, decoded.file_bytes)
        try:
            # Imported here: the codec pulls in torch (1.3 s more at `edge subscribe`'s start on a 2-core
            # CPU), which source-file bundles do not need.
            from edge.codec import photo
        except ImportError as error:
            coders = sorted({region.coded.coder for region in bundle.regions})
            raise CodingError(f"{name or 'bundle'}: this installation cannot decode coders {coders} "
                              f"({error}); install the full edge package") from None
        if self.coders is None:
            self.coders = photo.Coders()
        decoded = photo.decompress_bundle(bundle, self.coders)
        return DecodedImage(decoded.image, decoded.mask, dict(decoded.report), None)
