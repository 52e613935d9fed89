"""A wind-turbine blade in the frame: outline, shading, dirt, erosion, cracks, receptors.

Blade coordinates: ``d`` metres from the tip along the span, ``q`` from 0 to 1 across the
visible width (for the pressure and suction sides q = 0 is the leading edge). The frame
places the blade axis through the point ``center + offset * normal`` (pixels), pointing
towards the tip along ``angle_deg``, with ``scale`` pixels per metre; the axis point nearest
the frame centre is ``d_center`` metres from the tip.

- The outline is a polygon (taper, rounded tip) filled at full resolution with
  antialiasing: the ground-truth mask is exactly where that polygon covers half a pixel.
- Shading depends only on q (the shell's curvature across the chord) and the light, so it is
  a lookup table, evaluated at the working resolution and enlarged.
- Dirt, paint tone and stripped leading-edge paint come from a per-surface "skin" texture in
  (d, q), so consecutive frames see the same stains in the same places. Erosion pits, cracks,
  lightning receptors and the drain hole are drawn at full resolution from per-surface lists
  in blade coordinates.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.synth.lighting import Lighting
from edge.synth.noise import fractal_noise, smoothstep

SURFACES = ("PS", "SS", "LE", "TE")
SURFACE_NAMES = {"PS": "pressure side", "SS": "suction side", "LE": "leading edge", "TE": "trailing edge"}
PAINTS = {
    "white": (0.93, 0.93, 0.91),
    "light grey": (0.84, 0.85, 0.83),  # RAL 7035, common on large blades
    "warm white": (0.94, 0.92, 0.87),
}
LAMINATE = np.array([0.66, 0.63, 0.55], np.float32)  # glass fibre under the paint
FILLER = np.array([0.48, 0.47, 0.44], np.float32)
MARKING_RED = np.array([0.74, 0.13, 0.11], np.float32)
SKIN_TEXELS_PER_M = 24
SKIN_ACROSS = 160


@dataclass(frozen=True)
class BladeModel:
    """One physical blade (all its surfaces)."""

    length_m: float
    max_chord_m: float
    tip_chord_m: float
    paint: tuple[float, float, float]
    tip_marking: bool  # red aviation bands near the tip
    seed: int
    wear: float  # 0 new .. 1 badly eroded leading edge
    dirt: float  # 0 clean .. 1 dirty

    def chord(self, d: np.ndarray) -> np.ndarray:
        growth = np.clip(d / (0.75 * self.length_m), 0, 1) ** 0.9
        return self.tip_chord_m + (self.max_chord_m - self.tip_chord_m) * growth

    def thickness(self, d: np.ndarray) -> np.ndarray:
        ratio = 0.16 + 0.16 * np.clip(d / (0.75 * self.length_m), 0, 1) ** 1.5
        return self.chord(d) * ratio


@dataclass(frozen=True)
class BladeView:
    """Where one frame sees the blade (full-resolution pixels)."""

    surface: str  # PS, SS, LE or TE
    angle_deg: float  # direction from root to tip in the image (0 = right, 90 = down)
    offset_px: float  # axis offset from the frame centre, along the normal
    scale: float  # pixels per metre
    d_center: float  # metres from the tip at the axis point nearest the frame centre
    le_side: int  # +1: leading edge on the normal's side (pressure and suction side views)


def _rounding(d: np.ndarray, radius: float) -> np.ndarray:
    """1 along the blade, falling to 0 at the tip: between a quarter ellipse and a point."""
    x = np.clip(d / max(radius, 1e-6), 0, 1)
    return (x * (2.0 - x)) ** 0.7


def half_widths(model: BladeModel, surface: str, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Visible extent (metres) on the positive and negative side of the axis at span d."""
    d = np.maximum(d, 0.0)
    if surface in ("PS", "SS"):
        chord = model.chord(d)
        leading = 0.3 * chord * _rounding(d, 1.2 * model.tip_chord_m)
        trailing = 0.7 * chord * _rounding(d, 2.2 * model.tip_chord_m)
        return leading, trailing  # the caller swaps them by le_side
    # seen from the front or back edge, the drone also sees the first part of both sides
    half = 0.5 * (model.thickness(d) + 0.22 * model.chord(d)) * _rounding(d, 0.8 * model.tip_chord_m)
    return half, half


class BladeGeometry:
    """Mapping between frame pixels and blade coordinates for one view."""

    def __init__(self, model: BladeModel, view: BladeView, width: int, height: int):
        self.model, self.view = model, view
        self.width, self.height = width, height
        a = math.radians(view.angle_deg)
        self.direction = np.array([math.cos(a), math.sin(a)])  # towards the tip
        self.normal = np.array([-math.sin(a), math.cos(a)])
        self.origin = np.array([(width - 1) / 2.0, (height - 1) / 2.0]) + self.normal * view.offset_px

    def sides(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Extent (metres) towards +normal and towards -normal."""
        first, second = half_widths(self.model, self.view.surface, d)
        if self.view.surface in ("PS", "SS") and self.view.le_side < 0:
            first, second = second, first
        return first, second

    def point(self, d: np.ndarray, across_m: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N x 2) of blade points: span d, signed metres along the normal."""
        along = (self.view.d_center - d) * self.view.scale
        return (self.origin[None, :] + along[:, None] * self.direction[None, :]
                + (across_m * self.view.scale)[:, None] * self.normal[None, :])

    def span_range(self) -> tuple[float, float]:
        """Span (metres) that can appear in the frame, clipped to the blade."""
        reach = math.hypot(self.width, self.height) / 2 + abs(self.view.offset_px)
        lo = self.view.d_center - reach / self.view.scale
        hi = self.view.d_center + reach / self.view.scale
        return max(lo, 0.0), min(hi, self.model.length_m)

    def outline(self) -> np.ndarray | None:
        """Closed outline polygon (N x 2 pixels), or None if the blade is out of view."""
        lo, hi = self.span_range()
        if hi <= lo:
            return None
        # Dense near the tip where the outline turns; about one vertex per 4 pixels elsewhere.
        count = int(min(max((hi - lo) * self.view.scale / 4, 64), 4000))
        d = np.linspace(lo, hi, count)
        if lo < 2 * self.model.tip_chord_m:
            d = np.union1d(d, np.linspace(lo, min(2 * self.model.tip_chord_m, hi), 200))
        plus, minus = self.sides(d)
        upper = self.point(d, plus)
        lower = self.point(d[::-1], -minus[::-1])
        return np.vstack([upper, lower])

    def coordinates(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d, q, inside-ness) for pixel coordinates xs (1 x W) and ys (H x 1), float32.

        q is extended beyond [0, 1] outside the blade so the shading can be enlarged
        without the background bleeding into the blade's edge.
        """
        dx = xs - np.float32(self.origin[0])
        dy = ys - np.float32(self.origin[1])
        along = dx * np.float32(self.direction[0]) + dy * np.float32(self.direction[1])
        across = (dx * np.float32(self.normal[0]) + dy * np.float32(self.normal[1])) / np.float32(self.view.scale)
        d = np.float32(self.view.d_center) - along / np.float32(self.view.scale)
        plus, minus = self.sides(np.maximum(d, 0.0))
        plus = np.maximum(plus, 1e-4).astype(np.float32)
        minus = np.maximum(minus, 1e-4).astype(np.float32)
        q = (across + minus) / (plus + minus)
        if self.view.surface in ("PS", "SS") and self.view.le_side > 0:
            q = 1.0 - q  # q = 0 on the leading edge
        return d.astype(np.float32), q.astype(np.float32), np.minimum(plus, minus)


# ---------------------------------------------------------------------------------------
# Shading across the chord


def _normal_angles(surface: str, q: np.ndarray) -> np.ndarray:
    """Angle (radians) of the surface normal from the view axis, towards +q, for q in [0, 1]."""
    if surface == "PS":  # flat pressure side: rounded leading edge, slight concavity aft
        nose = -1.35 * np.clip(1 - q / 0.18, 0, 1) ** 2
        return nose + 0.12 * (q - 0.35) + 0.25 * np.clip((q - 0.8) / 0.2, 0, 1) ** 2
    if surface == "SS":  # cambered suction side
        return -1.45 * np.clip(1 - q / 0.28, 0, 1) ** 1.6 + 0.55 * np.clip((q - 0.3) / 0.7, 0, 1) ** 1.3
    if surface == "LE":  # nose seen head-on: almost a half cylinder
        return np.arcsin(np.clip(2 * q - 1, -1, 1) * 0.97)
    # TE: the two faces meet at the trailing edge along the middle
    side = np.where(q < 0.5, -1.0, 1.0)
    face = 0.75 + 0.35 * np.abs(2 * q - 1)
    return side * face * smoothstep(0.0, 0.04, np.abs(q - 0.5))


def shading_table(surface: str, view: BladeView, camera_rotation: np.ndarray, lighting: Lighting,
                  ground_color: np.ndarray, samples: int = 512) -> np.ndarray:
    """RGB light leaving a white shell (before paint colour), for q = 0..1 (samples x 3)."""
    q = np.linspace(0, 1, samples)
    phi = _normal_angles(surface, q)
    a = math.radians(view.angle_deg)
    across = np.array([-math.sin(a), math.cos(a), 0.0])  # image normal in camera coordinates
    if surface in ("PS", "SS") and view.le_side > 0:
        across = -across  # q grows away from the leading edge
    toward_camera = np.array([0.0, 0.0, -1.0])
    normals = np.cos(phi)[:, None] * toward_camera + np.sin(phi)[:, None] * across
    to_sun = camera_rotation @ lighting.to_sun().astype(np.float64)
    up = camera_rotation @ np.array([0.0, -1.0, 0.0])
    n_sun = np.clip(normals @ to_sun, 0, None)
    n_up = normals @ up
    sun = lighting.sun_strength * n_sun[:, None] * lighting.sun_color()
    ambient = lighting.ambient()
    ambient = 0.45 * ambient + 0.55 * ambient.mean()  # white paint scatters the sky's blue only in part
    sky = ambient * (0.62 + 0.38 * n_up)[:, None]
    bounce = 0.35 * ground_color * np.clip(-n_up, 0, None)[:, None]
    half = to_sun + np.array([0.0, 0.0, -1.0])
    half /= np.linalg.norm(half) + 1e-9
    gloss = np.clip(normals @ half, 0, None)
    specular = lighting.sun_strength * (0.5 * np.exp((gloss - 1) * 60) + 0.08 * np.exp((gloss - 1) * 8))
    # the smooth gelcoat reflects the sky more at grazing angles
    grazing = (1 - np.abs(np.cos(phi))) ** 3
    return (1.15 * sun + sky + bounce + specular[:, None] * lighting.sun_color()
            + 0.2 * grazing[:, None] * lighting.sky_colors()[1]).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Per-surface skin and defect lists


@dataclass(frozen=True)
class Defects:
    pits: np.ndarray  # (N, 3): d, q, radius m
    cracks: tuple[np.ndarray, ...]  # each (M, 2): d, q polyline
    receptors: np.ndarray  # (K, 3): d, q, radius m
    burns: np.ndarray  # (K,) bool: lightning scorch around the receptor
    drain: tuple[float, float]  # (d, q) of the drain hole at the tip


def _le_band(surface: str) -> tuple[float, float]:
    """Range of q where the leading edge lies in this view."""
    return {"PS": (0.0, 0.10), "SS": (0.0, 0.14), "LE": (0.28, 0.72), "TE": (2.0, 2.0)}[surface]


@functools.lru_cache(maxsize=16)
def skin(model: BladeModel, surface: str) -> np.ndarray:
    """Texture in (q rows, d columns): dirt, stripped paint, paint tone, streaks (float32 x 4)."""
    rng = np.random.default_rng([model.seed, SURFACES.index(surface), 7])
    cols = int(model.length_m * SKIN_TEXELS_PER_M) + 8
    shape = (SKIN_ACROSS, cols)
    d = (np.arange(cols, dtype=np.float32) / SKIN_TEXELS_PER_M)[None, :]
    q = (np.arange(SKIN_ACROSS, dtype=np.float32) / (SKIN_ACROSS - 1))[:, None]
    outer = np.clip(1 - d / (0.3 * model.length_m), 0, 1)  # the outer span erodes and collects insects
    lo, hi = _le_band(surface)
    near_le = smoothstep(0.06, 0.0, np.maximum(lo - q, q - hi))
    dirt_noise = fractal_noise(shape, 48, rng, octaves=3, aspect=3.0)
    dirt = np.clip(0.25 * dirt_noise + 0.5 * near_le * outer + model.dirt - 0.55, 0, 1) * model.dirt
    erosion_noise = fractal_noise(shape, 12, rng, octaves=4, aspect=2.0)
    severity = model.wear * outer
    stripped = smoothstep(3.3 - 2.8 * severity, 3.7 - 2.8 * severity, erosion_noise + 1.2 * near_le) * near_le
    tone = fractal_noise(shape, 60, rng, octaves=3, aspect=6.0)
    streaks = fractal_noise(shape, 30, rng, octaves=3, aspect=0.08)  # run across the chord
    return np.dstack([dirt, stripped, tone, streaks]).astype(np.float32)


@functools.lru_cache(maxsize=16)
def defects(model: BladeModel, surface: str) -> Defects:
    rng = np.random.default_rng([model.seed, SURFACES.index(surface), 11])
    length = model.length_m
    lo, hi = _le_band(surface)
    pits = np.zeros((0, 3))
    if surface != "TE":
        count = int(2500 * model.wear**2)
        d = length * 0.3 * rng.power(0.5, count)  # mostly near the tip
        centre = (lo + hi) / 2
        q = centre + (hi - lo) * 0.35 * rng.standard_normal(count) * (0.3 + 0.7 * (1 - d / (0.3 * length)))
        radius = rng.uniform(0.0005, 0.002, count) * (1 + rng.exponential(0.5, count))
        pits = np.column_stack([d, np.clip(q, 0.0, 1.0), radius])
    cracks = []
    for _ in range(int(rng.integers(1, 5))):
        d0 = rng.uniform(0.5, 0.85 * length)
        q0 = rng.uniform(0.15, 0.85)
        chordwise = rng.random() < 0.65
        steps = int(rng.integers(12, 40))
        step_len = rng.uniform(0.004, 0.02)
        chord = float(model.chord(np.array([d0]))[0])
        heading = (math.pi / 2 if chordwise else 0.0) + rng.normal(0, 0.25)
        points = [(d0, q0)]
        for _ in range(steps):
            heading += rng.normal(0, 0.35)
            dd, qq = points[-1]
            points.append((dd + step_len * math.cos(heading), qq + step_len * math.sin(heading) / chord))
        cracks.append(np.array(points))
    receptors, burns = np.zeros((0, 3)), np.zeros(0, bool)
    if surface in ("PS", "SS"):
        spots = [rng.uniform(0.25, 0.5)] + ([rng.uniform(4.0, 7.0)] if length > 45 else [])
        spots += list(np.arange(rng.uniform(9, 12), 0.7 * length, rng.uniform(8, 14))[:2])
        receptors = np.array([(d, rng.uniform(0.55, 0.7), rng.uniform(0.022, 0.035)) for d in spots])
        burns = rng.random(len(spots)) < 0.25
    drain = (0.08, 0.82 if surface in ("PS", "SS") else 0.5)
    return Defects(pits, tuple(cracks), receptors, burns, drain)


# ---------------------------------------------------------------------------------------
# Rendering


def shade(geometry: BladeGeometry, lut: np.ndarray, work_width: int, work_height: int,
          band: tuple[int, int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Blade colour at the working resolution over ``band`` = (x0, y0, x1, y1) work pixels.

    Returns float32 (y1-y0) x (x1-x0) x 3, defined also a little outside the outline.
    """
    model, view = geometry.model, geometry.view
    x0, y0, x1, y1 = band
    sx = geometry.width / work_width
    sy = geometry.height / work_height
    xs = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * np.float32(sx) - 0.5)[None, :]
    ys = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * np.float32(sy) - 0.5)[:, None]
    d, q, _ = geometry.coordinates(xs, ys)
    q_clamped = np.clip(q, 0, 1)
    index = (q_clamped * (lut.shape[0] - 1)).astype(np.int32)
    light = lut[index]
    # paint: base colour, aviation bands near the tip
    paint = np.empty_like(light)
    paint[:] = np.array(model.paint, np.float32)
    if model.tip_marking:
        bands = ((d < 3.0) | ((d > 6.0) & (d < 9.0)))[..., None]
        paint = np.where(bands, MARKING_RED, paint)
    # skin texture looked up in blade coordinates
    texture = skin(model, view.surface)
    map_x = np.clip(d * np.float32(SKIN_TEXELS_PER_M), 0, texture.shape[1] - 1).astype(np.float32)
    map_y = (q_clamped * np.float32(SKIN_ACROSS - 1)).astype(np.float32)
    dirt, stripped, tone, streaks = cv2.split(cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR))
    detail = fractal_noise(d.shape, max(4.0, 0.02 * view.scale / sx), rng, octaves=3)
    paint = paint * (1.0 + 0.012 * tone + 0.008 * detail)[..., None]
    grime = np.clip(dirt * (0.9 + 0.1 * streaks + 0.05 * detail), 0, 1)
    paint = paint + (np.array([0.45, 0.41, 0.35], np.float32) - paint) * (0.3 * grime)[..., None]
    # paint comes off in flakes with sharp borders
    worn = smoothstep(0.3, 0.45, stripped + 0.18 * detail * np.minimum(stripped * 3, 1))[..., None]
    exposed = LAMINATE + (FILLER - LAMINATE) * np.clip(0.5 + 0.5 * detail, 0, 1)[..., None]
    paint = paint + (exposed - paint) * worn
    return (paint * light).astype(np.float32)


def draw_details(patch: np.ndarray, geometry: BladeGeometry, origin: tuple[int, int],
                 light: float, rng: np.random.Generator) -> None:
    """Draw pits, cracks, receptors and the drain hole at full resolution into ``patch`` (uint8 BGR-free RGB).

    ``origin`` is the full-resolution (x, y) of the patch's top-left pixel; ``light`` scales
    the drawn colours to the frame's exposure.
    """
    model, view = geometry.model, geometry.view
    found = defects(model, view.surface)
    lo, hi = geometry.span_range()
    shift = 4
    unit = 1 << shift

    def to_pixels(d: np.ndarray, q: np.ndarray) -> np.ndarray:
        plus, minus = geometry.sides(d)
        if view.surface in ("PS", "SS") and view.le_side > 0:
            q = 1.0 - q
        across = q * (plus + minus) - minus
        points = geometry.point(d, across) - np.array(origin, np.float64)[None, :]
        return np.round(points * unit).astype(np.int64)

    def color(rgb: np.ndarray) -> tuple[float, float, float]:
        c = np.clip(rgb * light * 255, 0, 255)
        return float(c[0]), float(c[1]), float(c[2])

    px_per_m = view.scale
    # erosion pits: small dark craters, a few with a lighter rim
    pits = found.pits
    if len(pits):
        pits = pits[(pits[:, 0] >= lo) & (pits[:, 0] <= hi)]
    if len(pits):
        centres = to_pixels(pits[:, 0], pits[:, 1])
        radii = pits[:, 2] * px_per_m
        shades = rng.uniform(0.5, 0.8, len(pits))
        for (cx, cy), r, s in zip(centres, radii, shades):
            if r < 0.35:
                continue
            cv2.circle(patch, (int(cx), int(cy)), max(int(r * unit), 1), color(FILLER * s * 1.2), -1, cv2.LINE_AA, shift)
    # cracks: thin dark lines, thicker at higher zoom
    thickness = max(1, int(round(0.0015 * px_per_m)))
    for crack in found.cracks:
        if crack[:, 0].max() < lo or crack[:, 0].min() > hi:
            continue
        points = to_pixels(crack[:, 0], crack[:, 1])
        cv2.polylines(patch, [points.reshape(-1, 1, 2)], False, color(np.array([0.30, 0.28, 0.25])),
                      thickness, cv2.LINE_AA, shift)
    # lightning receptors: metal discs with a darker ring, some with scorch marks
    for (d, q, radius), burned in zip(found.receptors, found.burns):
        if d < lo or d > hi:
            continue
        (cx, cy), = to_pixels(np.array([d]), np.array([q]))
        r = radius * px_per_m
        if r < 0.7:
            continue
        if burned:
            cv2.circle(patch, (int(cx), int(cy)), int(r * 2.2 * unit), color(np.array([0.35, 0.33, 0.30])), -1,
                       cv2.LINE_AA, shift)
        cv2.circle(patch, (int(cx), int(cy)), int(r * 1.25 * unit), color(np.array([0.40, 0.40, 0.40])), -1,
                   cv2.LINE_AA, shift)
        cv2.circle(patch, (int(cx), int(cy)), int(r * unit), color(np.array([0.68, 0.67, 0.64])), -1,
                   cv2.LINE_AA, shift)
        cv2.circle(patch, (int(cx - 0.3 * r * unit), int(cy - 0.3 * r * unit)), max(int(0.35 * r * unit), 1),
                   color(np.array([0.85, 0.85, 0.83])), -1, cv2.LINE_AA, shift)
    d, q = found.drain
    if lo <= d <= hi:
        (cx, cy), = to_pixels(np.array([d]), np.array([q]))
        r = 0.006 * px_per_m
        if r >= 0.7:
            cv2.circle(patch, (int(cx), int(cy)), int(r * unit), color(np.array([0.12, 0.12, 0.12])), -1,
                       cv2.LINE_AA, shift)
