"""Render one photo and its ground-truth blade mask from a :class:`FrameSpec`.

Cost is kept low for 20 MP frames by doing the smooth parts at a working resolution of
about ``WORK_LONG_SIDE`` pixels (background, blade shading, exposure, vignetting, tone
curve) and only the sharp parts at full resolution:

1. background (float, working resolution) with the turbine's tower, nacelle and hub when in
   view (:mod:`edge.synth.turbine`), blade shading over the blade's band of rows;
2. auto exposure from the frame's mean brightness, vignetting, a soft-shoulder tone curve;
3. both layers enlarged to full resolution as 8-bit images; the ground gets back the
   texture finer than a working pixel from tiled blotchy noise, strip by strip;
4. blade outline filled at full resolution with antialiasing -> alpha; mask = alpha >= 128;
5. pits, cracks, receptors drawn at full resolution on the blade layer;
6. blade composited over the background inside its bounding box;
7. sensor grain (small per-channel noise) over the whole frame.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.synth.backgrounds import Scene, render_background
from edge.synth.blade import BladeGeometry, BladeModel, BladeView, draw_details, shade, shading_table
from edge.synth.lighting import Lighting
from edge.synth.turbine import TurbineParts, draw_parts

WORK_LONG_SIDE = 1200
SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices


@dataclass(frozen=True)
class FrameSpec:
    """Everything that determines one frame; rendering it twice gives the same pixels."""

    width: int
    height: int
    scene: Scene
    lighting: Lighting
    blade: BladeModel | None
    view: BladeView | None  # None: no blade in this frame
    seed: int  # grain and small random details
    grain: float = 2.0  # sensor noise, in 8-bit levels (about its standard deviation)
    vignette: float = 0.25
    kind: str = "closeup"  # closeup, far or empty (how the plan framed the blade)
    exposure: float | None = None  # fixed exposure (like an exposure lock); None: auto exposure
    parts: TurbineParts | None = None  # tower, nacelle, hub in view (background, never in the mask)


def work_size(width: int, height: int) -> tuple[int, int]:
    factor = max(1.0, max(width, height) / WORK_LONG_SIDE)
    return max(1, int(round(width / factor))), max(1, int(round(height / factor)))


def _tone(x: np.ndarray) -> np.ndarray:
    """Linear up to 0.75, then a soft shoulder to 1 (highlights roll off instead of clipping)."""
    knee = np.float32(0.75)
    over = np.maximum(x - knee, 0)
    return np.where(x > knee, knee + (1 - knee) * np.tanh(over / (1 - knee)), x)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(_tone(np.maximum(x, 0)) * 255 + 0.5, 0, 255).astype(np.uint8)


def render(spec: FrameSpec) -> tuple[np.ndarray, np.ndarray]:
    """The frame as RGB uint8 (H x W x 3) and the blade mask as bool (H x W)."""
    width, height = spec.width, spec.height
    ww, wh = work_size(width, height)
    sx, sy = width / ww, height / wh
    rng = np.random.default_rng([spec.seed, 5])  # blade details; the grain has its own stream
    background, detail_rows = render_background(spec.scene, spec.lighting, ww, wh)
    ground_color = background[wh // 2:].reshape(-1, 3).mean(axis=0)  # light bounced onto the blade
    if spec.parts is not None:
        draw_parts(background, spec.parts, width, height, spec.scene.camera(ww, wh).rotation(), spec.lighting,
                   ground_color)

    geometry = outline = None
    if spec.view is not None and spec.blade is not None:
        geometry = BladeGeometry(spec.blade, spec.view, width, height)
        outline = geometry.outline()
    box = None
    if outline is not None:
        x0, y0 = np.floor(outline.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(outline.max(axis=0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 > x0 and y1 > y0:
            box = (int(x0), int(y0), int(x1), int(y1))

    # blade shading over its band of working pixels (with a margin for the enlargement)
    blade_work = coverage = band = None
    if box is not None:
        band = (max(int(box[0] / sx) - 2, 0), max(int(box[1] / sy) - 2, 0),
                min(int(math.ceil(box[2] / sx)) + 2, ww), min(int(math.ceil(box[3] / sy)) + 2, wh))
        rotation = spec.scene.camera(ww, wh).rotation()
        lut = shading_table(spec.view.surface, spec.view, rotation, spec.lighting, ground_color)
        blade_work = shade(geometry, lut, ww, wh, band, rng)
        coverage = np.zeros((wh, ww), np.uint8)
        scaled = np.round((outline + 0.5) / np.array([sx, sy]) - 0.5) * (1 << SHIFT)
        cv2.fillPoly(coverage, [scaled.astype(np.int32).reshape(-1, 1, 2)], 255, cv2.LINE_AA, SHIFT)

    # auto exposure on the mean brightness, like the camera's matrix metering
    luma = np.array([0.3, 0.59, 0.11], np.float32)
    mean = float((background @ luma).mean())
    if blade_work is not None:
        bx0, by0, bx1, by1 = band
        share = coverage[by0:by1, bx0:bx1].astype(np.float32) / 255
        region = background[by0:by1, bx0:bx1] @ luma
        mean += float(((blade_work @ luma - region) * share).sum()) / (ww * wh)
    exposure = np.float32(np.clip(0.46 / max(mean, 1e-3), 0.55, 2.6) * spec.lighting.exposure)
    if spec.exposure is not None:
        exposure = np.float32(spec.exposure)
    ys = (np.arange(wh, dtype=np.float32) - (wh - 1) / 2) / (wh / 2)
    xs = (np.arange(ww, dtype=np.float32) - (ww - 1) / 2) / (ww / 2)
    falloff = 1 - np.float32(spec.vignette) * (xs[None, :] ** 2 * 0.6 + ys[:, None] ** 2 * 0.4)

    frame = cv2.resize(_to_uint8(background * (falloff * exposure)[..., None]), (width, height),
                       interpolation=cv2.INTER_LINEAR)
    if width > ww:  # enlarged: put back texture finer than a working pixel (grass, soil, ripples)
        _add_detail(frame, detail_rows * float(min(exposure, 1.5)), np.random.default_rng([spec.seed, 7]))
    mask = np.zeros((height, width), np.uint8)
    if blade_work is not None:
        bx0, by0, bx1, by1 = band
        blade8 = _to_uint8(blade_work * (falloff[by0:by1, bx0:bx1] * exposure)[..., None])
        x0, y0, x1, y1 = box
        # Enlarge the band by the working scale; its first pixel starts at bx0 * sx in the frame
        # (rounded: the layer is smooth and reaches past the outline, so half a pixel is harmless).
        big = cv2.resize(blade8, None, fx=sx, fy=sy, interpolation=cv2.INTER_LINEAR)
        ox, oy = x0 - int(round(bx0 * sx)), y0 - int(round(by0 * sy))
        if big.shape[0] < oy + y1 - y0 or big.shape[1] < ox + x1 - x0:  # rounding fell short at an edge
            big = cv2.copyMakeBorder(big, 0, max(oy + y1 - y0 - big.shape[0], 0), 0,
                                     max(ox + x1 - x0 - big.shape[1], 0), cv2.BORDER_REPLICATE)
        patch = big[oy:oy + (y1 - y0), ox:ox + (x1 - x0)]  # views: OpenCV writes into them in place
        draw_details(patch, geometry, (x0, y0), float(exposure) * 0.9, rng)
        alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
        local = np.round((outline - np.array([x0, y0])) * (1 << SHIFT)).astype(np.int32)
        cv2.fillPoly(alpha, [local.reshape(-1, 1, 2)], 255, cv2.LINE_AA, SHIFT)
        region = frame[y0:y1, x0:x1]
        edge = cv2.findNonZero(cv2.inRange(alpha, 1, 254))  # antialiased border pixels, (x, y)
        if edge is not None:
            edge = edge.reshape(-1, 2)
            ex, ey = edge[:, 0], edge[:, 1]
            weight = alpha[ey, ex].astype(np.float32)[:, None] / 255
            mixed = np.round(region[ey, ex] * (1 - weight) + patch[ey, ex] * weight).astype(np.uint8)
        cv2.copyTo(patch, cv2.compare(alpha, 255, cv2.CMP_EQ), region)
        if edge is not None:
            region[ey, ex] = mixed
        cv2.threshold(alpha, 127, 1, cv2.THRESH_BINARY, dst=mask[y0:y1, x0:x1])
    _add_grain(frame, spec.grain, np.random.default_rng([spec.seed, 6]))
    return frame, mask.view(bool)


DETAIL_LEVELS = 4
DETAIL_STRENGTH = 11.0  # 8-bit levels at full detail (standard deviation)
DETAIL_STRIP = 48  # rows sharing one detail level


@functools.lru_cache(maxsize=1)
def _detail_tiles() -> tuple[list[tuple[np.ndarray, np.ndarray]], ...]:
    """Two seamless blotchy noise tiles of prime sizes (their sum never visibly repeats), each
    as (plus, minus) 8-bit pairs for DETAIL_LEVELS amplitudes. Luminance only."""
    rng = np.random.default_rng(20240612)
    tiles = []
    for (h, w), sigma, share in (((1021, 1019), 0.9, 0.75), ((613, 617), 2.2, 0.6)):
        pad = int(4 * sigma) + 1
        wrapped = np.pad(rng.standard_normal((h, w)).astype(np.float32), pad, mode="wrap")
        noise = cv2.GaussianBlur(wrapped, (0, 0), sigma)[pad:pad + h, pad:pad + w]
        noise *= np.float32(share / noise.std())
        pairs = []
        for level in range(1, DETAIL_LEVELS + 1):
            v = noise * np.float32(DETAIL_STRENGTH * level / DETAIL_LEVELS)
            plus = cv2.cvtColor(np.clip(v, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
            minus = cv2.cvtColor(np.clip(-v, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
            pairs.append((plus, minus))
        tiles.append(pairs)
    return tuple(tiles)


def _add_detail(frame: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> None:
    """Add blotchy texture in place, strip by strip, with the amplitude given per working row."""
    height, width = frame.shape[:2]
    for pairs in _detail_tiles():
        th, tw = pairs[0][0].shape[:2]
        oy, ox = int(rng.integers(0, th)), int(rng.integers(0, tw))
        y = 0
        while y < height:
            ty = (y + oy) % th
            h = min(DETAIL_STRIP - y % DETAIL_STRIP, height - y, th - ty)
            amplitude = float(rows[min(int(y * len(rows) / height), len(rows) - 1)])
            level = min(int(round(amplitude * DETAIL_LEVELS)), DETAIL_LEVELS)
            if level > 0:
                plus, minus = pairs[level - 1]
                x, tx = 0, ox
                while x < width:  # pieces that stay inside the tile
                    w = min(width - x, tw - tx)
                    block = frame[y:y + h, x:x + w]
                    cv2.add(block, plus[ty:ty + h, tx:tx + w], dst=block)
                    cv2.subtract(block, minus[ty:ty + h, tx:tx + w], dst=block)
                    x, tx = x + w, 0
            y += h


@functools.lru_cache(maxsize=1)
def _grain_tile() -> np.ndarray:
    """Random bytes, 1021 x 1019 x 3 (primes: repeats never line up with image structure)."""
    return np.frombuffer(np.random.default_rng(20240611).bytes(1021 * 1019 * 3), np.uint8).reshape(1021, 1019, 3)


def _add_grain(frame: np.ndarray, level: float, rng: np.random.Generator) -> None:
    """Sensor noise in place: per sample, the difference of two small uniform integers.

    The integers are the low and high nibble of bytes from a fixed random tile, shifted by
    a random offset per frame and added block by block with saturating 8-bit adds: cheap at
    20 MP (no frame-sized temporaries).
    """
    if level <= 0:
        return
    bits = 1 if level < 1.0 else 2 if level < 2.5 else 3
    low = np.uint8((1 << bits) - 1)
    tile = np.roll(_grain_tile(), (int(rng.integers(0, 1021)), int(rng.integers(0, 1019))), axis=(0, 1))
    plus, minus = tile & low, (tile >> np.uint8(4)) & low
    th, tw = tile.shape[:2]
    height, width = frame.shape[:2]
    for y in range(0, height, th):
        for x in range(0, width, tw):
            block = frame[y:y + th, x:x + tw]
            h, w = block.shape[:2]
            cv2.add(block, plus[:h, :w], dst=block)
            cv2.subtract(block, minus[:h, :w], dst=block)
