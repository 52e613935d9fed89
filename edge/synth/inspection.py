"""Write a whole synthetic inspection to disk: photos, masks and a manifest.

Layout of the output folder (T = turbine, B = blade, surfaces PS, SS, LE, TE)::

    OUT/manifest.json                          every frame, see edge.synth.manifest
    OUT/T01/B1/PS/IMG_0001.JPG                 photo: JPEG 4:2:0 with EXIF (time, GPS, camera)
    OUT/T01/B1/PS/IMG_0002.JPG
    ...
    OUT/masks/T01/B1/PS/IMG_0001.png           mask: 8-bit PNG, blade 255, else 0

Images are numbered through the whole inspection like a camera's counter (IMG_0001 ...),
in capture order: turbine, blade, surface (PS, SS, LE, TE), then the pass from root to tip.
Capture times increase by 2-3.5 s within a surface, with gaps of 20-90 s between surfaces,
1-3 min between blades and 25-50 min between turbines.

Everything is a function of the seed: the same arguments give byte-identical files,
whatever the number of worker processes (each frame has its own derived seed).
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.synth.blade import SURFACES
from edge.synth.frame import FrameSpec, render
from edge.synth.manifest import MANIFEST_NAME, FrameRecord, Manifest
from edge.synth.metadata import ShotInfo, encode_jpeg, encode_mask
from edge.synth.plan import plan_frame_in_surface, plan_surface, plan_turbine

log = logging.getLogger(__name__)

MAX_PIXELS = 20_000_000  # 5472 x 3648 (a 20 MP drone camera) fits
MIN_SIDE = 16
MAX_TURBINES = 99


def parse_size(text: str) -> tuple[int, int]:
    """``"5472x3648"`` -> (5472, 3648), checked against the supported range."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match:
        raise InputError(f"size {text!r} is not WIDTHxHEIGHT in pixels, e.g. 5472x3648")
    size = int(match.group(1)), int(match.group(2))
    check_size(size)
    return size


def check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(f"size {width}x{height} is too small: width and height must be at least {MIN_SIDE}")
    if width * height > MAX_PIXELS:
        raise InputError(f"size {width}x{height} has {width * height / 1e6:.1f} MP; at most "
                         f"{MAX_PIXELS / 1e6:.0f} MP per image is supported")


def frame_spec(seed: int, turbine: int, blade: int, surface: str, index: int, images_per_surface: int,
               size: tuple[int, int], tip_frames: int = 1, marking_share: float | None = None) -> FrameSpec:
    """Spec of one frame of an inspection (turbine, blade and index are 1-based)."""
    turbine_plan = plan_turbine(seed, turbine, marking_share)
    surface_plan = plan_surface(seed, turbine_plan, blade - 1, surface)
    return plan_frame_in_surface(surface_plan, index - 1, images_per_surface, size[0], size[1],
                                 tip_frames=tip_frames)


@dataclass(frozen=True)
class _Job:
    seed: int
    turbine: int
    blade: int
    surface: str
    index: int  # 1-based within the surface
    images_per_surface: int
    size: tuple[int, int]
    quality: int
    number: int  # image counter through the inspection
    capture_time: datetime
    out_dir: str
    tip_frames: int = 1
    marking_share: float | None = None

    @property
    def relative_dir(self) -> str:
        return f"T{self.turbine:02d}/B{self.blade}/{self.surface}"


def _timeline(seed: int, turbines: int, blades: int, surfaces: tuple[str, ...],
              images_per_surface: int) -> list[tuple[int, int, str, int, datetime]]:
    """(turbine, blade, surface, index, capture time) in capture order."""
    rng = np.random.default_rng([seed, 8])
    time = datetime(2024, int(rng.integers(5, 10)), int(rng.integers(1, 29)), int(rng.integers(8, 15)),
                    int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    shots = []
    for turbine in range(1, turbines + 1):
        if turbine > 1:
            time += timedelta(minutes=float(rng.uniform(25, 50)))
        for blade in range(1, 4):
            blade_gap = timedelta(seconds=float(rng.uniform(60, 180)))
            if blade > blades:
                continue
            if blade > 1:
                time += blade_gap
            for s, surface in enumerate(SURFACES):
                surface_gap = timedelta(seconds=float(rng.uniform(20, 90)))
                interval = float(rng.uniform(2.0, 3.5))
                if surface not in surfaces:
                    continue
                if shots and shots[-1][:2] == (turbine, blade):
                    time += surface_gap
                for index in range(1, images_per_surface + 1):
                    if index > 1:
                        time += timedelta(seconds=interval + float(rng.uniform(-0.3, 0.3)))
                    stamp = time.replace(microsecond=(time.microsecond // 1000) * 1000)
                    shots.append((turbine, blade, surface, index, stamp))
    return shots


def _shot_info(spec: FrameSpec, job: _Job) -> ShotInfo:
    """Where the drone was: the turbine's position, offset by its stand-off and heading."""
    turbine = plan_turbine(job.seed, job.turbine, job.marking_share)
    rng = np.random.default_rng([spec.seed, 9])
    heading = math.radians(spec.scene.yaw_deg)
    back = 15.0 + 10.0 * float(rng.random())
    east = -back * math.sin(heading) + spec.scene.ground_x_m * math.cos(heading)
    north = -back * math.cos(heading) - spec.scene.ground_x_m * math.sin(heading)
    elevation = 0.0 if turbine.kind == "sea" else float(np.random.default_rng([job.seed, job.turbine, 10]).uniform(5, 80))
    grain = spec.grain
    return ShotInfo(
        capture_time=job.capture_time,
        latitude=turbine.latitude + north / 111_320.0,
        longitude=turbine.longitude + east / (111_320.0 * math.cos(math.radians(turbine.latitude))),
        altitude_m=round(elevation + spec.scene.height_m, 2),
        exposure_s=1.0 / float(400 + 1600 * spec.lighting.sun_strength * float(rng.uniform(0.7, 1.0))),
        f_number=float(rng.choice([2.8, 3.2, 4.0, 4.5, 5.6])),
        iso=100 if grain < 1.6 else 200 if grain < 2.4 else 400,
    )


def _render_job(job: _Job) -> FrameRecord:
    spec = frame_spec(job.seed, job.turbine, job.blade, job.surface, job.index, job.images_per_surface, job.size,
                      job.tip_frames, job.marking_share)
    rgb, mask = render(spec)
    shot = _shot_info(spec, job)
    out = Path(job.out_dir)
    name = f"IMG_{job.number:04d}"
    image_path = f"{job.relative_dir}/{name}.JPG"
    mask_path = f"masks/{job.relative_dir}/{name}.png"
    for relative, data in ((image_path, encode_jpeg(rgb, shot, job.quality)), (mask_path, encode_mask(mask))):
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return FrameRecord(
        image=image_path,
        mask=mask_path,
        turbine=job.turbine,
        blade=job.blade,
        surface=job.surface,
        index=job.index,
        capture_time=job.capture_time.isoformat(timespec="milliseconds"),
        blade_fraction=round(float(mask.mean()), 5),
        view=spec.kind,
        width=job.size[0],
        height=job.size[1],
        seed=spec.seed,
        latitude=round(shot.latitude, 7),
        longitude=round(shot.longitude, 7),
        altitude_m=shot.altitude_m,
    )


def _render_jobs(jobs: list[_Job]) -> list[FrameRecord]:
    return [_render_job(job) for job in jobs]


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the pool already uses the cores


def generate_inspection(
    out_dir: str | Path,
    turbines: int = 1,
    images_per_surface: int = 10,
    size: tuple[int, int] = (5472, 3648),
    seed: int = 0,
    quality: int = 90,
    workers: int = 1,
    overwrite: bool = False,
    blades: int = 3,
    surfaces: tuple[str, ...] = SURFACES,
    tip_frames: int = 1,
    marking_share: float | None = None,
) -> Manifest:
    """Render and write an inspection of ``turbines`` x ``blades`` x ``surfaces`` x ``images_per_surface``.

    Returns the manifest, also written to ``out_dir/manifest.json``. ``workers`` > 1 renders
    in that many processes (same bytes either way). A frame's pixels depend only on the seed
    and its (turbine, blade, surface, index), not on which blades or surfaces are chosen.
    Refuses a folder that already holds a manifest unless ``overwrite``.

    ``tip_frames`` > 1 spends that many frames of each pass on the outer span where red
    aviation bands are painted (a training set that sees banded tips more often);
    ``marking_share`` sets the probability of a turbine with banded tips (default by site).
    """
    check_size(size)
    if not 1 <= blades <= 3:
        raise InputError(f"blades must be between 1 and 3, got {blades}")
    unknown = [s for s in surfaces if s not in SURFACES]
    if unknown or not surfaces:
        raise InputError(f"surfaces must be among {', '.join(SURFACES)}, got {', '.join(surfaces) or 'none'}")
    if not 1 <= turbines <= MAX_TURBINES:
        raise InputError(f"turbines must be between 1 and {MAX_TURBINES}, got {turbines}")
    if images_per_surface < 1:
        raise InputError(f"images per surface must be at least 1, got {images_per_surface}")
    if not 1 <= quality <= 100:
        raise InputError(f"JPEG quality must be between 1 and 100, got {quality}")
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if not 1 <= tip_frames <= images_per_surface:
        raise InputError(f"tip frames must be between 1 and the images per surface ({images_per_surface}), "
                         f"got {tip_frames}")
    if marking_share is not None and not 0.0 <= marking_share <= 1.0:
        raise InputError(f"marking share must be between 0 and 1, got {marking_share}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", str(out))
    if (out / MANIFEST_NAME).exists() and not overwrite:
        raise InputError("folder already holds a synthetic inspection; choose a new folder or overwrite",
                         str(out))
    out.mkdir(parents=True, exist_ok=True)

    jobs = [
        _Job(seed, turbine, blade, surface, index, images_per_surface, tuple(size), quality, number, stamp, str(out),
             tip_frames, marking_share)
        for number, (turbine, blade, surface, index, stamp) in enumerate(
            _timeline(seed, turbines, blades, tuple(surfaces), images_per_surface), start=1)
    ]
    # Tasks are runs of consecutive frames of one surface, so a worker reuses that surface's
    # cached terrain and blade textures.
    tasks: list[list[_Job]] = []
    pieces = max(1, min(workers, images_per_surface))
    for start in range(0, len(jobs), images_per_surface):
        surface_jobs = jobs[start:start + images_per_surface]
        step = math.ceil(len(surface_jobs) / pieces)
        tasks.extend(surface_jobs[i:i + step] for i in range(0, len(surface_jobs), step))

    records: list[FrameRecord] = []
    if workers == 1:
        # One OpenCV thread: on a shared machine extra threads wait for busy cores.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for number, task in enumerate(tasks, 1):
                records.extend(_render_jobs(task))
                log.debug("rendered task %d/%d", number, len(tasks))
        finally:
            cv2.setNumThreads(threads)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
            for result in pool.map(_render_jobs, tasks):
                records.extend(result)
    manifest = Manifest(seed, size[0], size[1], quality, turbines, blades, tuple(surfaces), images_per_surface,
                        tuple(records), tip_frames, marking_share)
    manifest.write(out)
    log.info("wrote %d frames and their masks to %s", len(records), out)
    return manifest
