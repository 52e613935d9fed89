"""``auto``: the coder and level that meet a region's target with the fewest bytes.

A trial encode of a whole 15.7 MP region costs seconds (classical) to minutes (learned), so
the choice is made on a *calibration mosaic*: up to eight 256-pixel tiles lying wholly inside
the region, spread over it, side by side in one small picture. For each candidate coder:

1. a learned coder first has its speed measured once per process (one tile); if coding the
   whole region would take longer than the time budget, it is left out, and the report says
   so (it joins as soon as it is fast enough: a GPU, TensorRT);
2. the lowest level whose mosaic reaches the PSNR target is found by bisection over the
   coder's levels (lossless coders: no search), and the mosaic's bits per pixel, times the
   region's pixels, estimate the region's cost.

The cheapest estimate wins and codes the whole region. A lossy winner's whole region is then
decoded and checked against the target; below it, the next level is tried (up to
``MAX_RAISES`` times), so the target holds per photo, not just on the tiles. The report names
the winner, its level, its bytes, and what every other candidate would have cost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.codec.contract import CodedRegion, Region
from edge.errors import EdgeError, InputError

TILE_SIDES = (256, 128, 64)     # tile sizes tried, largest first, until enough tiles fit in the region
MOSAIC_TILES = 8
MAX_RAISES = 4
TARGET_MARGIN_DB = 0.2          # aim the calibration a little above the target: fewer raises


@dataclass(frozen=True)
class Target:
    """What the user asked of a region: a PSNR in dB (lossy), or lossless (``psnr_db`` None)."""

    psnr_db: float | None = None

    @property
    def lossless(self) -> bool:
        return self.psnr_db is None


@dataclass(frozen=True)
class Candidate:
    coder: str
    level: int | None = None
    estimated_bytes: int | None = None
    tile_psnr_db: float | None = None
    seconds: float = 0.0
    left_out: str = ""              # why it was not tried (too slow, refused the input)


@dataclass(frozen=True)
class Choice:
    coded: CodedRegion
    coder: str
    level: int | None
    psnr_db: float | None           # measured on the whole region (lossy winners)
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    def report(self) -> dict:
        others = [c for c in self.candidates if c.coder != self.coder and c.estimated_bytes is not None]
        runner_up = min(others, key=lambda c: c.estimated_bytes) if others else None
        out = {"coder": self.coder, "level": self.level, "bytes": self.coded.bits // 8,
               "candidates": [{k: v for k, v in vars(c).items() if v not in (None, "")} for c in self.candidates]}
        if self.psnr_db is not None:
            out["psnr_db"] = round(self.psnr_db, 2)
        if runner_up is not None:
            out["runner_up"] = {"coder": runner_up.coder, "estimated_bytes": runner_up.estimated_bytes}
        return out


def psnr(decoded: np.ndarray, original: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the mask's pixels (inf when they are equal)."""
    count = int(mask.sum()) * original.shape[-1]
    if count == 0:
        return float("inf")
    # OpenCV's masked squared norm: exact (integer squares, float64 sum) and 20x faster than numpy here.
    squared = cv2.norm(decoded, original, cv2.NORM_L2SQR, mask=mask.astype(np.uint8))
    return float("inf") if squared == 0 else float(10 * np.log10(255.0 ** 2 * count / squared))


def calibration_mosaic(region: Region) -> Region | None:
    """Up to MOSAIC_TILES tiles wholly inside the region, spread evenly over it, side by side."""
    for side in TILE_SIDES:
        rows, cols = region.mask.shape[0] // side, region.mask.shape[1] // side
        if rows == 0 or cols == 0:
            continue
        inside = region.mask[:rows * side, :cols * side].reshape(rows, side, cols, side).all(axis=(1, 3))
        spots = np.argwhere(inside)
        if len(spots) < min(MOSAIC_TILES, 2):
            continue
        picks = spots[np.linspace(0, len(spots) - 1, min(MOSAIC_TILES, len(spots))).round().astype(int)]
        tiles = [region.image[r * side:(r + 1) * side, c * side:(c + 1) * side] for r, c in picks]
        if len(tiles) % 2:
            tiles = tiles[:-1] if len(tiles) > 1 else tiles
        half = max(1, len(tiles) // 2)
        rows_of_tiles = [np.concatenate(tiles[i:i + half], axis=1) for i in range(0, len(tiles), half)]
        mosaic = np.ascontiguousarray(np.concatenate(rows_of_tiles, axis=0))
        return Region(mosaic, np.ones(mosaic.shape[:2], dtype=bool), None, region.where)
    return None


def code_to_target(coders, names: tuple[str, ...], region: Region, target: Target, budget_s: float,
                   anchor: str | None = None) -> Choice:
    """Code ``region`` with the cheapest of ``names`` that meets ``target`` (module doc).

    ``anchor`` (a lossless coder) is also coded in full when another coder wins on the
    estimate, and the smaller of the two is sent: the result never costs more than the anchor.
    """
    if region.pixels == 0:
        coder = coders.region(anchor or names[0])
        level = None if target.lossless else coder.levels[0]
        return Choice(coder.encode(region, level), coder.name, level, None, ())
    mosaic = calibration_mosaic(region)
    candidates = [_calibrate(coders, name, region, mosaic, target, budget_s) for name in names]
    usable = [c for c in candidates if c.estimated_bytes is not None]
    if not usable:
        reasons = "; ".join(f"{c.coder}: {c.left_out}" for c in candidates)
        raise InputError(f"no coder can code this region ({reasons})", region.where)
    best = min(usable, key=lambda c: c.estimated_bytes)
    coded, level, measured = _code_whole(coders.region(best.coder), region, best.level, target)
    winner = best.coder
    if anchor is not None and winner != anchor and anchor in names:
        anchor_coded = coders.region(anchor).encode(region, None)
        if anchor_coded.bits < coded.bits:
            coded, level, winner = anchor_coded, None, anchor
    return Choice(coded, winner, level, measured, tuple(candidates))


def estimate_candidates(coders, names: tuple[str, ...], region: Region, target: Target) -> list[Candidate]:
    """Every candidate's calibrated level and estimated bytes, learned ones whatever their speed
    (benchmarks: what a learned coder would cost, next to what auto sent)."""
    mosaic = calibration_mosaic(region)
    return [_calibrate(coders, name, region, mosaic, target, float("inf")) for name in names]


def code_at_level(coders, name: str, region: Region, level: int | None) -> Choice:
    """One named coder at one level (no search): what ``--bg-quality`` asks for."""
    coder = coders.region(name)
    if level is not None and coder.levels and level not in coder.levels:
        raise InputError(f"{name}: level {level} is not one of its levels "
                         f"({coder.levels[0]}-{coder.levels[-1]})", region.where)
    coded = coder.encode(region, level if coder.levels else None)
    return Choice(coded, name, level, None, ())


def _calibrate(coders, name: str, region: Region, mosaic: Region | None, target: Target,
               budget_s: float) -> Candidate:
    started = time.perf_counter()
    try:
        coder = coders.region(name)
        if region.pixels == 0:     # nothing to code: the lowest level costs nothing
            return Candidate(name, coder.levels[0] if coder.levels else None, 0)
        if getattr(coder, "learned", False):
            seconds = _projected_seconds(coders, coder, region)
            if seconds > budget_s:
                return Candidate(name, left_out=f"projected {seconds:.0f} s for this region, "
                                                f"time budget {budget_s:g} s")
        sample = mosaic if mosaic is not None else region
        if target.lossless:
            level, quality = None, None
            bits = coder.encode(sample, None).bits
        else:
            level, bits, quality = _lowest_level(coder, sample, target.psnr_db + TARGET_MARGIN_DB)
        estimate = int(round(bits / 8 / sample.pixels * region.pixels))
    except EdgeError as error:     # a coder that refuses this input is left out, the others go on
        return Candidate(name, left_out=str(error))
    return Candidate(name, level, estimate, None if quality is None else round(quality, 2),
                     round(time.perf_counter() - started, 3))


def _lowest_level(coder, sample: Region, target_db: float) -> tuple[int, int, float]:
    """Bisection for the lowest level reaching ``target_db`` on ``sample`` (the top level if none does)."""
    low, high = 0, len(coder.levels) - 1
    found = None
    while low <= high:
        middle = (low + high) // 2
        coded = coder.encode(sample, coder.levels[middle])
        quality = psnr(coder.decode(coded, sample.mask), sample.image, sample.mask)
        if quality >= target_db:
            found, high = (coder.levels[middle], coded.bits, quality), middle - 1
        else:
            low = middle + 1
            if middle == len(coder.levels) - 1:
                found = (coder.levels[middle], coded.bits, quality)
    return found


def _code_whole(coder, region: Region, level: int | None, target: Target):
    """Code the whole region; a lossy classical result below the target is raised a level."""
    coded = coder.encode(region, level)
    if target.lossless or getattr(coder, "learned", False):
        return coded, level, None      # learned: a whole-region decode would cost as much as the coding
    measured = psnr(coder.decode(coded, region.mask), region.image, region.mask)
    raises = 0
    while measured < target.psnr_db and raises < MAX_RAISES and level != coder.levels[-1]:
        level = coder.levels[coder.levels.index(level) + 1]
        coded = coder.encode(region, level)
        measured = psnr(coder.decode(coded, region.mask), region.image, region.mask)
        raises += 1
    return coded, level, measured


def _projected_seconds(coders, coder, region: Region) -> float:
    """Seconds the learned ``coder`` would take on the region, from one timed tile (cached per process)."""
    if coder.name not in coders.speeds:
        side = 256
        tile = region.image[:side, :side]
        if tile.shape[:2] != (side, side):
            tile = np.zeros((side, side, 3), dtype=np.uint8)
        sample = Region(np.ascontiguousarray(tile), np.ones((side, side), dtype=bool))
        started = time.perf_counter()
        coder.encode(sample, coder.levels[len(coder.levels) // 2] if coder.levels else None)
        coders.speeds[coder.name] = (time.perf_counter() - started) / (side * side)
    return coders.speeds[coder.name] * region.pixels
