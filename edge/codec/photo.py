"""One photo in, one bundle out (and back): the library call behind `edge compress`,
`edge decompress`, the daemon and the offshore subscriber.

Modes:

* ``lossy``: the whole photo through the lossy coder at one quality level (region ``whole``).
* ``lossless``: the whole photo through Bit-swap, bit for bit (region ``whole``).
* ``roi``: blade and background apart (regions ``background`` and ``blade``), see
  :mod:`edge.codec.roi`.
* ``implicit-roi``: the whole photo through the mask-conditioned implicit ROI coder at one
  quality level (region ``whole``); the bundle's mask (fine cells) is its side information,
  see :mod:`edge.codec.implicit.coder`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.codec import jpegexact, roi
from edge.codec.container import Bundle, BundleRegion, SourceMetadata, pixels_sha256
from edge.codec.imageio import read_image
from edge.codec.maskcode import encode_mask
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask
from edge.errors import CodingError, InputError, ModelError

MODES = ("lossy", "lossless", "roi", "implicit-roi")
BLADE_CODERS = ("lossless", "lossy", "jpeg-exact", "auto")


@dataclass(frozen=True)
class CodingSettings:
    mode: str = "roi"
    quality: int = 3            # lossy and implicit-roi modes: quality level of the whole photo
    bg_quality: int = 0         # roi mode: quality level of the background
    blade: str = "lossless"     # roi mode: "lossless" (Bit-swap), "lossy", "jpeg-exact", or "auto"
    blade_quality: int = 5      # roi mode with a lossy blade

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.blade not in BLADE_CODERS:
            raise InputError(f"unknown blade coder {self.blade!r} (choose from {', '.join(BLADE_CODERS)})")


class Coders:
    """The loaded region coders, created once by the caller and shared by every photo.

    Coders come from the model registry on first use, or are given (tests, benchmarks).
    Decoding checks that a bundle's model name and weights hash match the coder's.
    """

    def __init__(self, lossy=None, lossless=None, lossy_name: str = "hp-easn", lossless_name: str = "bitswap",
                 runtime=None, implicit=None, implicit_name: str = "implicit-roi", bitswap_workers: int | None = None):
        self._lossy, self._lossless, self._implicit = lossy, lossless, implicit
        self.runtime = runtime   # edge.config.RuntimeConfig: backend of the lossy transforms (None: PyTorch)
        if bitswap_workers is None:
            bitswap_workers = runtime.bitswap_workers if runtime is not None else 0
        self.bitswap_workers = bitswap_workers   # processes coding Bit-swap's streams (0: this one)
        self._pool = None
        self._names = {"lossy": lossy_name, "bitswap": lossless_name, "implicit-roi": implicit_name}

    @property
    def implicit(self):
        if self._implicit is None:
            from edge.registry import load_model
            self._implicit = load_model(self._names["implicit-roi"])
        return self._implicit

    @property
    def lossy(self):
        if self._lossy is None:
            from edge.registry import load_model
            self._lossy = load_model(self._names["lossy"])
            if self.runtime is not None:
                from edge.runtime.select import accelerate_coder
                accelerate_coder(self._lossy, self.runtime)
        return self._lossy

    @property
    def lossless(self):
        if self._lossless is None:
            from edge.codec.bitswap.coder import BitswapCoder
            from edge.codec.bitswap.streams import StreamPool
            if self.bitswap_workers > 0:
                self._pool = StreamPool(self.bitswap_workers)
            self._lossless = BitswapCoder.from_registry(self._names["bitswap"], pool=self._pool)
        return self._lossless

    def close(self) -> None:
        """Stop Bit-swap's worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def for_region(self, coded) -> object:
        coder = {"lossy": lambda: self.lossy, "bitswap": lambda: self.lossless,
                 "implicit-roi": lambda: self.implicit,
                 jpegexact.CODER: jpegexact.JpegExactCoder}.get(coded.coder)
        if coder is None:
            raise CodingError(f"no decoder for coder {coded.coder!r}")
        coder = coder()
        if coded.model != coder.model_name or (coded.weights_sha256 and coded.weights_sha256 != coder.weights_sha256):
            raise ModelError(f"region was coded by model {coded.model!r} with weights {coded.weights_sha256[:12]}…; "
                             f"this decoder has {coder.model_name!r} with {coder.weights_sha256[:12]}…; "
                             f"decode with the package version that coded it")
        return coder


@dataclass(frozen=True)
class CompressResult:
    bundle: Bundle
    report: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DecodedPhoto:
    image: np.ndarray            # uint8 (H, W, 3)
    mask: np.ndarray             # bool (H, W): the blade cells of the patch grid
    report: dict = field(default_factory=dict)


def compress_photo(path: Path, settings: CodingSettings, coders: Coders, mask: np.ndarray | None = None) -> CompressResult:
    """Read a photo file and code it into a bundle. ``mask`` (bool, H x W) marks the blade."""
    started = time.perf_counter()
    image, data = read_image(path)
    metadata = source_metadata_from_bytes(data, Path(path).name, str(path))
    times = {"read": time.perf_counter() - started}
    return compress_pixels(image, metadata, settings, coders, mask, times, source_bytes=data)


def compress_pixels(image: np.ndarray, metadata: SourceMetadata, settings: CodingSettings, coders: Coders,
                    mask: np.ndarray | None = None, times: dict | None = None,
                    source_bytes: bytes | None = None) -> CompressResult:
    """``source_bytes`` (the photo file) lets ``--blade auto|jpeg-exact`` keep a JPEG's own blocks."""
    times = dict(times or {})
    height, width = image.shape[:2]
    if mask is not None and mask.shape != (height, width):
        raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}", metadata.filename)
    if settings.mode == "implicit-roi":
        if mask is None:
            raise InputError("implicit-roi mode needs a blade mask (--mask or --segment)", metadata.filename)
        from edge.codec.implicit.coder import MASK_CELL
        started = time.perf_counter()
        # Code with the mask the decoder will get back from the bundle: fine cells of MASK_CELL pixels.
        grid = PatchGrid(height, width, MASK_CELL)
        cells = blade_cells(mask, grid)
        coded = coders.implicit.compress_image(image, cells_to_mask(cells, grid), settings.quality)
        regions = (BundleRegion("whole", coded),)
        times["code"] = time.perf_counter() - started
    elif settings.mode == "roi":
        if mask is None:
            raise InputError("roi mode needs a blade mask (--mask or --segment)", metadata.filename)
        if settings.blade in ("auto", jpegexact.CODER):
            regions, grid, cells = jpegexact.compress_roi(image, mask, settings, coders, times, source_bytes,
                                                          metadata.filename)
        else:
            regions, grid, cells = roi.compress_regions(image, mask, settings, coders, times)
    else:
        started = time.perf_counter()
        if settings.mode == "lossy":
            grid = PatchGrid(height, width, coders.lossy.patch_size)
            coded = coders.lossy.compress(roi.image_patches(image, grid), settings.quality)
            regions = (BundleRegion("whole", coded),)
        else:
            coded = coders.lossless.compress_image(image)
            grid = PatchGrid(height, width, coded.patch_size)
            regions = (BundleRegion("whole", coded, pixels_sha256(image)),)
        times["code"] = time.perf_counter() - started
        cells = blade_cells(mask, grid) if mask is not None else np.zeros((grid.rows, grid.cols), bool)
    bundle = Bundle(width=width, height=height, channels=3, patch_size=grid.patch_size,
                    mask_code=encode_mask(cells), regions=regions, source=metadata)
    report = {
        "file": metadata.filename, "width": width, "height": height, "mode": settings.mode,
        "source_bytes": metadata.size,
        "mask_bytes": len(bundle.mask_code),
        "regions": {r.name: {"coder": r.coded.coder, "params": r.coded.params, "bits": bits,
                             "patches": r.coded.count} for r, bits in zip(regions, roi.own_bits(regions))},
        "seconds": {k: round(v, 3) for k, v in times.items()},
    }
    coded_bytes = sum(r.coded.bits for r in regions) // 8 + len(bundle.mask_code)
    # Never silently bigger than the original: say so, and let the caller's policy choose.
    report["larger_than_source"] = coded_bytes > metadata.size
    return CompressResult(bundle, report)


def decompress_bundle(bundle: Bundle, coders: Coders) -> DecodedPhoto:
    """Decode every region; lossless regions are checked against their pixel hash."""
    started = time.perf_counter()
    grid = bundle.grid
    cells = bundle.blade_cells()
    names = {r.name for r in bundle.regions}
    if names == {"whole"}:
        region = bundle.region("whole")
        coder = coders.for_region(region.coded)
        if region.coded.coder == "bitswap":
            image = coder.decompress_image(region.coded)
        elif region.coded.coder == "implicit-roi":
            image = coder.decompress_image(region.coded, cells_to_mask(cells, grid), bundle.height, bundle.width)
        else:
            image = roi.image_from_patches(coder.decompress(region.coded), grid)
        if region.pixel_sha256 is not None and pixels_sha256(image) != region.pixel_sha256:
            raise CodingError("lossless region 'whole' decodes to pixels whose hash differs from the original's")
    elif jpegexact.holds_jpeg_exact(bundle):
        image = jpegexact.decompress_regions(bundle, cells, coders)
    else:
        image = roi.decompress_regions(bundle, cells, coders)
    report = {"seconds": {"decode": round(time.perf_counter() - started, 3)}}
    return DecodedPhoto(image=image, mask=cells_to_mask(cells, grid), report=report)
