"""Camera geometry shared by the background and the blade: rays, horizon, ground points.

Coordinates: world x to the right, y down, z forward (horizontal); the camera sits at the
origin, ``height_m`` above flat ground (the plane y = height_m). It is pitched down by
``pitch_deg`` (negative looks up) and rolled by ``roll_deg``. Ground points are given in a
ground frame turned by ``yaw_deg`` and shifted by the drone's position (``ground_x_m``,
``ground_z_m``) so consecutive frames of a surface see the same terrain from nearby spots.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HORIZONTAL_FOV_DEG = 73.7  # a 1-inch 20 MP drone camera with a 24 mm equivalent lens


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    pitch_deg: float = 20.0
    roll_deg: float = 0.0
    yaw_deg: float = 0.0
    height_m: float = 90.0
    ground_x_m: float = 0.0
    ground_z_m: float = 0.0
    hfov_deg: float = HORIZONTAL_FOV_DEG

    @property
    def focal_px(self) -> float:
        return self.width / (2.0 * math.tan(math.radians(self.hfov_deg) / 2.0))

    def rotation(self) -> np.ndarray:
        """World-to-camera rotation (pitch about x, then roll about the optical axis)."""
        p, r = math.radians(self.pitch_deg), math.radians(self.roll_deg)
        pitch = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
        roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
        return roll @ pitch


@dataclass
class Rays:
    """Per-pixel ray geometry at the working resolution (float32 arrays, H x W)."""

    dir_x: np.ndarray  # unit ray direction in world coordinates
    dir_y: np.ndarray  # > 0 means the ray goes down and meets the ground
    dir_z: np.ndarray
    ground_a: np.ndarray  # ground point in the turned, shifted ground frame (metres)
    ground_b: np.ndarray
    distance: np.ndarray  # metres to the ground point (inf for sky pixels)
    footprint: np.ndarray  # metres of ground covered by one pixel (for texture level choice)

    def rows(self, band: slice) -> "Rays":
        return Rays(*(getattr(self, name)[band] for name in
                      ("dir_x", "dir_y", "dir_z", "ground_a", "ground_b", "distance", "footprint")))


def cast_rays(camera: Camera) -> Rays:
    h, w = camera.height, camera.width
    f = camera.focal_px
    xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0) / f
    ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2.0) / f
    # camera ray (x, y, 1) -> world: R^T @ ray, done per component with broadcasting
    rt = camera.rotation().T.astype(np.float32)
    x, y = xs[None, :], ys[:, None]
    dx = rt[0, 0] * x + rt[0, 1] * y + rt[0, 2]
    dy = rt[1, 0] * x + rt[1, 1] * y + rt[1, 2]
    dz = rt[2, 0] * x + rt[2, 1] * y + rt[2, 2]
    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
    dx, dy, dz = dx / norm, dy / norm, dz / norm
    # Rays just below the horizon meet the ground very far away: clamp the slope.
    down = np.maximum(dy, 1e-4)
    distance = np.float32(camera.height_m) / down
    wx, wz = dx * distance, dz * distance
    yaw = math.radians(camera.yaw_deg)
    cos_y, sin_y = np.float32(math.cos(yaw)), np.float32(math.sin(yaw))
    ground_a = cos_y * wx - sin_y * wz + np.float32(camera.ground_x_m)
    ground_b = sin_y * wx + cos_y * wz + np.float32(camera.ground_z_m)
    # One pixel spans distance/f across the ray, stretched along it at grazing angles.
    footprint = distance / np.float32(f) / np.sqrt(down)
    distance = np.where(dy > 0, distance, np.float32(np.inf)).astype(np.float32)
    return Rays(dx, dy, dz, ground_a, ground_b, distance, footprint)
