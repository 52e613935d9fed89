"""ROI coding with any pair of region coders: blade cells one way, the rest of the photo another.

::

    mask --16-pixel cells--> blade cells (the bundle's mask grid)
    blade region       = the blade cells' pixels
        exact:     jpeg-exact (the camera's DCT blocks; JPEG sources)
        lossless:  the smaller of JPEG XL lossless and Bit-swap (``auto``), or one of them
        lossy:     the coder and level meeting the blade's PSNR target with the fewest bytes
    background region  = every other pixel
        the coder and level meeting the background's PSNR target with the fewest bytes
        (edge.codec.choose), or one named coder at one level

Each region is coded by a coder of the contract (:mod:`edge.codec.contract`) registered in
:mod:`edge.codec.coders`; decoding asks each region's coder for its pixels and pastes the
blade cells over the background. Exact and lossless blades carry the SHA-256 of their pixels
(``image[cell_mask]``, row-major), which the decoder checks. Bundles of format 1 with a
jpeg-exact or lossy blade decode here too; ROI-eML bundles (a Bit-swap blade on the lossy
coder's patch grid, seeded by the background streams) go through :mod:`edge.codec.roi`.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from edge.codec import jpegexact, roi
from edge.codec.choose import Choice, Target, code_at_level, code_to_target, estimate_candidates
from edge.codec.coders import BY_CODER_ID, CODERS, region_coders
from edge.codec.container import Bundle, BundleRegion, pixels_sha256
from edge.codec.contract import Region
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask
from edge.errors import CodingError, InputError

CELL = jpegexact.CELL       # the mask grid of these bundles: jpeg-exact's cells fit every coder
BLADE_LOSSLESS_ANCHOR = "jxl-lossless"


def compress_regions(image: np.ndarray, mask: np.ndarray, settings, coders, times: dict,
                     source: bytes | None, where: str = ""):
    """Returns (regions, grid, cells, choices); ``choices`` is the report of both regions."""
    height, width = image.shape[:2]
    if settings.background == "hp-easn" and settings.blade == "bitswap":
        return _bits_back_roi(image, mask, settings, coders, times)
    grid = PatchGrid(height, width, CELL)
    cells = blade_cells(mask, grid)
    cell_mask = cells_to_mask(cells, grid)

    started = time.perf_counter()
    blade, blade_choice = _code_blade(Region(image, cell_mask, source, where), settings, coders)
    times["blade"] = time.perf_counter() - started

    started = time.perf_counter()
    background = _code_background(Region(image, ~cell_mask, source, where), settings, coders)
    times["background"] = time.perf_counter() - started
    regions = (BundleRegion("background", background.coded), blade)
    return regions, grid, cells, {"background": background.report(), "blade": blade_choice}


def _code_background(region: Region, settings, coders) -> Choice:
    if settings.background != "auto" and settings.bg_quality is not None:
        return code_at_level(coders, settings.background, region, settings.bg_quality)
    names = region_coders("lossy") if settings.background == "auto" else (settings.background,)
    return code_to_target(coders, names, region, Target(settings.bg_psnr), settings.time_budget_s)


def _code_blade(region: Region, settings, coders) -> tuple[BundleRegion, dict]:
    """The blade region and its report; exact and lossless blades carry their pixels' hash."""
    coded, report = _choose_blade(region, settings, coders)
    exact = BY_CODER_ID[coded.coder].kind != "lossy"
    digest = pixels_sha256(np.ascontiguousarray(region.image[region.mask])) if exact else None
    return BundleRegion("blade", coded, digest), report


def _choose_blade(region: Region, settings, coders):
    """(coded blade, report): which coder, chosen how and why."""
    requested = settings.blade
    if requested in ("auto", jpegexact.CODER):
        why = jpegexact.choose_blade_coder(requested, region.source, region.where)
        if why.coder == jpegexact.CODER:
            try:
                coded = coders.region(jpegexact.CODER).encode(region)
                coded = replace(coded, params={**coded.params, **why.params})
                return coded, {"coder": jpegexact.CODER, "bytes": coded.bits // 8, **why.params}
            except jpegexact.NotKeptExactly as error:
                if requested != "auto":
                    raise
                why = replace(why, coder="lossless", reason=f"jpeg-exact refused ({error}); blade coded losslessly")
        requested = "lossless"
        reason = why.reason
    else:
        reason = f"--blade {requested}"
    if requested == "lossless":
        choice = code_to_target(coders, region_coders("lossless"), region, Target(None), settings.time_budget_s,
                                anchor=BLADE_LOSSLESS_ANCHOR)
    elif requested != "lossy" and CODERS[requested].kind == "lossless":
        choice = code_at_level(coders, requested, region, None)
    else:
        choice = _code_lossy_blade(region, settings, coders, requested)
    return choice.coded, {**choice.report(), "reason": reason}


def _code_lossy_blade(region: Region, settings, coders, requested: str) -> Choice:
    named = requested if requested != "lossy" else None
    if settings.blade_psnr is None:     # a level of one coder (HP+EASN-deep unless named)
        return code_at_level(coders, named or "hp-easn", region, settings.blade_quality)
    names = (named,) if named else region_coders("lossy")
    return code_to_target(coders, names, region, Target(settings.blade_psnr), settings.time_budget_s)


def _bits_back_roi(image, mask, settings, coders, times):
    """ROI-eML: HP+EASN-deep background, Bit-swap blade seeded by its streams (edge.codec.roi)."""
    level = settings.bg_quality
    if level is None:   # the level meeting the background target, found on the calibration tiles
        grid = PatchGrid(image.shape[0], image.shape[1], coders.lossy.patch_size)
        background = Region(image, ~cells_to_mask(blade_cells(mask, grid), grid))
        estimate, = estimate_candidates(coders, ("hp-easn",), background, Target(settings.bg_psnr))
        if estimate.level is None:
            raise InputError(f"hp-easn cannot code this background: {estimate.left_out}")
        level = estimate.level
    regions, grid, cells = roi.compress_regions(image, mask, replace(settings, bg_quality=level, blade="lossless"),
                                                coders, times)
    return regions, grid, cells, {"background": {"coder": "hp-easn", "level": level},
                                  "blade": {"coder": "bitswap", "reason": "ROI-eML: Bit-swap seeded by the background"}}


def holds_roi_eml(bundle: Bundle) -> bool:
    """A ROI-eML bundle: Bit-swap blade on the lossy coder's patch grid (edge.codec.roi), not on cells."""
    return bundle.patch_size != CELL and any(r.name == "blade" and r.coded.coder == "bitswap" for r in bundle.regions)


def decompress_regions(bundle: Bundle, cells: np.ndarray, coders) -> np.ndarray:
    """Background pixels, then the blade cells pasted over them (hash-checked when exact)."""
    if holds_roi_eml(bundle):
        return roi.decompress_regions(bundle, cells, coders)
    try:
        background, blade = bundle.region("background"), bundle.region("blade")
    except KeyError as error:
        raise CodingError(f"ROI bundle: {error}") from None
    cell_mask = cells_to_mask(cells, bundle.grid)
    image = coders.region_decoder(background.coded).decode(background.coded, ~cell_mask)
    if cell_mask.any() or blade.coded.count:
        exact = coders.region_decoder(blade.coded).decode(blade.coded, cell_mask)
        pixels = np.ascontiguousarray(exact[cell_mask])
        if blade.pixel_sha256 is not None and pixels_sha256(pixels) != blade.pixel_sha256:
            raise CodingError("blade region decodes to pixels whose hash differs from the original's")
        image[cell_mask] = pixels
    return image
