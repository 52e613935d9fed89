"""Labelled segmentation data on disk, in one of two layouts:

- ``DATA/images/NAME.*`` with ``DATA/masks/STEM.png``; an optional ``DATA/index.csv`` (column
  ``image``, and optionally ``view`` and ``surface``) lists the frames;
- a synthetic inspection (``DATA/manifest.json`` written by ``edge synth``), whose frames are
  grouped by turbine, blade and surface.

Frames are grouped into *surfaces*, the unit the per-surface random forest is trained on: the
manifest's surface or the ``surface`` column when present, otherwise the frame's scene (below).

The real set ``wta-train`` names frames ``envX_NN[t]``. Neighbouring frames are near-duplicates,
so validation holds out whole scenes: one contiguous number range at the end of each
environment (:data:`WTA_HELD_OUT`), chosen so that it contains close-up frames:

- ``envA_66..74``: one blade seen from above (medium and far views),
- ``envB_47..61``: single blades and a hub seen close up, then the farm from afar,
- ``envC_43..53``: a rotor seen close up and from medium distance.

Every other frame is for training.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.synth.manifest import MANIFEST_NAME, Manifest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}   # what cv2.imread reads
WTA_HELD_OUT = {"envA": (66, 74), "envB": (47, 61), "envC": (43, 53)}
_WTA_NAME = re.compile(r"^(env[A-Za-z])_(\d+)")


@dataclass(frozen=True)
class Frame:
    image_path: Path
    mask_path: Path | None
    view: str        # "closeup", "medium", "far", "no_blade" or "" when unknown
    surface: str     # group for the per-surface forest

    @property
    def name(self) -> str:
        return self.image_path.stem


def wta_scene(name: str) -> tuple[str, int] | None:
    """(environment, frame number) of a wta-train frame name, or None for other names."""
    match = _WTA_NAME.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def is_held_out(name: str) -> bool:
    """True for frames of the held-out wta-train scenes (module doc); False for other names."""
    scene = wta_scene(name)
    if scene is None or scene[0] not in WTA_HELD_OUT:
        return False
    low, high = WTA_HELD_OUT[scene[0]]
    return low <= scene[1] <= high


def default_surface(name: str) -> str:
    """Surface of a frame without a ``surface`` column: its wta scene, else its name prefix."""
    scene = wta_scene(name)
    if scene is not None:
        env, number = scene
        part = "heldout" if is_held_out(name) else "train"
        return f"{env}-{part}"
    return name.rsplit("_", 1)[0] if "_" in name else name


def list_frames(data_dir: Path, require_masks: bool = True) -> list[Frame]:
    """Frames of a data directory in index order (or name order without an index)."""
    data_dir = Path(data_dir)
    if (data_dir / MANIFEST_NAME).exists():
        return _manifest_frames(data_dir)
    images_dir = data_dir / "images"
    if not images_dir.is_dir():
        raise InputError("no images/ folder; expected DATA/images/ and DATA/masks/", str(data_dir))
    rows: list[dict[str, str]]
    index = data_dir / "index.csv"
    if index.exists():
        with open(index, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "image" not in rows[0]:
            raise InputError("index.csv has no 'image' column", str(index))
    else:
        rows = [{"image": p.name} for p in sorted(images_dir.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES]
    frames = []
    for row in rows:
        image_path = images_dir / row["image"]
        if not image_path.exists():
            raise InputError("listed in index.csv but missing", str(image_path))
        mask_path = data_dir / "masks" / (image_path.stem + ".png")
        if not mask_path.exists():
            if require_masks:
                raise InputError("no mask for this image (expected masks/STEM.png)", str(image_path))
            mask_path = None
        surface = row.get("surface") or default_surface(image_path.stem)
        frames.append(Frame(image_path, mask_path, row.get("view", ""), surface))
    return frames


def _manifest_frames(data_dir: Path) -> list[Frame]:
    """Frames of a synthetic inspection, one surface per turbine, blade and blade side."""
    manifest = Manifest.load(data_dir / MANIFEST_NAME)
    return [Frame(data_dir / record.image, data_dir / record.mask, record.view,
                  f"T{record.turbine:02d}-B{record.blade}-{record.surface}")
            for record in manifest.frames]


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB image; a clear error for unreadable files."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("cannot read this image (missing, truncated or not an image)", str(path))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Boolean mask (blade = True) from a PNG where blade pixels are > 127."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise InputError("cannot read this mask", str(path))
    if shape is not None and mask.shape != tuple(shape):
        raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {shape[1]}x{shape[0]}", str(path))
    return mask > 127


def group_by_surface(frames: list[Frame]) -> dict[str, list[Frame]]:
    groups: dict[str, list[Frame]] = {}
    for frame in frames:
        groups.setdefault(frame.surface, []).append(frame)
    return groups
