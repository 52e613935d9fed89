"""Random but plausible choices for an inspection: turbines, blades, surfaces, frames.

The drone inspects each blade surface in one pass from near the root to the tip, at a
fixed stand-off, so the blade narrows in the frame as the pass goes on and the tip shows in
the last frames. A few frames catch the blade from farther away (repositioning) or miss it
(turning). Lighting is drawn once per turbine (sun, weather) and varied per surface (the
drone faces another way; clouds move); within a surface it is constant.

Every random choice comes from ``numpy.random.default_rng([seed, ...ids])``, so a frame's
spec depends only on the inspection seed and its (turbine, blade, surface, index).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from edge.synth.backgrounds import BACKGROUND_KINDS, Scene
from edge.synth.blade import PAINTS, SURFACES, BladeModel, BladeView, half_widths
from edge.synth.frame import FrameSpec
from edge.synth.lighting import Lighting
from edge.synth.turbine import TurbineBody, place_parts, tower_only, turbine_body

FRAME_KINDS = ("closeup", "root", "far", "empty")
ROOT_SHARE = 0.5  # first frames of a pass that back off to show the hub, nacelle and tower
EMPTY_TOWER_SHARE = 0.5  # frames without blade that face the tower
TIP_BAND_M = 9.0  # the red aviation bands cover the outer 9 m of a marked blade
# Sun direction relative to the camera heading changes as the drone goes round the blade.
SURFACE_SUN_OFFSET = {"PS": 0.0, "SS": 180.0, "LE": 90.0, "TE": -90.0}


@dataclass(frozen=True)
class TurbinePlan:
    index: int
    kind: str  # background: sea, pasture or farmland
    terrain_seed: int
    blades: tuple[BladeModel, ...]
    orientations: tuple[str, ...]  # per blade: "vertical" (tip down) or "horizontal"
    hub_height_m: float
    sun_azimuth_deg: float
    sun_elevation_deg: float
    cloud_cover: float
    warmth: float
    visibility_km: float
    sea_state: float
    latitude: float
    longitude: float
    body: TurbineBody | None = None  # tower, nacelle and spinner sizes


@dataclass(frozen=True)
class SurfacePlan:
    turbine: TurbinePlan
    blade_index: int  # 0-based
    surface: str
    seed: int
    lighting: Lighting
    orientation: str
    angle_deg: float
    le_side: int
    pitch_deg: float
    yaw_deg: float
    base_height_m: float
    scale_fraction: float  # blade width / frame extent across it, near the root
    defocus: float
    grain: float


def plan_turbine(seed: int, index: int, marking_share: float | None = None) -> TurbinePlan:
    """A turbine's site, blades and weather. ``marking_share``: probability of red aviation
    bands on the blade tips (default: 0.45 offshore, 0.15 on land)."""
    rng = np.random.default_rng([seed, index, 1])
    kind = str(rng.choice(BACKGROUND_KINDS, p=[0.4, 0.3, 0.3]))
    length = float(rng.uniform(38, 62))
    paint = PAINTS[str(rng.choice(list(PAINTS), p=[0.5, 0.35, 0.15]))]
    if marking_share is None:
        marking_share = 0.45 if kind == "sea" else 0.15
    marking = bool(rng.random() < marking_share)
    blades = tuple(
        BladeModel(
            length_m=length,
            max_chord_m=length * float(rng.uniform(0.062, 0.075)),
            tip_chord_m=float(rng.uniform(0.4, 0.7)),
            paint=paint,
            tip_marking=marking,
            seed=int(rng.integers(0, 2**31)),
            wear=float(rng.uniform(0.1, 1.0)),
            dirt=float(rng.uniform(0.1, 0.9)),
        )
        for _ in range(3)
    )
    orientations = tuple(str(o) for o in rng.choice(["vertical", "horizontal"], size=3, p=[0.6, 0.4]))
    cloud = float(np.clip(rng.beta(1.3, 1.6), 0, 1))
    sea = kind == "sea"
    return TurbinePlan(
        index=index,
        kind=kind,
        terrain_seed=int(rng.integers(0, 2**31)),
        blades=blades,
        orientations=orientations,
        hub_height_m=float(rng.uniform(80, 110)),
        sun_azimuth_deg=float(rng.uniform(0, 360)),
        sun_elevation_deg=float(rng.uniform(18, 58)),
        cloud_cover=cloud,
        warmth=float(rng.uniform(-0.4, 0.6)),
        visibility_km=float(rng.uniform(8, 40)),
        sea_state=float(rng.uniform(0.2, 1.0)),
        latitude=float(rng.uniform(53.6, 56.2) if sea else rng.uniform(54.9, 57.4)),
        longitude=float(rng.uniform(5.8, 8.2) if sea else rng.uniform(8.3, 11.2)),
        body=turbine_body(np.random.default_rng([seed, index, 5])),
    )


def plan_surface(seed: int, turbine: TurbinePlan, blade_index: int, surface: str) -> SurfacePlan:
    rng = np.random.default_rng([seed, turbine.index, blade_index, SURFACES.index(surface), 2])
    cloud = float(np.clip(turbine.cloud_cover + rng.normal(0, 0.08), 0, 1))
    strength = float(np.clip(1.15 - 1.1 * cloud + rng.normal(0, 0.05), 0.03, 1.0))
    lighting = Lighting(
        sun_azimuth_deg=turbine.sun_azimuth_deg + SURFACE_SUN_OFFSET[surface] + float(rng.normal(0, 12)),
        sun_elevation_deg=float(np.clip(turbine.sun_elevation_deg + rng.normal(0, 3), 8, 75)),
        sun_strength=strength,
        warmth=turbine.warmth + float(rng.normal(0, 0.1)),
        exposure=float(rng.uniform(0.9, 1.1)),
        cloud_cover=cloud,
        visibility_km=turbine.visibility_km,
    )
    orientation = turbine.orientations[blade_index]
    if orientation == "vertical":
        angle = 90.0 + float(rng.normal(0, 4))
        pitch = float(rng.uniform(-6, 28))
        height = turbine.hub_height_m
    else:
        angle = float(rng.choice([0.0, 180.0])) + float(rng.normal(0, 6))
        from_above = rng.random() < 0.7
        pitch = float(rng.uniform(35, 80)) if from_above else float(rng.uniform(-25, 12))
        height = turbine.hub_height_m + (float(rng.uniform(8, 30)) if from_above else float(rng.uniform(-5, 5)))
    le_side = 1 if surface == "PS" else -1
    if turbine.blades[blade_index].seed % 2:
        le_side = -le_side
    defocus = float(rng.choice([0.0, rng.uniform(0.0005, 0.004)], p=[0.5, 0.5]))
    return SurfacePlan(
        turbine=turbine,
        blade_index=blade_index,
        surface=surface,
        seed=int(rng.integers(0, 2**31)),
        lighting=lighting,
        orientation=orientation,
        angle_deg=angle,
        le_side=le_side,
        pitch_deg=pitch,
        yaw_deg=float(rng.uniform(0, 360)),
        base_height_m=height,
        scale_fraction=float(rng.uniform(0.38, 0.62)),
        defocus=defocus,
        grain=float(rng.uniform(1.0, 3.2)),
    )


def _visible_width(model: BladeModel, surface: str, d: float) -> float:
    plus, minus = half_widths(model, surface, np.array([d]))
    return float(plus[0] + minus[0])


def plan_frame_in_surface(plan: SurfacePlan, index: int, count: int, width: int, height: int,
                          kind: str | None = None, tip_frames: int = 1) -> FrameSpec:
    """Spec of frame ``index`` (0-based) of ``count`` in one surface's pass.

    ``tip_frames``: how many of the last frames show the tip region (the outer TIP_BAND_M
    metres, where red aviation bands are painted); 1 is a plain pass whose last frame shows
    the tip.
    """
    turbine = plan.turbine
    model = turbine.blades[plan.blade_index]
    rng = np.random.default_rng([plan.seed, index, 3])
    extra = np.random.default_rng([plan.seed, index, 14])  # root views and turbine parts: own stream
    root_roll = extra.random()
    if kind is None:
        roll = rng.random()
        kind = "empty" if roll < 0.06 else "far" if roll < 0.14 else "closeup"
        if kind == "closeup" and index == 0 and root_roll < ROOT_SHARE:
            kind = "root"
    a = math.radians(plan.angle_deg)
    # frame extent along and across the blade axis
    along_px = abs(width * math.cos(a)) + abs(height * math.sin(a))
    across_px = abs(width * math.sin(a)) + abs(height * math.cos(a))
    # The pass runs from near the root to the tip; the drone closes in a little towards the
    # tip so the narrowing blade still fills a good part of the frame.
    tip_frames = min(max(tip_frames, 1), count)
    first_tip = count - tip_frames
    if tip_frames > 1 and index >= first_tip:  # spread over the banded outer span, the last at the tip
        progress = 1.0
        d_plan = TIP_BAND_M * (count - 1 - index) / (tip_frames - 1)
    else:
        progress = index / max(first_tip if tip_frames > 1 else count - 1, 1)
        d_plan = model.length_m * 0.8 * (1.0 - progress)
    fraction = plan.scale_fraction * (1.0 - 0.3 * progress) * float(rng.uniform(0.93, 1.07))
    reference = max(d_plan, 2.5 * model.tip_chord_m)
    scale = fraction * across_px / _visible_width(model, plan.surface, reference)
    scale = min(scale, 0.6 * max(width, height))  # the frame spans at least 1.7 m: a zoom lens's limit
    half_view_m = along_px / 2 / scale
    # last frames: the tip about a third of the way from the centre to the frame's edge
    d_center = max(d_plan, 0.35 * half_view_m) + float(rng.normal(0, 0.08)) * half_view_m
    d_center = float(np.clip(d_center, 0.0, max(model.length_m - half_view_m, 0.0)))
    offset = float(rng.normal(0, 0.07)) * across_px
    if kind == "far":  # the drone backs off: a thin blade across part of the frame
        d_center = float(rng.uniform(0.25, 0.6)) * model.length_m
        width_px = float(rng.uniform(0.012, 0.05)) * across_px
        scale = width_px / _visible_width(model, plan.surface, d_center)
        reach = math.hypot(width, height) / 2 / scale
        if d_center + reach > model.length_m:  # keep the root (and hub) out of the frame
            d_center = max(model.length_m - reach, 0.0)
            scale = max(scale, math.hypot(width, height) / 2 / (model.length_m - d_center))
        offset = float(rng.uniform(-0.3, 0.3)) * across_px
    body = turbine.body
    if kind == "root" and body is not None:  # the drone backs off at the root: the hub in view
        span_m = float(extra.uniform(14, 26))
        scale = along_px / span_m
        d_center = model.length_m + body.hub_radius_m - float(extra.uniform(0.2, 0.42)) * span_m
        offset = float(extra.normal(0, 0.05)) * across_px
    view = None
    if kind != "empty":
        view = BladeView(plan.surface, plan.angle_deg + float(rng.normal(0, 0.8)), offset, scale, d_center,
                         plan.le_side)
    # The drone follows the blade: down a vertical blade, sideways along a horizontal one.
    travelled = model.length_m * 0.8 - d_center
    height_m, ground_x = plan.base_height_m, 0.0
    if plan.orientation == "vertical":
        height_m = max(plan.base_height_m - travelled, 12.0)
    else:
        ground_x = travelled * (1.0 if math.cos(a) > 0 else -1.0)
    pitch = plan.pitch_deg + float(rng.normal(0, 1.0))
    look = min(plan.base_height_m / math.tan(math.radians(max(plan.pitch_deg, 6.0))), 1500.0)
    scene = Scene(
        kind=turbine.kind,
        terrain_seed=turbine.terrain_seed,
        texture_seed=plan.seed,
        pitch_deg=pitch,
        roll_deg=float(rng.normal(0, 1.5)),
        yaw_deg=plan.yaw_deg,
        height_m=height_m,
        ground_x_m=ground_x + float(rng.normal(0, 0.5)),
        ground_z_m=float(rng.normal(0, 0.5)),
        look_x_m=0.4 * model.length_m * (1.0 if math.cos(a) > 0 else -1.0) if plan.orientation != "vertical" else 0.0,
        look_z_m=look,
        defocus=plan.defocus,
        sea_state=turbine.sea_state,
    )
    parts = None
    if body is not None:
        camera = scene.camera(width, height)
        surface_rng = np.random.default_rng([plan.seed, 13])  # the same for every frame of the pass
        tone = float(surface_rng.uniform(0.95, 1.02))
        paint = (model.paint[0] * tone, model.paint[1] * tone, model.paint[2] * tone)
        if view is None:
            if extra.random() < EMPTY_TOWER_SHARE:
                parts = tower_only(extra, body, camera, paint)
        else:
            depth = float(surface_rng.uniform(4, 12))
            lateral = float(surface_rng.choice([-1.0, 1.0]) * surface_rng.uniform(0.4, 1.4))
            side = int(surface_rng.choice([-1, 1]))
            parts = place_parts(model, view, body, plan.surface, camera, turbine.hub_height_m, depth, lateral,
                                side, paint, hub_required=plan.orientation != "vertical")
    return FrameSpec(width, height, scene, plan.lighting, model, view, seed=int(rng.integers(0, 2**31)),
                     grain=plan.grain, kind=kind, parts=parts)


def plan_frame(size: tuple[int, int], seed: int, surface: str = "PS", kind: str | None = None) -> FrameSpec:
    """A single random frame (for tests and examples): turbine 1, blade 1, one surface."""
    width, height = size
    turbine = plan_turbine(seed, 1)
    plan = plan_surface(seed, turbine, 0, surface)
    rng = np.random.default_rng([seed, 4])
    index = int(rng.integers(0, 20))
    spec = plan_frame_in_surface(plan, index, 20, width, height, kind=kind or "closeup")
    return replace(spec, seed=int(rng.integers(0, 2**31)))
