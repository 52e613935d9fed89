"""Whole-flight soak: hundreds of photos through the real daemon, broker and subscriber, watching
for anything that grows.

    python -m edge.bench.soak PHOTOS_FOLDER --work SCRATCH [--photos 400] [--interval 1.0]
        [--mode source-file] [--json docs/soak.json] [--plot docs/soak.png]

A real Mosquitto, ``python -m edge.daemon`` and ``python -m edge.offshore`` run as their own
processes (as systemd runs them). The camera is simulated: every ``--interval`` seconds one
photo lands in the watched folder: a photo of PHOTOS_FOLDER (wta-train's images for the
committed run) scaled down to ``--width`` pixels, with
its own EXIF capture time, so that every file is a different photo. Every ``--sample`` seconds
the script records the resident memory (RSS) of both services, the queue depths and photo
counts from the daemon's status topic, the size of the journal and of the spool, and the
photos that arrived offshore.

The result says how many photos were lost or arrived twice, the daemon's RSS after photo 50
and after the last photo, and for each series whether it is flat: RSS after the warm-up (the
first 50 photos) should not grow; queues and the spool should drain to where they started.
The journal grows by one row per photo by design: its bytes per photo are reported instead.
With ``--mode source-file`` (the default, the fastest) the daemon sends each file as it is, so
the soak measures the daemon rather than the codec.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import yaml
from PIL import Image

from edge.comms.broker import MosquittoBroker, find_mosquitto
from edge.comms.topics import Topics
from edge.service.processes import ServiceProcess

WARM_UP = 50                 # photos after which the daemon's RSS is taken as the reference
FLAT_LIMIT = 0.20            # growth beyond this fraction of the reference is "not flat"


# ---------------------------------------------------------------------------- measuring

def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process in MiB (VmRSS), None if it is gone."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def folder_bytes(folder: Path, skip: tuple[str, ...] = ()) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if name.startswith(skip):
                continue
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class StatusListener:
    """Keeps the daemon's latest status message (a plain MQTT subscriber of the status topic)."""

    def __init__(self, port: int, topic: str):
        self.latest: dict = {}
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5,
                                   client_id="soak-status")
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        try:
            self.latest = json.loads(message.payload)
        except ValueError:
            pass

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def arrivals(output: Path) -> list[dict]:
    path = output / "arrivals.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------- the camera

def photo_bytes(index: int, sources: list[Path], width: int, start: datetime) -> bytes:
    """Photo ``index``: a wta-train photo scaled to ``width``, with its own capture time."""
    with Image.open(sources[index % len(sources)]) as image:
        image = image.convert("RGB")
        height = round(image.height * width / image.width)
        small = image.resize((width, height), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x010F] = "SoakCam"
    exif.get_ifd(0x8769)[0x9003] = (start + timedelta(seconds=2 * index)).strftime("%Y:%m:%d %H:%M:%S")
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def configs(work: Path, port: int, mode: str) -> tuple[Path, Path]:
    edge = {
        "device": "soak-drone",
        "watch": {"folders": [str(work / "card")], "stable_s": 1.0},
        "grouping": {"max_photos": 40, "idle_s": 5},
        "segmentation": {"mode": "none"},
        "coding": {"mode": mode},
        "spool": {"folder": str(work / "spool")},
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "soak-edge"},
        "publish": {"status_interval_s": 2, "ack_timeout_s": 120},
    }
    offshore = {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "soak-offshore"},
        "output": {"folder": str(work / "received"), "write_jpeg": False},
    }
    edge_path, offshore_path = work / "edge.yaml", work / "offshore.yaml"
    edge_path.write_text(yaml.safe_dump(edge, sort_keys=False))
    offshore_path.write_text(yaml.safe_dump(offshore, sort_keys=False))
    return edge_path, offshore_path


# ---------------------------------------------------------------------------- the run

def soak(source_folder: Path, work: Path, photos: int, interval_s: float, sample_s: float, width: int, mode: str,
         timeout_s: float) -> dict:
    if find_mosquitto() is None:
        raise SystemExit("soak: mosquitto is not installed (scripts/install.sh installs it)")
    sources = sorted(p for p in source_folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not sources:
        raise SystemExit(f"soak: no JPEG photos in {source_folder}")
    if work.exists():
        shutil.rmtree(work)                       # every run starts empty: the journal counts from zero
    (work / "card").mkdir(parents=True)
    broker = MosquittoBroker(work / "broker").start()
    edge_path, offshore_path = configs(work, broker.port, mode)
    subscriber = ServiceProcess("subscriber", offshore_path, log_path=work / "subscriber.log").start()
    daemon = ServiceProcess("daemon", edge_path, log_path=work / "daemon.log").start()
    status = StatusListener(broker.port, Topics("edge").status("soak-drone"))
    output = work / "received"
    samples: list[dict] = []
    written = 0
    started = time.monotonic()
    flight_start = datetime(2024, 6, 1, 9, 0, 0)
    stop_camera = threading.Event()

    def camera() -> None:                         # one photo every interval, as a drone would take them
        nonlocal written
        for index in range(photos):
            data = photo_bytes(index, sources, width, flight_start)
            target = work / "card" / f"SOAK_{index:04d}.JPG"
            temporary = target.with_name("." + target.name)
            temporary.write_bytes(data)
            temporary.rename(target)               # complete when it appears
            written = index + 1
            if stop_camera.wait(interval_s):
                return

    thread = threading.Thread(target=camera, daemon=True)
    thread.start()
    try:
        while True:
            now = time.monotonic() - started
            latest = dict(status.latest)
            counts = latest.get("photos", {})
            arrived = len(arrivals(output))
            spool = work / "spool"
            journal = spool / "journal.sqlite"
            samples.append({
                "t_s": round(now, 2),
                "written": written,
                "arrived": arrived,
                "acknowledged": counts.get("acknowledged", 0),
                "daemon_rss_mib": rss_mib(daemon.process.pid if daemon.running else None),
                "subscriber_rss_mib": rss_mib(subscriber.process.pid if subscriber.running else None),
                "queues": latest.get("queues", {}),
                "queued_total": sum(latest.get("queues", {}).values()),
                "unfinished": sum(counts.get(s, 0) for s in ("seen", "segmented", "coded")),
                "in_spool": counts.get("spooled", 0) + counts.get("published", 0),
                "journal_bytes": journal.stat().st_size if journal.exists() else 0,
                "journal_wal_bytes": (spool / "journal.sqlite-wal").stat().st_size
                if (spool / "journal.sqlite-wal").exists() else 0,
                "spool_bytes": folder_bytes(spool, skip=("journal.sqlite",)),
                "disk_full": latest.get("disk_full"),
            })
            if written >= photos and counts.get("acknowledged", 0) >= photos and arrived >= photos:
                break
            if now > timeout_s:
                print(f"soak: timed out after {timeout_s:.0f} s", file=sys.stderr)
                break
            if not (daemon.running and subscriber.running):
                print("soak: a service died; see the logs in", work, file=sys.stderr)
                break
            if len(samples) % 15 == 0:
                print(f"[{now:6.0f} s] written {written}, acknowledged {counts.get('acknowledged', 0)}, "
                      f"daemon {samples[-1]['daemon_rss_mib']} MiB", flush=True)
            time.sleep(sample_s)
        time.sleep(2 * sample_s)                 # the last status and spool clean-up
    finally:
        stop_camera.set()
        thread.join(10)
        status.close()
        daemon_code = daemon.stop()
        subscriber_code = subscriber.stop()
        daemon.close()
        subscriber.close()
        broker.stop()
    received = arrivals(output)
    names = [record["source"] for record in received]
    expected = {f"SOAK_{i:04d}.JPG" for i in range(photos)}
    return summarise({
        "photos": photos, "interval_s": interval_s, "width": width, "mode": mode,
        "written": written, "arrived": len(received),
        "lost": sorted(expected - set(names)), "duplicated": len(names) - len(set(names)),
        "daemon_exit": daemon_code, "subscriber_exit": subscriber_code,
        "leftover_bundles": len(list((work / "spool" / "bundles").glob("*"))),
        "samples": samples,
    })


# ---------------------------------------------------------------------------- judging

def _at_photo(samples: list[dict], count: int, key: str) -> float | None:
    """The first sample of ``key`` once ``count`` photos were acknowledged."""
    for sample in samples:
        if sample["acknowledged"] >= count and sample[key] is not None:
            return sample[key]
    return None


def _slope_per_100(samples: list[dict], key: str, start: int) -> float | None:
    """Least-squares slope of ``key`` per 100 acknowledged photos, from ``start`` photos on."""
    points = [(s["acknowledged"], s[key]) for s in samples if s["acknowledged"] >= start and s[key] is not None]
    if len(points) < 3 or points[-1][0] == points[0][0]:
        return None
    x, y = np.array(points, dtype=float).T
    return float(np.polyfit(x, y, 1)[0] * 100)


def summarise(result: dict) -> dict:
    samples, photos = result["samples"], result["photos"]
    findings = []
    for key in ("daemon_rss_mib", "subscriber_rss_mib"):
        early, late = _at_photo(samples, WARM_UP, key), _at_photo(samples, photos, key)
        slope = _slope_per_100(samples, key, WARM_UP)
        ratio = late / early if early and late else None
        result[key] = {"after_photo_50": early, f"after_photo_{photos}": late,
                       "ratio": round(ratio, 3) if ratio else None,
                       "slope_mib_per_100_photos": round(slope, 2) if slope is not None else None}
        if ratio is None or abs(ratio - 1) > FLAT_LIMIT:
            findings.append(f"{key}: {early} MiB after photo {WARM_UP}, {late} MiB after photo {photos} "
                            f"(not within {FLAT_LIMIT:.0%})")
    last = samples[-1] if samples else {}
    for key in ("queued_total", "unfinished", "in_spool"):
        if last.get(key):
            findings.append(f"{key}: {last[key]} at the end (should drain to 0)")
    base_spool = samples[0]["spool_bytes"] if samples else 0
    if last.get("spool_bytes", 0) > base_spool + 64 * 1024:
        findings.append(f"spool: {last['spool_bytes']} bytes at the end, {base_spool} at the start")
    if result["lost"] or result["duplicated"]:
        findings.append(f"{len(result['lost'])} lost, {result['duplicated']} duplicated")
    journal_per_photo = _slope_per_100(samples, "journal_bytes", WARM_UP)
    result["journal_bytes_per_photo"] = round(journal_per_photo / 100, 1) if journal_per_photo else None
    result["duration_s"] = samples[-1]["t_s"] if samples else 0
    result["findings"] = findings
    result["flat"] = not findings
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib   # imported here: an optional dependency (the classical extra)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t_s"] / 60 for s in samples]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    (memory, queues), (disk, progress) = axes
    memory.plot(t, [s["daemon_rss_mib"] for s in samples], label="edge daemon")
    memory.plot(t, [s["subscriber_rss_mib"] for s in samples], label="offshore subscriber")
    memory.set_ylabel("RSS (MiB)")
    memory.set_ylim(bottom=0)
    memory.legend()
    queues.plot(t, [s["queued_total"] for s in samples], label="items in stage queues")
    queues.plot(t, [s["unfinished"] for s in samples], label="photos not yet spooled")
    queues.plot(t, [s["in_spool"] for s in samples], label="bundles in the spool")
    queues.set_ylabel("count")
    queues.legend()
    disk.plot(t, [s["journal_bytes"] / 1024 for s in samples], label="journal")
    disk.plot(t, [s["journal_wal_bytes"] / 1024 for s in samples], label="journal WAL")
    disk.plot(t, [s["spool_bytes"] / 1024 for s in samples], label="spool files")
    disk.set_ylabel("KiB")
    disk.set_xlabel("minutes")
    disk.legend()
    progress.plot(t, [s["written"] for s in samples], label="photos written to the card")
    progress.plot(t, [s["acknowledged"] for s in samples], label="photos acknowledged")
    progress.set_ylabel("photos")
    progress.set_xlabel("minutes")
    progress.legend()
    rss = result["daemon_rss_mib"]
    early, late = rss["after_photo_50"], rss[f"after_photo_{result['photos']}"]
    figure.suptitle(f"Soak: {result['photos']} photos ({result['mode']}, {result['width']} px), "
                    f"{len(result['lost'])} lost, {result['duplicated']} duplicated; daemon RSS "
                    f"{early or 0:.0f} MiB after photo {WARM_UP}, {late or 0:.0f} MiB after the last")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("photos_folder", type=Path, help="JPEG photos to cycle through (e.g. wta-train/images)")
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between photos")
    parser.add_argument("--sample", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--width", type=int, default=640, help="width of the scaled-down photos")
    parser.add_argument("--mode", default="source-file", help="coding.mode (source-file: the fastest)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied)")
    parser.add_argument("--json", type=Path, default=Path("docs/soak.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/soak.png"))
    args = parser.parse_args(argv)
    result = soak(args.photos_folder, args.work, args.photos, args.interval, args.sample, args.width, args.mode, args.timeout)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.plot)
    rss = result["daemon_rss_mib"]
    late = rss[f"after_photo_{result['photos']}"]
    print(f"{result['arrived']} of {result['photos']} arrived, {len(result['lost'])} lost, "
          f"{result['duplicated']} duplicated; daemon RSS {rss['after_photo_50']} MiB after photo {WARM_UP}, "
          f"{late} MiB after photo {result['photos']} (ratio {rss['ratio']})")
    for finding in result["findings"]:
        print("NOT FLAT:", finding)
    return 0 if result["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
