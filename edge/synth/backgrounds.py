"""Backgrounds behind the blade: sky with clouds above the horizon; sea, pasture or
farmland below it, all seen in perspective from the drone's camera.

Everything is rendered at a reduced working resolution (textures are low-frequency; the
frame adds full-resolution grain later). Per pixel: the camera ray (:mod:`edge.synth.camera`)
gives the elevation for the sky gradient and the ground point for the terrain texture
(:mod:`edge.synth.ground`); distance gives the haze. Clouds lie on a plane 1500 m up; the
same clouds cast soft shadows on the ground. Water mixes its body colour with the sky it
reflects (Fresnel) at a per-pixel angle bent by the wave slopes, plus whitecaps and sun glint.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.synth import ground
from edge.synth.camera import Camera, cast_rays
from edge.synth.lighting import Lighting
from edge.synth.noise import smoothstep

BACKGROUND_KINDS = ("sea", "pasture", "farmland")
CLOUD_HEIGHT_M = 1500.0


@dataclass(frozen=True)
class Scene:
    """Where the drone is and what lies around the turbine."""

    kind: str  # one of BACKGROUND_KINDS
    terrain_seed: int  # same for all photos of one turbine: same fields, same sea
    texture_seed: int  # same for all photos of one surface
    pitch_deg: float  # camera tilt down (negative: looking up)
    roll_deg: float
    yaw_deg: float  # heading of the camera over the terrain
    height_m: float  # above ground or sea
    ground_x_m: float  # drone position over the terrain
    ground_z_m: float
    look_x_m: float  # where the surface's photos look on average (finest texture there)
    look_z_m: float
    defocus: float  # background blur sigma as a fraction of the image width
    sea_state: float = 0.5  # 0 calm .. 1 rough

    def camera(self, width: int, height: int) -> Camera:
        return Camera(width, height, self.pitch_deg, self.roll_deg, self.yaw_deg, self.height_m,
                      self.ground_x_m, self.ground_z_m)


def _texture_size(width: int) -> int:
    return 768 if width >= 1000 else 512


@functools.lru_cache(maxsize=3)
def _terrain(kind: str, terrain_seed: int, texture_seed: int, width: int, look: tuple[float, float],
             sea_state: float) -> ground.TextureLevels:
    """Texture levels for one surface's photos (cached: all of them share it)."""
    size = _texture_size(width)
    focal = width / (2.0 * math.tan(math.radians(73.7) / 2.0))
    finest = max(0.1, 60.0 / focal)  # about the ground size of a pixel looking down from 60 m
    count = max(2, int(math.ceil(math.log(20000.0 / (size * finest), ground.LEVEL_RATIO))) + 1)
    rng = np.random.default_rng([texture_seed, 1])
    if kind == "sea":
        colorize, channels = ground.colorize_sea(sea_state), ground.SEA_CHANNELS
    else:
        layout = ground.make_land_layout(np.random.default_rng([terrain_seed, 2]), pasture=kind == "pasture")
        colorize, channels = ground.colorize_land(layout), ground.LAND_CHANNELS
    return ground.build_levels(channels, colorize, rng, size, finest, count, center=look)


@functools.lru_cache(maxsize=3)
def _clouds(texture_seed: int, width: int) -> ground.TextureLevels:
    """Cloud density (channel 0) and thickness (channel 1) on the cloud plane."""
    rng = np.random.default_rng([texture_seed, 3])
    channels = [ground.NoiseChannel(3000.0, 0.45, aspect=1.6), ground.NoiseChannel(800.0, 0.5)]

    def colorize(noise: np.ndarray, x: np.ndarray, y: np.ndarray, mpp: float) -> np.ndarray:
        return noise.copy()

    return ground.build_levels(channels, colorize, rng, 512, 8.0 * 1024 / max(width, 256), 4)


DETAIL_BY_KIND = {"sea": 0.45, "pasture": 1.0, "farmland": 1.0}


def render_background(scene: Scene, lighting: Lighting, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The background at ``width`` x ``height`` (working resolution).

    Returns float32 RGB in about [0, 1.3] and, per row, how much texture finer than a
    working pixel the ground would show (0 for sky and haze, 1 for sharp nearby ground;
    0 everywhere when the background is out of focus). The frame adds that detail at full
    resolution.
    """
    camera = scene.camera(width, height)
    rays = cast_rays(camera)
    zenith, horizon = lighting.sky_colors()
    to_sun = lighting.to_sun()
    yaw = math.radians(scene.yaw_deg)
    cos_y, sin_y = np.float32(math.cos(yaw)), np.float32(math.sin(yaw))
    clouds = _clouds(scene.texture_seed, width)
    cloud_threshold = np.float32(1.1 - 2.4 * lighting.cloud_cover)

    def cloud_density(wx: np.ndarray, wz: np.ndarray, footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = cos_y * wx - sin_y * wz + np.float32(scene.ground_x_m)
        b = sin_y * wx + cos_y * wz + np.float32(scene.ground_z_m)
        values = clouds.sample(a, b, footprint)
        density = smoothstep(cloud_threshold, cloud_threshold + 0.9, values[..., 0] * 1.6)
        return density, values[..., 1]

    out = np.zeros((height, width, 3), np.float32)
    detail = np.zeros(height, np.float32)
    # Work on bands of rows: the sky on top, the ground below (the camera rolls only a little).
    sky_band = _band(rays.dir_y < 2.0 / camera.focal_px)
    ground_band = _band(rays.dir_y > -1.0 / camera.focal_px)
    if sky_band is not None:
        r = rays.rows(sky_band)
        elevation = np.clip(-r.dir_y, 0, 1)
        gradient = (1.0 - np.exp(-elevation * 3.5))[..., None]
        sky = horizon + (zenith - horizon) * gradient
        cos_sun = r.dir_x * to_sun[0] + r.dir_y * to_sun[1] + r.dir_z * to_sun[2]
        glow = lighting.sun_strength * (0.35 * np.exp((cos_sun - 1) * 6) + 3.0 * np.exp((cos_sun - 1) * 900))
        sky = sky + glow[..., None] * lighting.sun_color() * (1 - 0.6 * lighting.cloud_cover)
        reach = np.float32(CLOUD_HEIGHT_M) / np.maximum(elevation, 0.004)
        footprint = reach / np.float32(camera.focal_px) / np.sqrt(np.maximum(elevation, 0.004))
        density, thickness = cloud_density(r.dir_x * reach, r.dir_z * reach, footprint)
        lit = np.float32(0.92 + 0.12 * lighting.sun_strength) - np.float32(0.16) * np.clip(thickness, -1, 1.5)
        lit = lit + np.float32(0.25) * lighting.sun_strength * np.exp((cos_sun - 1) * 4)
        cloud_rgb = lit[..., None] * (lighting.sun_color() * 0.5 + 0.5)
        cloud_rgb = cloud_rgb * np.float32(1.0 - 0.25 * max(lighting.cloud_cover - 0.5, 0))
        fade = np.exp(-reach / np.float32(30000.0)) * density
        out[sky_band] = sky + (cloud_rgb - sky) * fade[..., None]

    if ground_band is not None:
        r = rays.rows(ground_band)
        terrain = _terrain(scene.kind, scene.terrain_seed, scene.texture_seed, width,
                           (scene.look_x_m, scene.look_z_m), round(scene.sea_state, 3))
        values = terrain.sample(r.ground_a, r.ground_b, r.footprint)
        if scene.kind == "sea":
            floor = _shade_sea(values, r, lighting, cos_y, sin_y, zenith, horizon)
        else:
            floor = values * lighting.ground_light()
        distance = np.minimum(r.distance, np.float32(1e6))
        # cloud shadows: follow the sun ray from the ground point up to the cloud plane
        # (soft, so computed on every fourth pixel and enlarged)
        if lighting.sun_strength > 0.05 and to_sun[1] < -0.05:
            lift = np.float32(CLOUD_HEIGHT_M + scene.height_m) / np.float32(-to_sun[1])
            sparse = distance[::4, ::4]
            wx = r.dir_x[::4, ::4] * sparse + lift * to_sun[0]
            wz = r.dir_z[::4, ::4] * sparse + lift * to_sun[2]
            density, _ = cloud_density(wx, wz, np.full_like(wx, 200.0))
            density = cv2.resize(density, (floor.shape[1], floor.shape[0]), interpolation=cv2.INTER_LINEAR)
            shade = 1.0 - np.float32(0.55 * lighting.sun_strength) * density
            floor = floor * shade[..., None]
        fog = 1.0 - np.exp(-distance / np.float32(lighting.visibility_km * 1000.0))
        haze_color = horizon * np.float32(0.95) + np.float32(0.05)
        floor = floor + (haze_color - floor) * fog[..., None]
        # antialiased horizon over about one pixel
        weight = np.clip(r.dir_y * np.float32(camera.focal_px) + 0.5, 0, 1)[..., None]
        out[ground_band] = out[ground_band] + (floor - out[ground_band]) * weight
        if scene.defocus == 0:
            detail[ground_band] = (weight[..., 0] * (1 - fog)).mean(axis=1) * DETAIL_BY_KIND[scene.kind]

    if scene.defocus > 0:
        sigma = scene.defocus * width
        if sigma >= 0.3:
            out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out, detail


def _band(rows_mask: np.ndarray) -> slice | None:
    rows = np.flatnonzero(rows_mask.any(axis=1))
    return slice(int(rows[0]), int(rows[-1]) + 1) if rows.size else None


def _shade_sea(values: np.ndarray, rays, lighting: Lighting, cos_y, sin_y, zenith, horizon) -> np.ndarray:
    """Water colour from wave slopes: body colour, reflected sky (Fresnel), whitecaps, glint."""
    slope_a, slope_b, foam, patch = (values[..., i] for i in range(4))
    # slopes from the ground frame back to the camera's heading frame (x right, z forward)
    sx = cos_y * slope_a + sin_y * slope_b
    sz = -sin_y * slope_a + cos_y * slope_b
    # normal of the height field (up is -y)
    nx, ny, nz = -sx, -np.ones_like(sx), -sz
    norm = np.sqrt(nx * nx + 1.0 + nz * nz)
    nx, ny, nz = nx / norm, ny / norm, nz / norm
    d_dot_n = rays.dir_x * nx + rays.dir_y * ny + rays.dir_z * nz
    cos_i = np.clip(-d_dot_n, 0.02, 1.0)
    grazing = 1.0 - cos_i
    fresnel = 0.02 + 0.98 * (grazing * grazing) * (grazing * grazing) * grazing
    # reflected ray and the sky it sees
    rx = rays.dir_x - 2 * d_dot_n * nx
    ry = rays.dir_y - 2 * d_dot_n * ny
    rz = rays.dir_z - 2 * d_dot_n * nz
    r_up = np.clip(-ry, 0, 1)
    sky = horizon + (zenith - horizon) * (1.0 - np.exp(-r_up * 3.5))[..., None]
    light = lighting.ground_light()
    body = np.array([0.035, 0.11, 0.14], np.float32) * light * (1.0 + 0.12 * patch)[..., None]
    water = body + (sky * 0.95 - body) * fresnel[..., None]
    to_sun = lighting.to_sun()
    cos_glint = np.clip(rx * to_sun[0] + ry * to_sun[1] + rz * to_sun[2], 0, 1)
    # c**n is about exp(-n (1 - c)) near c = 1
    glint = lighting.sun_strength * (0.7 * np.exp((cos_glint - 1) * 300) + 0.25 * np.exp((cos_glint - 1) * 30))
    water = water + glint[..., None] * lighting.sun_color()
    white = light * np.float32(0.85)
    return water + (white - water) * (0.6 * np.clip(foam, 0, 1))[..., None]
