"""Render one photo and its ground-truth blade mask from a :class:`FrameSpec`.

Cost is kept low for 20 MP frames by doing the smooth parts at a working resolution of
about ``WORK_LONG_SIDE`` pixels (background, blade shading, exposure, vignetting, tone
curve) and only the sharp parts at full resolution:

1. background (float, working resolution), blade shading over the blade's band of rows;
2. auto exposure from the frame's mean brightness, vignetting, a soft-shoulder tone curve;
3. both layers enlarged to full resolution as 8-bit images;
4. blade outline filled at full resolution with antialiasing -> alpha; mask = alpha >= 128;
5. pits, cracks, receptors drawn at full resolution on the blade layer;
6. blade composited over the background inside its bounding box;
7. sensor grain (luminance noise) over the whole frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.synth.backgrounds import Scene, render_background
from edge.synth.blade import BladeGeometry, BladeModel, BladeView, draw_details, shade, shading_table
from edge.synth.lighting import Lighting

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
    rng = np.random.default_rng([spec.seed, 5])
    background = render_background(spec.scene, spec.lighting, ww, wh)

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
        ground_color = background[wh // 2:].reshape(-1, 3).mean(axis=0)
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
    ys = (np.arange(wh, dtype=np.float32) - (wh - 1) / 2) / (wh / 2)
    xs = (np.arange(ww, dtype=np.float32) - (ww - 1) / 2) / (ww / 2)
    falloff = 1 - np.float32(spec.vignette) * (xs[None, :] ** 2 * 0.6 + ys[:, None] ** 2 * 0.4)

    frame = cv2.resize(_to_uint8(background * (falloff * exposure)[..., None]), (width, height),
                       interpolation=cv2.INTER_LINEAR)
    mask = np.zeros((height, width), bool)
    if blade_work is not None:
        bx0, by0, bx1, by1 = band
        blade8 = _to_uint8(blade_work * (falloff[by0:by1, bx0:bx1] * exposure)[..., None])
        x0, y0, x1, y1 = box
        # enlarge the band onto the full-resolution box with the same pixel-centre alignment as resize
        affine = np.array([[sx, 0, (bx0 + 0.5) * sx - 0.5 - x0], [0, sy, (by0 + 0.5) * sy - 0.5 - y0]])
        patch = cv2.warpAffine(blade8, affine, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        draw_details(patch, geometry, (x0, y0), float(exposure) * 0.9, rng)
        alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
        local = np.round((outline - np.array([x0, y0])) * (1 << SHIFT)).astype(np.int32)
        cv2.fillPoly(alpha, [local.reshape(-1, 1, 2)], 255, cv2.LINE_AA, SHIFT)
        region = frame[y0:y1, x0:x1]
        inside = alpha == 255
        edge = np.nonzero((alpha > 0) & ~inside)
        weight = alpha[edge].astype(np.float32)[:, None] / 255
        mixed = region[edge] * (1 - weight) + patch[edge] * weight
        cv2.copyTo(patch, inside.view(np.uint8), region)
        region[edge] = np.round(mixed).astype(np.uint8)
        mask[y0:y1, x0:x1] = alpha >= 128
    _add_grain(frame, spec.grain, rng)
    return frame, mask


def _add_grain(frame: np.ndarray, level: float, rng: np.random.Generator) -> None:
    """Luminance noise in place: difference of two small uniform integers (triangular).

    Random bytes and saturating 8-bit adds keep this cheap at 20 MP.
    """
    if level <= 0:
        return
    height, width = frame.shape[:2]
    bits = 1 if level < 1.0 else 2 if level < 2.5 else 3
    raw = np.frombuffer(rng.bytes(height * width), np.uint8).reshape(height, width)
    low = np.uint8((1 << bits) - 1)
    plus = cv2.cvtColor(raw & low, cv2.COLOR_GRAY2RGB)
    minus = cv2.cvtColor((raw >> np.uint8(4)) & low, cv2.COLOR_GRAY2RGB)
    cv2.add(frame, plus, dst=frame)
    cv2.subtract(frame, minus, dst=frame)
