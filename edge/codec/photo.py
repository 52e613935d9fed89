"""One photo in, one bundle out (and back): the library call behind `edge compress`,
`edge decompress`, the daemon and the offshore subscriber.

Modes:

* ``lossy``: the whole photo through the lossy coder at one quality level (region ``whole``).
* ``lossless``: the whole photo through Bit-swap, bit for bit (region ``whole``).
* ``roi``: blade and background apart (regions ``background`` and ``blade``), each by the
  coder that meets its target with the fewest bytes, see :mod:`edge.codec.regions`.
* ``implicit-roi``: the whole photo through the mask-conditioned implicit ROI coder at one
  quality level (region ``whole``); the bundle's mask (fine cells) is its side information,
  see :mod:`edge.codec.implicit.coder`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.codec import regions as roi_regions
from edge.codec import roi
from edge.codec.coders import BY_CODER_ID, Coders, region_coders
from edge.codec.container import Bundle, BundleRegion, SourceMetadata, pixels_sha256
from edge.codec.imageio import read_image
from edge.codec.implicit.coder import MASK_CELL
from edge.codec.maskcode import encode_mask
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask
from edge.codec.sourcefile import decompress_source_file
from edge.errors import CodingError, InputError

MODES = ("lossy", "lossless", "roi", "implicit-roi")
BACKGROUND_CODERS = ("auto", *region_coders("lossy"))
BLADE_CODERS = ("auto", "lossless", "lossy", *region_coders("exact-source"), *region_coders("lossless"),
                *region_coders("lossy"))


@dataclass(frozen=True)
class CodingSettings:
    """What the user asks for, in their terms. The defaults are the best measured setting
    (docs/benchmarks.md): the camera's blade blocks kept exactly, the background at 25 dB by
    whichever coder reaches it with the fewest bytes."""

    mode: str = "roi"
    quality: int = 3                    # lossy and implicit-roi modes: quality level of the whole photo
    background: str = "auto"            # roi mode: auto, or one lossy coder (avif, jxl, hp-easn)
    bg_psnr: float | None = 25.0        # roi mode: background PSNR target in dB
    bg_quality: int | None = None       # roi mode: instead of bg_psnr, a level of the named background coder
    blade: str = "auto"                 # roi mode: auto (jpeg-exact for JPEGs, else lossless), jpeg-exact,
    #                                     lossless (smaller of jxl-lossless and bitswap), one coder, or lossy
    blade_psnr: float | None = None     # roi mode, lossy blade: PSNR target in dB
    blade_quality: int | None = None    # roi mode, lossy blade: instead of blade_psnr, a level (hp-easn unless named)
    time_budget_s: float = 10.0         # auto: a learned coder joins when it codes the region within this

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.background not in BACKGROUND_CODERS:
            raise InputError(f"unknown background coder {self.background!r} "
                             f"(choose from {', '.join(BACKGROUND_CODERS)})")
        if self.blade not in BLADE_CODERS:
            raise InputError(f"unknown blade coder {self.blade!r} (choose from {', '.join(BLADE_CODERS)})")
        if self.background == "auto" and self.bg_quality is not None:
            raise InputError("bg_quality is a level of one coder: name the background coder "
                             f"(one of {', '.join(BACKGROUND_CODERS[1:])}) or give bg_psnr instead")
        if self.bg_quality is None and self.bg_psnr is None:
            raise InputError("the background needs a target: bg_psnr (dB) or bg_quality (a level)")
        lossy_blade = self.blade == "lossy" or self.blade in region_coders("lossy")
        if lossy_blade and self.blade_psnr is None and self.blade_quality is None:
            raise InputError("a lossy blade needs a target: blade_psnr (dB) or blade_quality (a level)")
        if self.time_budget_s <= 0:
            raise InputError(f"time_budget_s must be positive, not {self.time_budget_s}")


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
    choices: dict = {}
    height, width = image.shape[:2]
    if mask is not None and mask.shape != (height, width):
        raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}", metadata.filename)
    if settings.mode == "implicit-roi":
        if mask is None:
            raise InputError("implicit-roi mode needs a blade mask (--mask or --segment)", metadata.filename)
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
        regions, grid, cells, choices = roi_regions.compress_regions(image, mask, settings, coders, times,
                                                                     source_bytes, metadata.filename)
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
    if choices:
        report["choices"] = choices
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
        image = _decompress_whole(bundle, bundle.region("whole"), cells, coders)
    else:
        image = roi_regions.decompress_regions(bundle, cells, coders)
    report = {"seconds": {"decode": round(time.perf_counter() - started, 3)}}
    return DecodedPhoto(image=image, mask=cells_to_mask(cells, grid), report=report)


def _decompress_whole(bundle: Bundle, region, cells: np.ndarray, coders: Coders) -> np.ndarray:
    spec = BY_CODER_ID.get(region.coded.coder)
    if spec is not None and spec.name == "source-file":
        return decompress_source_file(bundle).image
    coder = coders.for_region(region.coded)
    grid = bundle.grid
    if region.coded.coder == "bitswap":
        image = coder.decompress_image(region.coded)
    elif region.coded.coder == "implicit-roi":
        image = coder.decompress_image(region.coded, cells_to_mask(cells, grid), bundle.height, bundle.width)
    else:
        image = roi.image_from_patches(coder.decompress(region.coded), grid)
    if region.pixel_sha256 is not None and pixels_sha256(image) != region.pixel_sha256:
        raise CodingError("lossless region 'whole' decodes to pixels whose hash differs from the original's")
    return image
