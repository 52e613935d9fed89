"""`edge demo`: a generated inspection through the whole pipeline on this machine.

Steps, in order: generate a small synthetic inspection; start a local broker; start the
offshore subscriber and the edge daemon (in this process, as threads); copy the photos onto a
"card" folder one by one, as a camera writes them; wait until every photo has arrived decoded
offshore; stop everything in reverse order; print one row per photo.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.codec.imageio import read_image
from edge.codec.quality import psnr
from edge.comms.broker import start_broker
from edge.config import EdgeConfig, OffshoreConfig
from edge.daemon.pipeline import EdgeDaemon
from edge.errors import EdgeError
from edge.offshore.subscriber import Subscriber
from edge.registry import MODELS
from edge.synth import generate_inspection


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path | None = None        # default: a new temporary folder (kept, its path printed)
    images_per_surface: int = 3
    surfaces: tuple[str, ...] = ("PS", "LE")
    size: tuple[int, int] = (1024, 683)
    seed: int = 7
    blade: str = "auto"                # auto: the camera's own JPEG blocks; lossless: Bit-swap
    segmentation: str = "auto"         # auto: the model when its weights ship, else ground-truth masks
    timeout_s: float = 1800.0


class DemoError(EdgeError):
    """The demo could not complete (a photo did not arrive in time, a part failed to start)."""


def _segmentation_mode(choice: str) -> str:
    if choice != "auto":
        return choice
    spec = MODELS.get("bunetv2")
    return "model" if spec is not None and spec.weights_path.exists() else "mask-files"


def run_demo(settings: DemoSettings = DemoSettings(), echo=print) -> list[dict]:
    work = Path(settings.workdir or tempfile.mkdtemp(prefix="edge-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    staging, card, offshore = work / "generated", work / "card" / "DCIM", work / "offshore"
    card.mkdir(parents=True, exist_ok=True)
    echo(f"demo folder: {work}")

    echo("generating the inspection ...")
    manifest = generate_inspection(staging, turbines=1, images_per_surface=settings.images_per_surface,
                                   size=settings.size, seed=settings.seed, surfaces=settings.surfaces,
                                   blades=1, overwrite=True)
    frames = list(manifest.frames)
    segmentation = _segmentation_mode(settings.segmentation)
    echo(f"{len(frames)} photos of {settings.size[0]}x{settings.size[1]}; blade masks: "
         f"{'BU-Netv2 + forest' if segmentation == 'model' else 'ground truth of the generator'}")

    broker = start_broker(work / "broker")
    mqtt = {"host": broker.host, "port": broker.port, "topic_root": "demo", "reconnect_max_s": 2}
    edge_config = EdgeConfig.model_validate({
        "device": "demo-drone",
        "watch": {"folders": [str(card)], "stable_s": 0.5, "poll_interval_s": 0.5},
        "grouping": {"mode": "capture-time", "max_photos": settings.images_per_surface, "idle_s": 5},
        "segmentation": {"mode": segmentation},
        "coding": {"mode": "roi", "blade": settings.blade},
        "spool": {"folder": str(work / "spool")},
        "mqtt": {**mqtt, "client_id": "demo-edge"},
        "publish": {"status_interval_s": 5, "ack_timeout_s": 120},
    })
    offshore_config = OffshoreConfig.model_validate({
        "mqtt": {**mqtt, "client_id": "demo-offshore"},
        "output": {"folder": str(offshore)},
    })
    subscriber = Subscriber(offshore_config)
    daemon = EdgeDaemon(edge_config)
    rows = []
    started = time.monotonic()
    try:
        subscriber.start()
        daemon.start()
        for frame in frames:   # as a camera writes them: the mask first, then the photo
            source = staging / frame.image
            target = card / frame.image
            target.parent.mkdir(parents=True, exist_ok=True)
            if segmentation == "mask-files":
                shutil.copyfile(staging / frame.mask, target.with_name(target.stem + ".mask.png"))
            shutil.copyfile(source, target)
        echo(f"{len(frames)} photos written to the card; waiting for them offshore ...")
        arrivals = offshore / "arrivals.jsonl"
        while _arrived(arrivals) < len(frames):
            if time.monotonic() - started > settings.timeout_s:
                raise DemoError(f"only {_arrived(arrivals)} of {len(frames)} photos arrived in "
                                f"{settings.timeout_s:.0f} s; see {work}")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        daemon.stop()
        subscriber.stop()
        broker.stop()
    for frame in frames:
        rows.append(_row(staging / frame.image, staging / frame.mask, offshore))
    echo(_table(rows))
    echo(f"{len(rows)} photos in {elapsed:.0f} s; decoded images in {offshore / 'demo-drone'}")
    return rows


def _arrived(arrivals: Path) -> int:
    return len(arrivals.read_text().splitlines()) if arrivals.exists() else 0


def _row(photo: Path, mask_path: Path, offshore: Path) -> dict:
    sidecar_path = next((offshore / "demo-drone").glob(f"{photo.stem}-*.json"))
    sidecar = json.loads(sidecar_path.read_text())
    original, _ = read_image(photo)
    decoded, _ = read_image(sidecar_path.parent / sidecar["image"])
    blade = read_image(sidecar_path.parent / sidecar["mask"])[0][..., 0] > 127 if sidecar["mask"] else None
    row = {"photo": photo.name, "source_bytes": sidecar["source"]["size"], "bundle_bytes": sidecar["bundle_bytes"],
           "bpp": sidecar["bpp"], "regions": {r["name"]: (r["coder"], r["bpp"]) for r in sidecar["regions"]}}
    if blade is not None and blade.any():
        row["blade_exact"] = bool(np.array_equal(original[blade], decoded[blade]))
        row["blade_psnr"] = psnr(original, decoded, blade)
        row["background_psnr"] = psnr(original, decoded, ~blade) if (~blade).any() else None  # all blade
    row["seconds"] = sidecar.get("report", {}).get("seconds", {})
    return row


def _table(rows: list[dict]) -> str:
    lines = [f"{'photo':<14}{'source B':>10}{'bundle B':>10}{'ratio':>7}  {'bpp per region':<44}{'blade':>10}{'bg PSNR':>9}"]
    for row in rows:
        regions = ", ".join(f"{name} {coder} {bpp:.3f}" for name, (coder, bpp) in row["regions"].items())
        if "blade_exact" in row:
            blade = "exact" if row["blade_exact"] else f"{row['blade_psnr']:.1f} dB"
            background = "none" if row["background_psnr"] is None else f"{row['background_psnr']:.1f} dB"
        else:
            blade, background = "none", ""
        lines.append(f"{row['photo']:<14}{row['source_bytes']:>10}{row['bundle_bytes']:>10}"
                     f"{row['source_bytes'] / row['bundle_bytes']:>6.1f}x  {regions:<44}{blade:>10}{background:>9}")
    return "\n".join(lines)
