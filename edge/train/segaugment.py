"""Training-time augmentation of segmentation crops: geometry, pasted blades, drawn decoys and
stains, photometry, channel shuffle and sunlit-field recolouring. Every change keeps the mask
true to the pixels."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from edge.segment.paint import painted_surface
from edge.train.segdecoys import draw_decoy
from edge.train.segstains import shade_blade, stain_blade

if TYPE_CHECKING:
    from edge.train.seg import SegTrainConfig

BLADE_ZOOM = (2.0, 4.0)   # zoom range of --blade-zoom crops: a 288 crop then spans 1/4-1/8 of a frame's width


@dataclass
class Sample:
    """One training frame, cached at 1.25x the network size."""
    name: str
    rgb: np.ndarray               # uint8, cached size
    mask: np.ndarray              # uint8 0/1, cached size
    view: str
    source: int                   # index of the data directory it came from


def augment(sample: Sample, out_hw: tuple[int, int], rng: np.random.Generator,
            config: SegTrainConfig, donors: Sequence[Sample] = ()) -> tuple[np.ndarray, np.ndarray]:
    """A random flip / rotation / zoom / crop of one sample (zoomed far onto its blade for a
    ``config.blade_zoom`` share), a blade of one of ``donors`` pasted on
    it for a ``config.blade_paste`` share, a decoy (``edge.train.segdecoys``) for a
    ``config.decoys`` share, stains on the blade (``edge.train.segstains``) for a
    ``config.blade_stains`` share, one long side of it in shade for a ``config.blade_shade`` share,
    then the photometric changes; (rgb, mask) of size ``out_hw``.

    Scale 1 is the network scale (the long side of the sample becomes ``long_side``).
    """
    out_h, out_w = out_hw
    h, w = sample.rgb.shape[:2]
    zoom = math.exp(rng.uniform(math.log(config.zoom_min), math.log(config.zoom_max)))
    angle = rng.uniform(-config.rotate, config.rotate)
    scale = config.long_side / max(h, w) * zoom
    # Random centre keeping the crop inside the scaled image where it fits.
    slack_x = max(0.0, (w * scale - out_w) / 2) / scale
    slack_y = max(0.0, (h * scale - out_h) / 2) / scale
    cx = w / 2 + rng.uniform(-slack_x, slack_x)
    cy = h / 2 + rng.uniform(-slack_y, slack_y)
    if config.blade_zoom > 0 and sample.mask.any() and rng.random() < config.blade_zoom:
        # A close-up whose frame the blade fills: zoom far in on one of its pixels. Drawn after the
        # usual crop, so that runs without it draw the same random numbers as before.
        zoom = math.exp(rng.uniform(math.log(BLADE_ZOOM[0]), math.log(BLADE_ZOOM[1])))
        scale = config.long_side / max(h, w) * zoom
        rows, cols = np.nonzero(sample.mask)
        pick = rng.integers(len(rows))
        cx, cy = float(cols[pick]), float(rows[pick])
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    matrix[:, 2] += (out_w / 2 - cx, out_h / 2 - cy)
    rgb = cv2.warpAffine(sample.rgb, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(sample.mask.astype(np.float32), matrix, (out_w, out_h),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101) > 0.5
    if rng.random() < 0.5:
        rgb, mask = rgb[:, ::-1], mask[:, ::-1]
    if rng.random() < 0.5:
        rgb, mask = rgb[::-1], mask[::-1]
    if donors and config.blade_paste > 0 and rng.random() < config.blade_paste:
        rgb, mask = paste_blade(rgb, mask, donors[rng.integers(len(donors))], rng)
    if config.decoys > 0 and rng.random() < config.decoys:
        rgb = draw_decoy(rgb, mask, rng, tuple(config.decoy_kinds.split(",")))
    if config.blade_stains > 0 and mask.any() and rng.random() < config.blade_stains:
        rgb = stain_blade(rgb, mask, rng)
    if config.blade_shade > 0 and mask.any() and rng.random() < config.blade_shade:
        rgb = shade_blade(rgb, mask, rng)
    # Photometric jitter: contrast and brightness, then a colour cast (per-channel gain) and
    # saturation, since the scenes differ in light and white balance.
    rgb = rgb.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
    if config.colour_jitter > 0:
        jitter = config.colour_jitter
        rgb = rgb * rng.uniform(1 - jitter, 1 + jitter, size=3).astype(np.float32)
        grey = rgb.mean(axis=2, keepdims=True)
        rgb = grey + (rgb - grey) * rng.uniform(1 - 2 * jitter, 1 + 2 * jitter)
    # White and grey paint stay white and grey under a channel shuffle; sky, sea and grass change
    # hue, so the network cannot take "not blue and not brown" for blade (it misses blades on grass).
    if config.channel_shuffle > 0 and rng.random() < config.channel_shuffle:
        rgb = rgb[..., rng.permutation(3)]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    if config.field_recolour > 0 and rng.random() < config.field_recolour:
        rgb = as_sunlit_field(rgb, mask.astype(bool), rng)
    return rgb, mask.astype(np.uint8)


def as_sunlit_field(rgb: np.ndarray, blade: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``rgb`` with its coloured background turned into bright, saturated green or yellow-green of
    the same texture; the blade and every other white or grey surface (tower, nacelle, roofs, pale
    sky) untouched, so they stay what the network must tell apart.

    wta-train shows blades over sky, sea and brown ground; real inspections also look down on
    sunlit fields, whose colour and brightness statistics the networks never saw (batch-norm
    statistics taken from such photos recover the blades: docs/segmentation.md)."""
    background = ~blade & ~painted_surface(rgb)
    if not background.any():
        return rgb
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    value = hsv[..., 2][background]
    texture = value - value.mean()
    spread = max(float(value.std()), 1.0)
    # OpenCV hue is 0-180: 30-50 is yellow-green to green.
    hsv[..., 0][background] = rng.uniform(30, 50)
    hsv[..., 1][background] = np.clip(rng.uniform(110, 200) + texture * 0.3, 0, 255)
    hsv[..., 2][background] = np.clip(rng.uniform(110, 190) + texture / spread * 25, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def paste_donors(samples: Sequence[Sample]) -> list[Sample]:
    """The samples whose blade can be cut out and pasted: some blade, not most of the frame (a
    blade that fills its frame would come with the frame's straight edges)."""
    return [s for s in samples if 0.01 <= s.mask.mean() <= 0.4]


def pasted_blade_fraction(donors: Sequence[Sample], out_hw: tuple[int, int], draws: int = 64) -> float:
    """The mean share of a crop of size ``out_hw`` that one pasted blade covers, measured on
    ``draws`` pastes with a random generator of its own (the training draws stay as they are)."""
    if not donors:
        return 0.0
    rng = np.random.default_rng(0)
    empty_rgb, empty_mask = np.zeros((*out_hw, 3), np.uint8), np.zeros(out_hw, bool)
    covered = [paste_blade(empty_rgb, empty_mask, donors[rng.integers(len(donors))], rng)[1].mean()
               for _ in range(draws)]
    return float(np.mean(covered))


def paste_blade(rgb: np.ndarray, mask: np.ndarray, donor: Sample,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` and ``mask`` with the blade of ``donor`` cut out by its mask, turned, scaled and
    pasted at a random place (edges softened by a pixel); the pasted pixels become blade.

    wta-train shows large close blades only over sky and sea; inspections from above also show
    them over fields and roofs. The pasted blade's long side is 0.4 to 1.6 times the crop's, so
    it often crosses the whole crop as a close blade does."""
    ys, xs = np.nonzero(donor.mask)
    if len(ys) == 0:
        return rgb, mask
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    piece = donor.rgb[y0:y1, x0:x1]
    alpha = donor.mask[y0:y1, x0:x1].astype(np.float32)
    out_h, out_w = mask.shape
    scale = rng.uniform(0.4, 1.6) * max(out_h, out_w) / max(y1 - y0, x1 - x0)
    matrix = cv2.getRotationMatrix2D(((x1 - x0) / 2, (y1 - y0) / 2), rng.uniform(0, 360), scale)
    matrix[:, 2] += (rng.uniform(0, out_w) - (x1 - x0) / 2, rng.uniform(0, out_h) - (y1 - y0) / 2)
    # Replicated borders: the blade's own colour, not black, at the edges of its box.
    piece = cv2.warpAffine(piece, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.GaussianBlur(cv2.warpAffine(alpha, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR), (3, 3), 0)
    blended = alpha[..., None] * piece + (1 - alpha[..., None]) * rgb
    return np.rint(blended).astype(np.uint8), np.logical_or(mask, alpha > 0.5)
