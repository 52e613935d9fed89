"""Small synthetic inspection photos, configs with short timings, and waiting helpers for the
daemon and subscriber tests."""
from __future__ import annotations

import io
import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from PIL import Image

from edge.config import EdgeConfig, OffshoreConfig, dump_yaml

WIDTH, HEIGHT = 320, 240
FLIGHT_START = datetime(2024, 5, 1, 10, 0, 0)


def photo_pixels(index: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth sky/sea background with a bright blade band across it, and the blade mask."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = np.stack([90 + 60 * y / HEIGHT, 120 + 40 * x / WIDTH, 170 - 50 * y / HEIGHT], axis=-1)
    base += rng.normal(0, 6, base.shape)
    offset = 40 + 7 * (index % 12)
    mask = np.abs((y - offset) - 0.35 * x) < 28 + 2 * (index % 5)
    blade = np.full(3, 215.0) + rng.normal(0, 4, (int(mask.sum()), 3))
    base[mask] = blade
    return np.clip(base, 0, 255).astype(np.uint8), mask


def jpeg_bytes(index: int, capture: datetime | None = None, quality: int = 90) -> bytes:
    pixels, _ = photo_pixels(index)
    exif = Image.Exif()
    exif[0x010F] = "TestCam"                              # Make
    moment = (capture or FLIGHT_START + timedelta(seconds=2 * index)).strftime("%Y:%m:%d %H:%M:%S")
    exif.get_ifd(0x8769)[0x9003] = moment                 # DateTimeOriginal
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def write_photo(folder: Path, index: int, capture: datetime | None = None, name: str | None = None) -> Path:
    """Write photo ``index`` as the camera would (written, then closed)."""
    path = Path(folder) / (name or f"DJI_{index:04d}.JPG")
    path.write_bytes(jpeg_bytes(index, capture))
    return path


def write_mask(folder: Path, index: int, name: str | None = None) -> Path:
    _, mask = photo_pixels(index)
    path = Path(folder) / (name or f"DJI_{index:04d}.mask.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return path


def decoded_source(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def edge_config(root: Path, port: int, device: str = "drone-1", **sections) -> EdgeConfig:
    """Edge config with timings short enough for tests; ``sections`` override (deep merge)."""
    base = {
        "device": device,
        "watch": {"folders": [str(root / "card")], "poll_interval_s": 0.1, "stable_s": 0.3},
        "grouping": {"max_gap_s": 30, "max_photos": 8, "idle_s": 0.3},
        "segmentation": {"mode": "none"},
        "coding": {"mode": "source-file"},
        "spool": {"folder": str(root / "spool")},
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"edge-{device}", "keepalive_s": 5,
                 "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "publish": {"chunk_bytes": 16384, "status_interval_s": 0.5, "ack_timeout_s": 4},
    }
    (root / "card").mkdir(parents=True, exist_ok=True)
    return EdgeConfig.model_validate(_merge(base, sections), context={"base_dir": root})


def offshore_config(root: Path, port: int, client_id: str = "decoder-1", **sections) -> OffshoreConfig:
    base = {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": client_id, "keepalive_s": 5,
                 "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "output": {"folder": str(root / "received")},
    }
    return OffshoreConfig.model_validate(_merge(base, sections), context={"base_dir": root})


def config_yaml(config: EdgeConfig | OffshoreConfig) -> str:
    """The config as YAML text (for the command line in a subprocess)."""
    return dump_yaml(config)


def wait_for(predicate, timeout: float, message: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s: {message}")


def arrivals(output: Path) -> list[dict]:
    path = Path(output) / "arrivals.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def retained(port: int, topic: str, timeout: float = 5.0) -> bytes | None:
    """The retained message on a topic (None if there is none)."""
    got = {}
    done = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: (got.setdefault("payload", bytes(m.payload)), done.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return got.get("payload")
