"""The one contract every region coder keeps (lossy, Bit-swap, implicit ROI, jpeg-exact).

``compress`` takes a batch of patches and returns a :class:`CodedRegion`; ``decompress``
takes that back to patches. Coders are configured by arguments, never by globals, and keep
no coding state between calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class CodedRegion:
    """Streams of one region of one image, plus what is needed to decode them.

    ``streams`` holds one byte string per independent stream (per patch or per tile),
    ``params`` the coder's small JSON-able settings (quality level, latent shapes …).
    """

    coder: str                      # "lossy", "bitswap", "implicit-roi", "jpeg-exact"
    model: str                      # registry name of the model (see edge.registry)
    weights_sha256: str             # hash of the weights that coded the streams
    patch_size: int
    count: int                      # number of patches
    streams: tuple[bytes, ...]
    params: dict = field(default_factory=dict)

    @property
    def bits(self) -> int:
        return 8 * sum(len(s) for s in self.streams)


class RegionCoder(Protocol):
    name: str
    patch_size: int

    def compress(self, patches: np.ndarray, **options) -> CodedRegion:
        """``patches`` is uint8 (N, 3, p, p); returns the coded region."""

    def decompress(self, coded: CodedRegion) -> np.ndarray:
        """Returns uint8 (N, 3, p, p); raises CodingError/BundleError on a damaged stream."""
