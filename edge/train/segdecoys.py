"""Grey look-alikes drawn into segmentation crops as background: gravel roads, corrugated roofs,
small sheds and (opt-in) nacelles and hubs.

Seen from above, a wind farm is more than its turbine: the tracks to the tower and the roofs of
the service buildings are as pale and as straight-edged as a blade, and the networks trained on
wta-train (sky, sea, brown ground) mark them as blade on dtu-dev's tower views. What tells them
apart is texture and shape: gravel is grainy, a roof is striped or boxy, a blade is smooth and
long; the hub's spinner is a white dome, not a long blade, even where it touches the blade roots.
The decoys here are drawn procedurally, never cut from a photo, and always lie under the blade (a
blade hangs above the ground, and a spinner is drawn only off it), so the mask stays true to the
pixels.
"""
from __future__ import annotations

import cv2
import numpy as np


_WEIGHTS = {"road": 0.5, "roof": 0.3, "shed": 0.2, "nacelle": 0.5, "hub": 0.5}   # how often each kind is drawn
KINDS = tuple(_WEIGHTS)
DEFAULT_KINDS = ("road", "roof", "shed")


def draw_decoy(rgb: np.ndarray, blade: np.ndarray, rng: np.random.Generator,
               kinds: tuple[str, ...] = DEFAULT_KINDS) -> np.ndarray:
    """``rgb`` (uint8, H x W x 3) with one decoy of a random one of ``kinds`` drawn where
    ``blade`` (bool) is not."""
    weights = np.array([_WEIGHTS[kind] for kind in kinds])
    kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
    if kind == "hub":
        shape, texture = _hub(blade, rng)
    else:
        shape, texture = {"road": _road, "roof": _roof, "shed": _shed, "nacelle": _nacelle}[kind](blade.shape, rng)
    alpha = cv2.GaussianBlur(shape, (3, 3), 0) * ~blade
    blended = alpha[..., None] * texture + (1 - alpha[..., None]) * rgb.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def rotated_coordinates(hw: tuple[int, int], centre: tuple[float, float],
                        angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an ``hw`` image, its coordinates along and across the direction ``angle``
    (radians), measured from ``centre`` (x, y)."""
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float32)
    along = (xx - centre[0]) * np.cos(angle) + (yy - centre[1]) * np.sin(angle)
    across = -(xx - centre[0]) * np.sin(angle) + (yy - centre[1]) * np.cos(angle)
    return along, across


def _neutral_colour(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A pale grey with a slight warm or cool tint (gravel, concrete, metal)."""
    return rng.uniform(low, high) + rng.uniform(-8, 8, size=3)


def _grain(hw: tuple[int, int], rng: np.random.Generator, strength: float, blur: float) -> np.ndarray:
    """Gaussian noise of about ``strength`` grey levels, softened by a blur of ``blur`` pixels
    (scaled back up, as blurring alone would flatten it)."""
    noise = rng.normal(0, strength, size=hw).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), blur) * (1 + blur) if blur > 0 else noise


def _road(hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A gravel track crossing the crop: a band with ragged edges and a grainy, patchy surface."""
    h, w = hw
    angle = rng.uniform(0, np.pi)
    centre = (rng.uniform(0, w), rng.uniform(0, h))
    across, _ = rotated_coordinates(hw, centre, angle)      # across the track: its width
    _, along = rotated_coordinates(hw, (0.0, 0.0), angle)   # along it: where it bends
    half_width = rng.uniform(0.04, 0.15) * max(h, w)
    # The edges wander by a few pixels and the track bends gently.
    ragged = _grain(hw, rng, 1.0, 2.0) * half_width * 0.15
    bend = np.sin(along / max(h, w) * rng.uniform(0.5, 2.5) + rng.uniform(0, 6.3)) * rng.uniform(0, 0.1) * max(h, w)
    shape = (np.abs(across + bend + ragged) < half_width).astype(np.float32)
    surface = _neutral_colour(rng, 150, 215)
    grain = _grain(hw, rng, rng.uniform(4, 12), rng.uniform(0.5, 1.5))
    patches = _grain(hw, rng, 1.0, 8.0) * rng.uniform(5, 15)
    texture = surface[None, None, :] + (grain + patches)[..., None]
    return shape, texture


def _roof(hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A corrugated metal roof: a turned rectangle with fine parallel ridges and a shaded half."""
    h, w = hw
    size = rng.uniform(0.2, 0.6, size=2) * max(h, w)
    centre = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
    angle = float(rng.uniform(0, 180))
    shape = np.zeros(hw, np.float32)
    corners = cv2.boxPoints((centre, (float(size[0]), float(size[1])), angle))
    cv2.fillPoly(shape, [np.round(corners).astype(np.int32)], 1.0)
    along_ridges, across_ridges = rotated_coordinates(hw, centre, np.deg2rad(angle))
    period = rng.uniform(2.5, 7.0)
    ridges = np.sin(along_ridges * 2 * np.pi / period) * rng.uniform(8, 25)
    # The two faces of a pitched roof catch different light.
    shade = np.where(across_ridges > 0, 0.0, -rng.uniform(0, 50)).astype(np.float32)
    texture = _neutral_colour(rng, 110, 210)[None, None, :] + (ridges + shade)[..., None]
    return shape, texture


def _shed(hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small box seen from above: a pale roof square with a darker wall along one side."""
    h, w = hw
    side = float(rng.uniform(0.06, 0.2) * max(h, w))
    centre = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
    angle = float(rng.uniform(0, 90))
    roof = np.zeros(hw, np.float32)
    cv2.fillPoly(roof, [np.round(cv2.boxPoints((centre, (side, side * rng.uniform(0.8, 1.6)), angle))).astype(np.int32)], 1.0)
    wall_shift = rng.uniform(-0.3, 0.3, size=2) * side
    wall = cv2.warpAffine(roof, np.float32([[1, 0, wall_shift[0]], [0, 1, wall_shift[1]]]), (w, h))
    shape = np.maximum(roof, wall)
    colour = _neutral_colour(rng, 140, 230)
    texture = colour[None, None, :] - (wall * (1 - roof) * rng.uniform(40, 90))[..., None]
    texture = texture + _grain(hw, rng, 4.0, 0.0)[..., None]
    return shape, texture


def _nacelle(hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A nacelle seen from above: a white capsule, shaded like a cylinder, a row of dark louvres
    along one side and a few rust runs (the Nordtank nacelles of dtu-dev are white with rust)."""
    h, w = hw
    length = float(rng.uniform(0.3, 0.8) * max(h, w))
    width = length / rng.uniform(2.0, 3.0)
    centre = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
    along, across = rotated_coordinates(hw, centre, rng.uniform(0, np.pi))
    # A capsule: a rectangle with round ends.
    core = np.clip(np.abs(along) - (length - width) / 2, 0, None)
    shape = (core ** 2 + across ** 2 <= (width / 2) ** 2).astype(np.float32)
    light = 1 - 0.35 * (across / (width / 2)) ** 2 * rng.uniform(0.5, 1.0)
    shade = _neutral_colour(rng, 200, 245)[None, None, :] * light[..., None]
    louvres = (np.abs(across - width * 0.3) < width * 0.04) & (np.sin(along * 2 * np.pi / (width * 0.2)) > 0.3)
    shade[louvres] *= 0.35
    for _ in range(int(rng.integers(0, 4))):
        spot = (float(rng.uniform(-length / 2, length / 2)), float(rng.uniform(-width / 2, width / 2)))
        radius = rng.uniform(0.03, 0.1) * width
        run = ((along - spot[0]) ** 2 / rng.uniform(1, 4) + (across - spot[1]) ** 2) < radius ** 2
        shade[run] = (140, 80, 50)
    return shape, shade


def _hub(blade: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A hub's spinner beside the blade: a white dome (half an ellipsoid, its base on a point of
    the blade's edge, its nose pointing away), shaded as a body of revolution, with a few grey
    smudges. Where the crop has no blade it lies anywhere."""
    h, w = blade.shape
    edge = blade & ~cv2.erode(blade.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    points = np.argwhere(edge)
    central = points[(np.abs(points - np.array([h, w]) / 2) < np.array([h, w]) * 0.35).all(axis=1)]
    points = central if len(central) else points     # a base near the middle keeps the dome in the crop
    if len(points):
        base_y, base_x = points[rng.integers(len(points))]
        half_width = float(cv2.distanceTransform(blade.astype(np.uint8), cv2.DIST_L2, 3).max())
    else:
        base_y, base_x = rng.uniform(0, h), rng.uniform(0, w)
        half_width = rng.uniform(0.03, 0.1) * max(h, w)
    radius = float(np.clip(half_width * rng.uniform(1.2, 2.5), 0.04 * max(h, w), 0.3 * max(h, w)))
    length = radius * rng.uniform(1.0, 2.0)
    # Point the nose away from the blade: the first of a few random directions whose tip is off it.
    angles = rng.uniform(0, 2 * np.pi, size=8)
    for angle in angles:
        tip = (int(base_x + np.cos(angle) * length * 0.8), int(base_y + np.sin(angle) * length * 0.8))
        if not (0 <= tip[0] < w and 0 <= tip[1] < h) or not blade[tip[1], tip[0]]:
            break
    along, across = rotated_coordinates((h, w), (float(base_x), float(base_y)), float(angle))
    profile = radius * np.sqrt(np.clip(1 - (along / length) ** 2, 0, None))
    shape = ((along >= -radius * 0.1) & (np.abs(across) <= profile)).astype(np.float32)
    # Lit from one side: brightest on one flank, darker towards the other and the rim.
    side = across / np.maximum(profile, 1.0)
    light = 1 - 0.3 * side ** 2 * rng.uniform(0.5, 1.0) + 0.12 * side * rng.choice((-1, 1))
    texture = _neutral_colour(rng, 195, 240)[None, None, :] * light[..., None]
    for _ in range(int(rng.integers(0, 3))):
        spot = (rng.uniform(0, length * 0.8), rng.uniform(-radius * 0.5, radius * 0.5))
        smudge = ((along - spot[0]) ** 2 + (across - spot[1]) ** 2) < (radius * rng.uniform(0.05, 0.15)) ** 2
        texture[smudge] = _neutral_colour(rng, 110, 160)
    return shape, texture
