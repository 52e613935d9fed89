"""Light of one surface's photos: sun direction and strength, cloud cover, haze, exposure.

All frames of a surface share one ``Lighting`` (the drone takes them within a minute or
two); surfaces differ because the drone faces another way and the weather moves on.
Colours are sRGB-like floats where 1.0 is the camera's white point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lighting:
    sun_azimuth_deg: float  # relative to the camera heading: 0 behind the camera, 180 ahead, 90 right
    sun_elevation_deg: float
    sun_strength: float  # 0 overcast (diffuse light only) .. 1 clear sun
    warmth: float  # -1 cool (noon, shade) .. 1 warm (evening)
    exposure: float  # overall brightness multiplier chosen by the camera's auto exposure
    cloud_cover: float  # 0 clear sky .. 1 overcast
    visibility_km: float  # haze: distance at which contrast drops to 1/e

    def to_sun(self) -> np.ndarray:
        """Unit vector towards the sun in world coordinates (x right, y down, z forward)."""
        az, el = math.radians(self.sun_azimuth_deg), math.radians(self.sun_elevation_deg)
        return np.array([math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)], np.float32)

    def sun_color(self) -> np.ndarray:
        warm = np.array([1.0, 0.90, 0.76], np.float32)
        cool = np.array([0.94, 0.97, 1.0], np.float32)
        neutral = np.array([1.0, 0.97, 0.93], np.float32)
        return neutral + (warm - neutral) * max(self.warmth, 0.0) + (cool - neutral) * max(-self.warmth, 0.0)

    def sky_colors(self) -> tuple[np.ndarray, np.ndarray]:
        """(zenith, horizon) colours of the clear part of the sky, greyed by cloud cover."""
        zenith = np.array([0.24, 0.45, 0.80], np.float32)
        horizon = np.array([0.70, 0.80, 0.92], np.float32)
        grey = np.array([0.70, 0.72, 0.75], np.float32)
        haze = np.float32(min(max(1.0 - self.visibility_km / 40.0, 0.0), 1.0) * 0.35)
        overcast = np.float32(max(self.cloud_cover - 0.6, 0.0) / 0.4)
        zenith = zenith + (horizon - zenith) * haze
        return zenith + (grey * 0.9 - zenith) * overcast, horizon + (grey - horizon) * overcast

    def ambient(self) -> np.ndarray:
        """Light from the whole sky falling on an upward-facing surface."""
        zenith, horizon = self.sky_colors()
        return 0.55 * (zenith + horizon) / 2 + 0.15

    def ground_light(self) -> np.ndarray:
        """Total light on flat ground, normalised so an overcast day gives about 1."""
        sun = max(math.sin(math.radians(self.sun_elevation_deg)), 0.0) * self.sun_strength
        return (self.ambient() * (1.0 - 0.35 * self.sun_strength) + 0.75 * sun * self.sun_color()) * 1.05
