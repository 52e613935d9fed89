"""Every region coder, registered once: its name, kind, what it needs, and how to build it.

The registry (:data:`CODERS`) feeds the CLI and config choices, the bundle's coder ids and the
decoder's dispatch. :class:`Coders` holds the loaded models of one process (the learned coders
are slow to load) and builds each coder of the contract (:mod:`edge.codec.contract`) on first
use.

========================  ===========  ============  =======  ==========================================
name (bundle coder id)    kind         needs         scope    what it is
========================  ===========  ============  =======  ==========================================
``avif``                  lossy        pixels        region   AVIF (libavif through imagecodecs)
``jxl``                   lossy        pixels        region   JPEG XL, lossy
``jxl-lossless``          lossless     pixels        region   JPEG XL, lossless
``hp-easn`` (``lossy``)   lossy        pixels        region   HP+EASN-deep, learned (edge.codec.lossy)
``bitswap``               lossless     pixels        region   Bit-swap, learned (edge.codec.bitswap)
``jpeg-exact``            exact-source source JPEG   region   the camera's own DCT blocks (blade only)
``implicit-roi``          lossy        pixels+mask   whole    mask-conditioned learned coder
``source-file``           exact-source source file   whole    the camera file itself (the fallback)
========================  ===========  ============  =======  ==========================================

HP+EASN-deep's bundle id is ``lossy``, the name bundles of format 1 gave it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge.codec import jpegexact, jpegheaders
from edge.codec.bitswap.coder import BitswapCoder
from edge.codec.bitswap.streams import StreamPool
from edge.codec.classical import ClassicalCoder
from edge.codec.contract import CodedRegion, Region
from edge.codec.imageio import decode_image_bytes
from edge.codec.patches import PatchGrid, blade_cells, from_patches, mirror_pad, to_patches
from edge.errors import CodingError, InputError, ModelError
from edge.registry import load_model
from edge.runtime.select import accelerate_coder


@dataclass(frozen=True)
class CoderSpec:
    name: str                       # what config, CLI and reports call it
    coder_id: str                   # what a bundle records
    kind: str                       # "lossy", "lossless" or "exact-source"
    needs: str                      # "pixels", "pixels+mask", "source-jpeg" or "source-file"
    scope: str                      # "region" (blade or background) or "whole" (the whole photo)
    learned: bool
    build: Callable[["Coders"], object] | None = None   # region coders: the contract's coder


class LearnedPatchCoder:
    """A learned coder of square patches (HP+EASN-deep, Bit-swap) kept to the region contract.

    The region is coded as the patches of the coder's grid that hold any of its pixels
    (mirror-padded at the photo's edge), one stream each; the decoder finds the same patches
    from the mask.
    """

    learned = True

    def __init__(self, name: str, coder, lossless: bool):
        self.name = name
        self.coder = coder
        self.lossless = lossless
        self.levels = () if lossless else tuple(range(coder.levels))
        self.model_name = coder.model_name
        self.weights_sha256 = coder.weights_sha256

    def _grid(self, mask: np.ndarray, patch_size: int | None = None) -> tuple[PatchGrid, np.ndarray]:
        grid = PatchGrid(mask.shape[0], mask.shape[1], patch_size or self.coder.patch_size)
        return grid, blade_cells(mask, grid).ravel()

    def encode(self, region: Region, level: int | None = None) -> CodedRegion:
        if self.lossless != (level is None) or (level is not None and level not in self.levels):
            raise InputError(f"{self.name}: level {level!r} is not one of its levels {self.levels or '(lossless)'}",
                             region.where)
        grid, flags = self._grid(region.mask)
        patches = to_patches(mirror_pad(region.image, grid), grid)[flags]
        return self.coder.compress(patches) if self.lossless else self.coder.compress(patches, level)

    def decode(self, coded: CodedRegion, mask: np.ndarray) -> np.ndarray:
        grid, flags = self._grid(mask, coded.patch_size)
        if coded.count != int(flags.sum()):
            raise CodingError(f"{self.name} region holds {coded.count} patches, the mask needs {int(flags.sum())}")
        patches = np.zeros((grid.count, 3, grid.patch_size, grid.patch_size), dtype=np.uint8)
        if coded.count:
            decoded = self.coder.decompress(coded)
            if len(decoded) != coded.count:
                raise CodingError(f"{self.name} region decodes to {len(decoded)} patches, not {coded.count}")
            patches[flags] = decoded
        return from_patches(patches, grid)


class JpegExactRegionCoder:
    """The camera's own DCT blocks of the region's 16-pixel cells (edge.codec.jpegexact)."""

    name = jpegexact.CODER
    learned = False
    levels = ()
    model_name = ""
    weights_sha256 = ""

    def encode(self, region: Region, level: int | None = None) -> CodedRegion:
        if region.source is None or not jpegheaders.is_jpeg(region.source):
            raise jpegexact.NotKeptExactly("jpeg-exact needs the photo's JPEG file", region.where)
        height, width = region.mask.shape
        info = jpegheaders.inspect_jpeg(region.source, region.where)
        if (info.width, info.height) != (width, height):
            raise jpegexact.NotKeptExactly(f"the JPEG is {info.width}x{info.height}, the pixels {width}x{height}",
                                           region.where)
        grid = jpegexact.cell_grid(height, width)
        cells = blade_cells(region.mask, grid)
        coded, kept = jpegexact.JpegExactCoder().compress(region.source, cells, region.where)
        # The check that makes "exact" true: decode what the offshore side will decode.
        if kept and not np.array_equal(decode_image_bytes(kept, region.where)[region.mask], region.image[region.mask]):
            raise jpegexact.NotKeptExactly("the kept blocks do not decode to the source's blade pixels "
                                           "(a JPEG feature jpeg-exact does not reproduce)", region.where)
        return coded

    def decode(self, coded: CodedRegion, mask: np.ndarray) -> np.ndarray:
        cells = int(blade_cells(mask, jpegexact.cell_grid(*mask.shape)).sum())
        if coded.count != cells:
            raise CodingError(f"jpeg-exact region holds {coded.count} cells, the mask needs {cells}")
        if coded.count == 0:
            return np.zeros((*mask.shape, 3), dtype=np.uint8)
        picture = jpegexact.JpegExactCoder().decompress_image(coded)
        if picture.shape[:2] != mask.shape:
            raise CodingError(f"jpeg-exact region decodes to {picture.shape[1]}x{picture.shape[0]}, "
                              f"the bundle is {mask.shape[1]}x{mask.shape[0]}")
        return picture


CODERS: dict[str, CoderSpec] = {spec.name: spec for spec in (
    CoderSpec("avif", "avif", "lossy", "pixels", "region", False, lambda c: ClassicalCoder("avif", "avif",
                                                                                            threads=c.threads)),
    CoderSpec("jxl", "jxl", "lossy", "pixels", "region", False, lambda c: ClassicalCoder("jxl", "jxl",
                                                                                         threads=c.threads)),
    CoderSpec("jxl-lossless", "jxl-lossless", "lossless", "pixels", "region", False,
              lambda c: ClassicalCoder("jxl-lossless", "jxl", lossless=True, threads=c.threads)),
    CoderSpec("hp-easn", "lossy", "lossy", "pixels", "region", True,
              lambda c: LearnedPatchCoder("hp-easn", c.lossy, lossless=False)),
    CoderSpec("bitswap", "bitswap", "lossless", "pixels", "region", True,
              lambda c: LearnedPatchCoder("bitswap", c.lossless, lossless=True)),
    CoderSpec(jpegexact.CODER, jpegexact.CODER, "exact-source", "source-jpeg", "region", False,
              lambda c: JpegExactRegionCoder()),
    CoderSpec("implicit-roi", "implicit-roi", "lossy", "pixels+mask", "whole", True),
    CoderSpec("source-file", "source-file", "exact-source", "source-file", "whole", False),
)}
BY_CODER_ID = {spec.coder_id: spec for spec in CODERS.values()}


def region_coders(kind: str) -> tuple[str, ...]:
    """Names of the region coders of one kind ("lossy", "lossless", "exact-source")."""
    return tuple(name for name, spec in CODERS.items() if spec.scope == "region" and spec.kind == kind)


class Coders:
    """The loaded models and coders of one process, created once and shared by every photo.

    Models come from the model registry on first use, or are given (tests, benchmarks).
    ``region(name)`` gives a coder of the contract; ``for_region(coded)`` the one that decodes a
    coded region, after checking the bundle's model name and weights hash match it.
    ``threads`` is what the classical codecs use; ``speeds`` caches the learned coders'
    measured seconds per pixel (edge.codec.choose).
    """

    def __init__(self, lossy=None, lossless=None, lossy_name: str = "hp-easn", lossless_name: str = "bitswap",
                 runtime=None, implicit=None, implicit_name: str = "implicit-roi", bitswap_workers: int | None = None,
                 threads: int = 2):
        self._lossy, self._lossless, self._implicit = lossy, lossless, implicit
        self.runtime = runtime   # edge.config.RuntimeConfig: backend of the lossy transforms (None: PyTorch)
        if bitswap_workers is None:
            bitswap_workers = runtime.bitswap_workers if runtime is not None else 0
        self.bitswap_workers = bitswap_workers   # processes coding Bit-swap's streams (0: this one)
        self.threads = threads
        self.speeds: dict[str, float] = {}
        self._pool = None
        self._built: dict[str, object] = {}
        self._names = {"lossy": lossy_name, "bitswap": lossless_name, "implicit-roi": implicit_name}

    @property
    def implicit(self):
        if self._implicit is None:
            self._implicit = load_model(self._names["implicit-roi"])
        return self._implicit

    @property
    def lossy(self):
        if self._lossy is None:
            self._lossy = load_model(self._names["lossy"])
            if self.runtime is not None:
                accelerate_coder(self._lossy, self.runtime)
        return self._lossy

    @property
    def lossless(self):
        if self._lossless is None:
            if self.bitswap_workers > 0:
                self._pool = StreamPool(self.bitswap_workers)
            self._lossless = BitswapCoder.from_registry(self._names["bitswap"], pool=self._pool)
        return self._lossless

    def region(self, name: str):
        """The region coder registered as ``name`` (built on first use)."""
        spec = CODERS.get(name)
        if spec is None or spec.build is None:
            known = ", ".join(n for n, s in CODERS.items() if s.build is not None)
            raise InputError(f"unknown region coder {name!r} (choose from {known})")
        if name not in self._built:
            self._built[name] = spec.build(self)
        return self._built[name]

    def close(self) -> None:
        """Stop Bit-swap's worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def for_region(self, coded: CodedRegion):
        """The coder that decodes ``coded``: learned models' raw coders, others the region coder."""
        spec = BY_CODER_ID.get(coded.coder)
        if spec is None or spec.name == "source-file":
            raise CodingError(f"no decoder for coder {coded.coder!r} in this region")
        coder = {"hp-easn": lambda: self.lossy, "bitswap": lambda: self.lossless,
                 "implicit-roi": lambda: self.implicit}.get(spec.name, lambda: self.region(spec.name))()
        if coded.model != coder.model_name or (coded.weights_sha256 and coded.weights_sha256 != coder.weights_sha256):
            raise ModelError(f"region was coded by model {coded.model!r} with weights {coded.weights_sha256[:12]}…; "
                             f"this decoder has {coder.model_name!r} with {coder.weights_sha256[:12]}…; "
                             f"decode with the package version that coded it")
        return coder

    def region_decoder(self, coded: CodedRegion):
        """The contract's coder for ``coded`` (after the model check of :meth:`for_region`)."""
        self.for_region(coded)
        spec = BY_CODER_ID[coded.coder]
        if spec.scope != "region":
            raise CodingError(f"coder {coded.coder!r} codes whole photos, not a region")
        return self.region(spec.name)
