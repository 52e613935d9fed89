"""Ground textures seen in perspective: farmland, pasture and sea, as a stack of detail levels.

A scene is textured on square canvases centred on the turbine, each covering four times the
width of the previous one (``LEVEL_RATIO``), like a mipmap. Noise is built coarse to fine: a
finer level starts from the enlarged centre of the next coarser one and adds only the
octaves small enough for its own pixel size, so all levels agree where they overlap. A pixel
of the photo takes its colour from the level whose texel size matches the ground area the
pixel covers (``Rays.footprint``), blending between two levels, so distant ground neither
flickers (aliasing) nor looks blurred.

Land colour is computed analytically from ground coordinates (field strips, parcels, tracks,
hedges, roads, crop rows), so it is sharp at every level. Sea levels store wave slopes and
foam; the colour is made per pixel in :mod:`edge.synth.backgrounds` because water reflects
the sky at an angle that depends on the view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from edge.synth.noise import smoothstep, value_noise

LEVEL_RATIO = 4
LACUNARITY = 2.13


@dataclass(frozen=True)
class NoiseChannel:
    """One channel of fractal noise with physical feature sizes (metres)."""

    max_cell_m: float
    hurst: float  # amplitude of an octave is (cell / max_cell) ** hurst
    aspect: float = 1.0  # features this many times longer along the first ground axis


class TextureLevels:
    """Square texture canvases, level k with ``finest_mpp * 4**k`` metres per texel.

    Levels hold their noise and are coloured on first use: a view looking down never
    pays for the far levels.
    """

    def __init__(self, noises: list[np.ndarray], colorize: "Colorize", finest_mpp: float,
                 center: tuple[float, float]):
        self.noises = noises
        self.colorize = colorize
        self.size = noises[0].shape[0]
        self.mpps = [finest_mpp * LEVEL_RATIO**k for k in range(len(noises))]
        self.center = center
        self.textures: dict[int, np.ndarray] = {}

    def texture(self, k: int) -> np.ndarray:
        if k not in self.textures:
            coords = (np.arange(self.size, dtype=np.float32) - (self.size - 1) / 2.0) * np.float32(self.mpps[k])
            x = coords[None, :] + np.float32(self.center[0])
            y = coords[:, None] + np.float32(self.center[1])
            self.textures[k] = np.ascontiguousarray(self.colorize(self.noises[k], x, y, self.mpps[k]), np.float32)
            self.noises[k] = None  # type: ignore[call-overload]
        return self.textures[k]

    def sample(self, ground_a: np.ndarray, ground_b: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """Texture values at the given ground points (metres), float32 H x W x C."""
        half = (self.size - 1) / 2.0
        ground_a = ground_a - np.float32(self.center[0])
        ground_b = ground_b - np.float32(self.center[1])
        # Continuous level: 0 where one texel is about 1.5 pixels' worth of ground.
        level = np.log(np.maximum(footprint, 1e-6) / np.float32(self.mpps[0] * 1.5))
        level = np.clip(level / np.float32(math.log(LEVEL_RATIO)), 0, len(self.mpps) - 1)
        # Leave a level before its canvas ends.
        reach = np.maximum(np.abs(ground_a), np.abs(ground_b))
        for k in range(len(self.mpps) - 1):
            outside = np.clip((reach / np.float32(half * self.mpps[k]) - 0.85) / 0.15, 0, 1)
            level = np.where(outside > 0, np.maximum(level, k + outside), level)
        out = None
        for k, mpp in enumerate(self.mpps):
            weight = np.clip(1.0 - np.abs(level - k), 0, 1)
            rows = np.flatnonzero(weight.any(axis=1))
            if rows.size == 0:
                continue
            band = slice(rows[0], rows[-1] + 1)  # perspective makes each level a band of rows
            # (far-off points are clamped: OpenCV's reflection gets slow for huge coordinates)
            map_x = np.clip(ground_a[band] / np.float32(mpp) + np.float32(half), -3 * self.size, 4 * self.size)
            map_y = np.clip(ground_b[band] / np.float32(mpp) + np.float32(half), -3 * self.size, 4 * self.size)
            values = cv2.remap(self.texture(k), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            if values.ndim == 2:
                values = values[..., None]
            if out is None:
                out = np.zeros(footprint.shape + (values.shape[2],), np.float32)
            out[band] += values * weight[band][..., None]
        return out


Colorize = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def build_levels(
    channels: list[NoiseChannel],
    colorize: Colorize,
    rng: np.random.Generator,
    size: int,
    finest_mpp: float,
    count: int,
    center: tuple[float, float] = (0.0, 0.0),
) -> TextureLevels:
    """Build ``count`` levels, coarse to fine; ``colorize(noise, x_m, y_m, mpp)`` makes a texture."""
    size = max(8, size - size % 8)
    mpps = [finest_mpp * LEVEL_RATIO**k for k in range(count)]
    noises: list[np.ndarray] = [None] * count  # type: ignore[list-item]
    noise = None
    for k in reversed(range(count)):
        mpp = mpps[k]
        if noise is None:
            noise = np.zeros((size, size, len(channels)), np.float32)
            coarser_cell_limit = math.inf
        else:
            # The centre quarter of the coarser level covers this level exactly.
            quarter, start = size // 4, 3 * size // 8
            crop = noise[start:start + quarter, start:start + quarter]
            noise = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
            if noise.ndim == 2:
                noise = noise[..., None]
            coarser_cell_limit = 2 * mpps[k + 1]
        for index, channel in enumerate(channels):
            cell = channel.max_cell_m
            while cell >= 2 * mpp:
                if cell < coarser_cell_limit:
                    amplitude = (cell / channel.max_cell_m) ** channel.hurst
                    noise[..., index] += amplitude * value_noise(
                        (size, size), (cell / mpp, cell * channel.aspect / mpp), rng)
                cell /= LACUNARITY
        noises[k] = noise
    return TextureLevels(noises, colorize, finest_mpp, center)


# ---------------------------------------------------------------------------------------
# Land: strips of parcels with crops, tracks, hedges with trees, roads, the turbine's pad.

LAND_CHANNELS = [
    NoiseChannel(400.0, 1.0),  # 0: gentle bending of parcel borders
    NoiseChannel(120.0, 0.35),  # 1: brightness variation at every scale
    NoiseChannel(40.0, 0.55),  # 2: trees and bushes
    NoiseChannel(700.0, 0.8),  # 3: large-scale hue drift (soil moisture)
    NoiseChannel(4.0, 0.25),  # 4: grass tufts, crop texture, tree crowns (near levels only)
]

# name: (colour sRGB 0..1, weight in farmland, weight in pasture, row spacing m, row contrast)
LAND_COVERS = {
    "young crop": ((0.34, 0.47, 0.20), 3.0, 0.5, 1.6, 0.10),
    "crop": ((0.27, 0.40, 0.16), 3.0, 0.5, 0.9, 0.06),
    "pasture": ((0.36, 0.50, 0.22), 1.5, 6.0, 9.0, 0.05),
    "lush grass": ((0.30, 0.46, 0.18), 1.0, 4.0, 12.0, 0.06),
    "ripe grain": ((0.70, 0.63, 0.40), 1.5, 0.2, 0.5, 0.05),
    "stubble": ((0.66, 0.59, 0.45), 1.0, 0.3, 2.5, 0.12),
    "ploughed": ((0.45, 0.36, 0.28), 1.5, 0.2, 1.2, 0.18),
    "bare soil": ((0.53, 0.42, 0.37), 1.2, 0.2, 3.0, 0.10),
    "dry grass": ((0.58, 0.56, 0.37), 0.5, 1.5, 10.0, 0.04),
}
TRACK = np.array([0.63, 0.58, 0.49], np.float32)
ASPHALT = np.array([0.36, 0.36, 0.37], np.float32)
TREES = np.array([0.12, 0.20, 0.09], np.float32)


def _hash(*keys: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic pseudo-random uint32 for each integer key tuple."""
    h = np.full(np.broadcast(*keys).shape, salt & 0xFFFFFFFF, np.uint32)
    for key in keys:
        h = (h ^ key.astype(np.int32).view(np.uint32)) * np.uint32(2654435761)
        h ^= h >> np.uint32(15)
    h *= np.uint32(2246822519)
    h ^= h >> np.uint32(13)
    return h


def _unit(h: np.ndarray, bits: int) -> np.ndarray:
    """Ten bits of a hash starting at ``bits`` as a value in [0, 1)."""
    return ((h >> np.uint32(bits)) & np.uint32(1023)).astype(np.float32) * np.float32(1 / 1024)


@dataclass(frozen=True)
class LandLayout:
    """Field strips and roads in metres; everything else follows from hashes of parcel ids."""

    angle: float
    strip_bounds: np.ndarray  # sorted borders of the strips along the first axis
    strip_offsets: np.ndarray
    strip_widths: np.ndarray  # parcel length along the second axis, per strip
    cover_cdf: np.ndarray
    roads: tuple[tuple[float, float, float], ...]  # (direction angle, offset m, width m)
    salt: int
    hedge_rate: float
    tree_rate: float


def make_land_layout(rng: np.random.Generator, pasture: bool) -> LandLayout:
    width_lo, width_hi = (90.0, 320.0) if pasture else (50.0, 200.0)
    widths = rng.uniform(width_lo, width_hi, 400)
    bounds = np.concatenate([[0.0], np.cumsum(widths)]) - widths.sum() / 2 + rng.uniform(0, 50)
    weights = np.array([cover[2] if pasture else cover[1] for cover in LAND_COVERS.values()])
    roads = []
    for _ in range(int(rng.integers(1, 4))):
        roads.append((float(rng.uniform(0, math.pi)), float(rng.uniform(-900, 900)), float(rng.uniform(5, 8))))
    return LandLayout(
        angle=float(rng.uniform(0, math.pi)),
        strip_bounds=bounds.astype(np.float32),
        strip_offsets=rng.uniform(0, 500, 401).astype(np.float32),
        strip_widths=rng.uniform(width_lo * 1.5, width_hi * 3.0, 401).astype(np.float32),
        cover_cdf=(np.cumsum(weights) / weights.sum()).astype(np.float32),
        roads=tuple(roads),
        salt=int(rng.integers(0, 2**31)),
        hedge_rate=0.5 if pasture else 0.3,
        tree_rate=0.05 if pasture else 0.02,
    )


def colorize_land(layout: LandLayout) -> Colorize:
    covers = list(LAND_COVERS.values())
    colors = np.array([c[0] for c in covers], np.float32)
    spacing = np.array([c[3] for c in covers], np.float32)
    contrast = np.array([c[4] for c in covers], np.float32)
    f32 = np.float32

    def colorize(noise: np.ndarray, x: np.ndarray, y: np.ndarray, mpp: float) -> np.ndarray:
        warp, albedo, bushes, moisture, fine = (noise[..., i] for i in range(5))
        edge = max(mpp, 0.15)  # soften borders over about one texel
        cos_a, sin_a = f32(math.cos(layout.angle)), f32(math.sin(layout.angle))
        along = cos_a * x + sin_a * y + warp * f32(12.0)
        across = -sin_a * x + cos_a * y + moisture * f32(10.0)
        strip = np.clip(np.searchsorted(layout.strip_bounds, along), 1, len(layout.strip_bounds) - 1)
        dist_strip = np.minimum(along - layout.strip_bounds[strip - 1], layout.strip_bounds[strip] - along)
        strip_width = layout.strip_widths[strip]
        position = (across + layout.strip_offsets[strip]) / strip_width
        parcel = np.floor(position)
        frac = position - parcel
        dist_parcel = np.minimum(frac, 1 - frac) * strip_width
        h = _hash(strip, parcel, salt=layout.salt)
        u_cover, u_rows, u_tone = _unit(h, 0), _unit(h, 10), _unit(h, 20)
        cover = np.minimum(np.searchsorted(layout.cover_cdf, u_cover), len(covers) - 1)

        # crop rows along or across the parcel, faded out where a texel cannot show them
        row_spacing = spacing[cover] * (0.7 + 0.6 * u_rows)
        row_coord = np.where(u_rows < 0.6, along, across)
        rows = np.sin(row_coord * f32(2 * math.pi) / row_spacing)
        visible = smoothstep(2.5, 5.0, row_spacing * f32(1 / mpp))
        tone = 1.0 + 0.16 * (u_tone - 0.5) + 0.12 * albedo + 0.10 * fine + contrast[cover] * rows * visible
        rgb = colors[cover] * tone[..., None]
        # moisture drifts the hue between yellowish and bluish green
        rgb[..., 0] += f32(0.025) * moisture
        rgb[..., 2] -= f32(0.02) * moisture

        # borders: tracks along some strip borders, hedges with trees along others
        u_border = _unit(_hash(strip, salt=layout.salt + 3), 4)
        track_w = smoothstep(2.0 + edge, 2.0 - edge, dist_strip) * (u_border < 0.35)
        track_w = np.maximum(track_w, smoothstep(1.0 + edge, 1.0 - edge, dist_parcel) * (u_cover < 0.25))
        hedge_near = (u_border > 1 - layout.hedge_rate) * smoothstep(7.0, 2.0, dist_strip)
        tree_field = bushes + 1.2 * hedge_near + (2.0 * layout.tree_rate - 1.0) + 0.15 * fine
        trees = smoothstep(0.0, 0.08, tree_field)
        # straight roads, the turbine's gravel crane pad at the origin and its access track
        road_w = np.zeros_like(trees)
        for angle, offset, width in layout.roads:
            dist = np.abs(f32(math.cos(angle)) * x + f32(math.sin(angle)) * y - f32(offset))
            road_w = np.maximum(road_w, smoothstep(width / 2 + edge, width / 2 - edge, dist))
        pad = smoothstep(22 + edge, 22 - edge, np.maximum(np.abs(x + 10), np.abs(y * 1.6)))
        access = smoothstep(2.5 + edge, 2.5 - edge, np.abs(y - 0.05 * x)) * (x > 0)
        gravel = np.maximum(track_w, np.maximum(pad, access))
        rgb = _mix(rgb, TRACK * (1 + 0.08 * albedo + 0.06 * fine)[..., None], gravel * (1 - trees))
        # tree crowns: bumpy, darker towards their edges
        crowns = 1.0 + 0.45 * np.clip(fine * 1.5, -1, 1) + 0.15 * albedo - 0.3 * smoothstep(0.25, 0.0, tree_field)
        rgb = _mix(rgb, TREES * crowns[..., None], trees * (1 - np.maximum(pad, road_w)))
        rgb = _mix(rgb, ASPHALT * (1 + 0.05 * albedo)[..., None], road_w)
        return np.clip(rgb, 0, 1)

    return colorize


def _mix(base: np.ndarray, top: np.ndarray, weight: np.ndarray) -> np.ndarray:
    weight = weight.astype(np.float32)[..., None]
    return base + (top - base) * weight


# ---------------------------------------------------------------------------------------
# Sea: wave slopes (swell along the wind, chop), whitecaps and slow brightness patches.

SEA_CHANNELS = [
    NoiseChannel(90.0, 1.0, aspect=3.5),  # 0: swell, long crests across the wind
    NoiseChannel(9.0, 1.0, aspect=1.8),  # 1: chop
    NoiseChannel(30.0, 0.4),  # 2: where whitecaps break
    NoiseChannel(600.0, 0.7),  # 3: wind slicks and current patches
]


def colorize_sea(sea_state: float) -> Colorize:
    """Texture channels: slope along a, slope along b, foam cover, patch tone."""

    def colorize(noise: np.ndarray, x: np.ndarray, y: np.ndarray, mpp: float) -> np.ndarray:
        height = noise[..., 0] * np.float32(90.0 * 0.035) + noise[..., 1] * np.float32(9.0 * 0.07 * sea_state)
        slope_a = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / np.float32(8 * mpp)
        slope_b = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / np.float32(8 * mpp)
        crest = noise[..., 1] + 0.6 * noise[..., 0]
        foam = smoothstep(1.3, 2.1, crest) * smoothstep(0.0, 0.6, noise[..., 2] + sea_state - 0.9)
        return np.dstack([slope_a, slope_b, foam, noise[..., 3]]).astype(np.float32)

    return colorize
