"""The rest of the turbine around the inspected blade: tower, nacelle and hub (spinner).

They are background (mask 0): real inspection masks label only the blades, and a white
tower has the blade's paint, so a segmenter must learn the difference from the shape and
the context, not the colour. Where they appear follows the real geometry:

- the hub sits at the blade's root end (just past span ``length_m``); the nacelle behind it
  (seen from the front or back of the rotor, PS / SS views) or beside it (seen along the
  rotor plane, LE / TE views); the tower hangs from the nacelle down to the ground;
- a blade pointing down is inspected in front of the tower, so the tower shows behind or
  beside it in every frame of the pass; a horizontal blade shows the tower and nacelle only
  when the frame reaches the hub (root views);
- some frames without blade (the drone turning) face the tower.

Sizes are in metres, drawn with the blade's scale shrunk by perspective for parts behind the
rotor plane. Everything is drawn at the working resolution into the background layer, so
the blade is composited over it and the mask stays the blade's polygon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.synth.blade import BladeGeometry, BladeModel, BladeView, shading_table
from edge.synth.camera import Camera
from edge.synth.lighting import Lighting

SHIFT = 4  # fixed-point bits for sub-pixel vertices


@dataclass(frozen=True)
class TowerView:
    """A tapered cylinder in full-resolution pixels, from its top towards its base."""

    top: tuple[float, float]
    direction_deg: float  # from the top to the base in the image (90 = straight down)
    length_px: float
    top_width_px: float
    base_width_px: float


@dataclass(frozen=True)
class TurbineParts:
    """What of the turbine (besides the inspected blade) one frame shows, full-resolution pixels."""

    paint: tuple[float, float, float]
    tower: TowerView | None
    nacelle: tuple[tuple[float, float], ...] | None  # quadrilateral corners
    hub: tuple[float, float, float, float, float] | None  # centre x, y, half axes x, y, angle (deg)
    hub_in_front: bool = True  # seen from upwind the spinner hides the nacelle; from downwind the reverse


@dataclass(frozen=True)
class TurbineBody:
    """One turbine's tower, nacelle and spinner sizes (metres)."""

    tower_top_m: float
    tower_base_m: float
    nacelle_length_m: float
    nacelle_height_m: float
    nacelle_width_m: float
    hub_radius_m: float


def turbine_body(rng: np.random.Generator) -> TurbineBody:
    top = float(rng.uniform(2.8, 3.8))
    return TurbineBody(top, top + float(rng.uniform(1.0, 2.0)), float(rng.uniform(9.0, 14.0)),
                       float(rng.uniform(3.2, 4.4)), float(rng.uniform(3.2, 4.2)), float(rng.uniform(1.6, 2.3)))


def _unit(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.cos(a), math.sin(a)])


def _down_direction(point: np.ndarray, camera: Camera) -> float:
    """Image direction (deg) of a vertical line going down from ``point``: towards the nadir's
    vanishing point when the camera looks down, straight down otherwise."""
    if camera.pitch_deg < 5.0:
        return 90.0 + camera.roll_deg
    nadir = np.array([(camera.width - 1) / 2, (camera.height - 1) / 2
                      + camera.focal_px / math.tan(math.radians(camera.pitch_deg))])
    delta = nadir - point
    if np.hypot(*delta) < 1.0:
        return 90.0
    return math.degrees(math.atan2(delta[1], delta[0]))


def place_parts(model: BladeModel, view: BladeView, body: TurbineBody, surface: str, camera: Camera,
                hub_height_m: float, depth_m: float, lateral: float, side: int,
                paint: tuple[float, float, float], hub_required: bool = False) -> TurbineParts | None:
    """Tower, nacelle and hub of the inspected blade's turbine in one frame (None: out of view).

    ``depth_m``: how far behind the rotor plane the nacelle and tower stand (PS / SS views);
    ``lateral``: the tower's sideways offset in units of the blade's maximum chord (parallax of
    the drone's position); ``side``: +1 / -1, which way the nacelle points in LE / TE views.
    ``hub_required``: draw nothing unless the hub is in the frame (a horizontal blade: its
    tower hangs from the hub, far from the blade's outer span).
    """
    width, height = camera.width, camera.height
    geometry = BladeGeometry(model, view, width, height)
    hub = geometry.point(np.array([model.length_m + body.hub_radius_m]), np.array([0.0]))[0]
    if hub_required and not (0 <= hub[0] < width and 0 <= hub[1] < height):
        return None
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    scale = view.scale
    across = np.array([1.0, 0.0])
    if surface in ("PS", "SS"):  # looking at the rotor's face: nacelle and tower behind the hub
        distance = camera.focal_px / scale  # camera to blade, metres
        shrink = distance / (distance + depth_m)
        nacelle_centre = centre + (hub - centre) * shrink + across * lateral * model.max_chord_m * scale
        scale_back = scale * shrink
        half_w, half_h = body.nacelle_width_m / 2 * scale_back, body.nacelle_height_m / 2 * scale_back
        tower_top = nacelle_centre + np.array([0.0, half_h])
    else:  # along the rotor plane: the nacelle runs sideways from the hub
        scale_back = scale
        length = body.nacelle_length_m * scale
        nacelle_centre = hub + across * side * (length / 2 + 0.5 * body.hub_radius_m * scale)
        half_w, half_h = length / 2, body.nacelle_height_m / 2 * scale
        tower_top = nacelle_centre + np.array([side * 0.15 * length, half_h])
    nacelle = tuple((float(nacelle_centre[0] + sx * half_w), float(nacelle_centre[1] + sy * half_h))
                    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)))
    direction = _down_direction(tower_top, camera)
    foreshortening = max(math.cos(math.radians(max(camera.pitch_deg, 0.0))), 0.15)
    tower = TowerView((float(tower_top[0]), float(tower_top[1])), direction,
                      hub_height_m * scale_back * foreshortening,
                      body.tower_top_m * scale_back, body.tower_base_m * scale_back)
    hub_axes = (body.hub_radius_m * scale, body.hub_radius_m * scale)
    if surface in ("LE", "TE"):  # the spinner's cone seen from the side
        hub_axes = (1.3 * body.hub_radius_m * scale, body.hub_radius_m * scale)
    hub_ellipse = (float(hub[0]), float(hub[1]), float(hub_axes[0]), float(hub_axes[1]), 0.0)
    parts = TurbineParts(paint, tower, nacelle, hub_ellipse, hub_in_front=surface != "SS")
    return parts if _visible(parts, width, height) else None


def tower_only(rng: np.random.Generator, body: TurbineBody, camera: Camera,
               paint: tuple[float, float, float]) -> TurbineParts:
    """A frame facing the tower with no blade near: a column crossing the frame."""
    width, height = camera.width, camera.height
    top_width = float(rng.uniform(0.05, 0.3)) * width
    top = (float(rng.uniform(0.1, 0.9)) * width, -float(rng.uniform(0.05, 1.0)) * height)
    tower = TowerView(top, _down_direction(np.array(top), camera), 4.0 * height, top_width,
                      top_width * body.tower_base_m / body.tower_top_m)
    return TurbineParts(paint, tower, None, None)


def _visible(parts: TurbineParts, width: int, height: int) -> bool:
    points = []
    if parts.tower is not None:
        t = parts.tower
        end = np.array(t.top) + _unit(t.direction_deg) * t.length_px
        points += [t.top, tuple(end)]
        reach = t.base_width_px
    else:
        reach = 0.0
    if parts.nacelle is not None:
        points += list(parts.nacelle)
    if parts.hub is not None:
        reach = max(reach, parts.hub[2], parts.hub[3])
        points.append(parts.hub[:2])
    xs, ys = np.array(points).T
    # a cheap box test: the parts' bounding box (with margin) meets the frame
    return bool(xs.min() - reach < width and xs.max() + reach > 0 and ys.min() - reach < height
                and ys.max() + reach > 0)


# ---------------------------------------------------------------------------------------
# Drawing


def _coverage(shape: tuple[int, int], draw) -> np.ndarray:
    """Antialiased coverage in [0, 1] of what ``draw(canvas)`` fills with 255."""
    canvas = np.zeros(shape, np.uint8)
    draw(canvas)
    return canvas.astype(np.float32) / 255


def _blend(layer: np.ndarray, coverage: np.ndarray, color: np.ndarray) -> None:
    rows = np.flatnonzero(coverage.any(axis=1))
    if rows.size == 0:
        return
    band = slice(rows[0], rows[-1] + 1)
    c = coverage[band][..., None]
    layer[band] = layer[band] * (1 - c) + color[band] * c


def draw_parts(background: np.ndarray, parts: TurbineParts, width: int, height: int, rotation: np.ndarray,
               lighting: Lighting, ground_color: np.ndarray) -> None:
    """Draw tower, nacelle and hub into the working-resolution ``background`` (float RGB) in place.

    ``width`` x ``height`` is the full-resolution frame the parts' pixels refer to.
    """
    wh, ww = background.shape[:2]
    sx, sy = width / ww, height / wh
    paint = np.array(parts.paint, np.float32)
    xs = (np.arange(ww, dtype=np.float32) + 0.5) * np.float32(sx) - 0.5
    ys = (np.arange(wh, dtype=np.float32) + 0.5) * np.float32(sy) - 0.5

    def to_work(points) -> np.ndarray:
        p = (np.asarray(points, np.float64) + 0.5) / np.array([sx, sy]) - 0.5
        return np.round(p * (1 << SHIFT)).astype(np.int32)

    if parts.tower is not None:
        t = parts.tower
        axis, normal = _unit(t.direction_deg), _unit(t.direction_deg + 90)
        # a cylinder: light across it like a blade's leading edge seen head-on
        lut = shading_table("LE", BladeView("LE", t.direction_deg, 0.0, 1.0, 0.0, 1), rotation, lighting,
                            ground_color)
        dx, dy = xs[None, :] - np.float32(t.top[0]), ys[:, None] - np.float32(t.top[1])
        along = dx * np.float32(axis[0]) + dy * np.float32(axis[1])
        side = dx * np.float32(normal[0]) + dy * np.float32(normal[1])
        half = (np.float32(t.top_width_px) + (np.float32(t.base_width_px - t.top_width_px))
                * np.clip(along / np.float32(t.length_px), 0, 1)) / 2
        # coverage in working pixels, soft over one working pixel at the edges
        pixel = np.float32(max(sx, sy))
        cover = (np.clip((half - np.abs(side)) / pixel + 0.5, 0, 1)
                 * np.clip(along / pixel + 0.5, 0, 1) * np.clip((np.float32(t.length_px) - along) / pixel + 0.5, 0, 1))
        q = np.clip((side / np.maximum(half, 1e-3) + 1) / 2, 0, 1)
        light = lut[(q * (lut.shape[0] - 1)).astype(np.int32)]
        # welded section seams every 20-30 m of tower show as faint darker rings
        seam = 1 - 0.08 * (np.abs(np.mod(along / np.float32(t.length_px) * 4, 1) - 0.5) > 0.49)
        _blend(background, cover.astype(np.float32), (paint * light) * seam[..., None])

    ellipse = None
    if parts.hub is not None:
        cx, cy, ax, ay, angle = parts.hub
        centre = tuple(int(v) for v in to_work([[cx, cy]])[0])
        axes = (max(int(ax / sx * (1 << SHIFT)), 1), max(int(ay / sy * (1 << SHIFT)), 1))
        ellipse = (centre, axes, angle)

    def draw_hub() -> None:
        if ellipse is None:
            return
        centre, axes, angle = ellipse
        cover = _coverage((wh, ww), lambda c: cv2.ellipse(c, centre, axes, angle, 0, 360, 255, -1, cv2.LINE_AA, SHIFT))
        lut = shading_table("LE", BladeView("LE", 90.0, 0.0, 1.0, 0.0, 1), rotation, lighting, ground_color)
        cx, cy, ax, ay, _ = parts.hub
        u = np.clip((xs[None, :] - np.float32(cx)) / np.float32(max(ax, 1e-3)), -1, 1)
        v = np.clip((ys[:, None] - np.float32(cy)) / np.float32(max(ay, 1e-3)), -1, 1)
        light = lut[((u + 1) / 2 * (lut.shape[0] - 1)).astype(np.int32)] * (1 - 0.3 * np.maximum(v, 0) ** 2)[..., None]
        _blend(background, cover, paint * 0.97 * light)

    def draw_nacelle() -> None:
        if parts.nacelle is None:
            return
        corners = to_work(parts.nacelle).reshape(-1, 1, 2)
        cover = _coverage((wh, ww), lambda c: cv2.fillConvexPoly(c, corners, 255, cv2.LINE_AA, SHIFT))
        lut = shading_table("PS", BladeView("PS", 0.0, 0.0, 1.0, 0.0, 1), rotation, lighting, ground_color)
        flat = lut[lut.shape[0] // 2]
        top_y, bottom_y = min(p[1] for p in parts.nacelle), max(p[1] for p in parts.nacelle)
        v = np.clip((ys - np.float32(top_y)) / np.float32(max(bottom_y - top_y, 1e-3)), 0, 1)
        # the roof catches the sky, the underside is in shade
        gain = np.where(v < 0.15, 1.08, np.where(v > 0.85, 0.7, 1.0)).astype(np.float32)
        color = np.broadcast_to((paint * flat)[None, None, :] * gain[:, None, None], background.shape)
        _blend(background, cover, color)

    if parts.hub_in_front:
        draw_nacelle()
        draw_hub()
    else:
        draw_hub()
        draw_nacelle()
