"""The one contract every region coder keeps, learned or classical.

A region is the part of a photo one coder is responsible for: the blade cells, the rest of
the photo (the background), or the whole photo. Every coder has the same two calls::

    coded  = coder.encode(region, level)      # Region -> CodedRegion
    pixels = coder.decode(coded, region.mask)  # CodedRegion -> uint8 (H, W, 3), valid where mask

``level`` is an index into ``coder.levels`` (lossy coders: higher is better quality and more
bits), and None for lossless and exact coders. ``decode`` returns a full-size picture of which
only the region's pixels are meaningful; the caller composes the regions. Coders are
configured by arguments, never by globals, and keep no coding state between calls. Which
coders exist, and what each needs, is :mod:`edge.codec.coders`.
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

    coder: str                      # the bundle's coder id (edge.codec.coders.CoderSpec.coder_id)
    model: str                      # registry name of the model (see edge.registry); "" for classical coders
    weights_sha256: str             # hash of the weights that coded the streams; "" for classical coders
    patch_size: int
    count: int                      # number of patches (or cells) the region covers
    streams: tuple[bytes, ...]
    params: dict = field(default_factory=dict)

    @property
    def bits(self) -> int:
        return 8 * sum(len(s) for s in self.streams)


@dataclass(frozen=True)
class Region:
    """What a coder is asked to code: ``image`` where ``mask`` is true.

    ``source`` is the photo file's bytes, for coders that keep the camera's own data
    (jpeg-exact, source-file); ``where`` names the photo in error messages.
    """

    image: np.ndarray               # uint8 (H, W, 3)
    mask: np.ndarray                # bool (H, W): the pixels this region must give back
    source: bytes | None = None
    where: str = ""

    @property
    def pixels(self) -> int:
        return int(self.mask.sum())


class RegionCoder(Protocol):
    name: str                       # registry name (edge.codec.coders)
    levels: tuple                   # quality levels, lowest first; () for lossless and exact coders

    def encode(self, region: Region, level: int | None = None) -> CodedRegion:
        """Code ``region``; raises InputError when this coder cannot code it (say why)."""

    def decode(self, coded: CodedRegion, mask: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) for the bool (H, W) ``mask``; raises CodingError on a damaged stream."""
