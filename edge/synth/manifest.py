"""The manifest of a synthetic inspection: one JSON file listing every photo and its mask.

``manifest.json`` at the top of the output folder::

    {"format": "edge-synth-manifest", "version": 1,
     "seed": 7, "width": 5472, "height": 3648, "quality": 90,
     "turbines": 1, "blades": 3, "surfaces": ["PS", "SS", "LE", "TE"], "images_per_surface": 30,
     "frames": [{"image": "T01/B1/PS/IMG_0001.JPG", "mask": "masks/T01/B1/PS/IMG_0001.png",
                 "turbine": 1, "blade": 1, "surface": "PS", "index": 1,
                 "capture_time": "2024-06-12T09:41:07.250", "blade_fraction": 0.3121,
                 "view": "closeup", "width": 5472, "height": 3648, "seed": 123456789,
                 "latitude": 55.1, "longitude": 7.2, "altitude_m": 92.4}, ...]}

Paths are relative to the folder holding the manifest and use forward slashes.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edge.errors import InputError

MANIFEST_NAME = "manifest.json"
FORMAT = "edge-synth-manifest"
VERSION = 1


@dataclass(frozen=True)
class FrameRecord:
    image: str
    mask: str
    turbine: int
    blade: int
    surface: str  # PS, SS, LE or TE
    index: int  # 1-based position within its surface's pass
    capture_time: str  # ISO 8601, local time of the inspection, millisecond resolution
    blade_fraction: float  # share of mask pixels that are blade
    view: str  # closeup, far or empty
    width: int
    height: int
    seed: int  # the frame's own seed (derived from the inspection seed)
    latitude: float
    longitude: float
    altitude_m: float


@dataclass(frozen=True)
class Manifest:
    seed: int
    width: int
    height: int
    quality: int
    turbines: int
    blades: int
    surfaces: tuple[str, ...]
    images_per_surface: int
    frames: tuple[FrameRecord, ...]
    tip_frames: int = 1  # frames per pass at the blade's banded outer span
    marking_share: float | None = None  # probability of red tip bands (None: by site)

    def by_surface(self) -> dict[tuple[int, int, str], list[FrameRecord]]:
        """Frames grouped by (turbine, blade, surface), in capture order."""
        groups: dict[tuple[int, int, str], list[FrameRecord]] = defaultdict(list)
        for frame in self.frames:
            groups[(frame.turbine, frame.blade, frame.surface)].append(frame)
        return dict(groups)

    def to_json(self) -> str:
        body = {"format": FORMAT, "version": VERSION}
        body.update({k: v for k, v in asdict(self).items() if k != "frames"})
        body["frames"] = [asdict(frame) for frame in self.frames]
        return json.dumps(body, indent=1)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        """Read a manifest (the file, or the folder that holds it)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read the synthetic-inspection manifest: {error}", str(path)) from error
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise InputError(f"not an {FORMAT} file", str(path))
        if body.get("version") != VERSION:
            raise InputError(f"manifest version {body.get('version')!r} is not supported (expected {VERSION})",
                             str(path))
        names = {f.name for f in fields(FrameRecord)}
        try:
            frames = tuple(FrameRecord(**{k: v for k, v in frame.items() if k in names}) for frame in body["frames"])
            return cls(body["seed"], body["width"], body["height"], body["quality"], body["turbines"],
                       body["blades"], tuple(body["surfaces"]), body["images_per_surface"], frames,
                       body.get("tip_frames", 1), body.get("marking_share"))
        except (KeyError, TypeError) as error:
            raise InputError(f"manifest is missing or has a malformed key: {error}", str(path)) from error
