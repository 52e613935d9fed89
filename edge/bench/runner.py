"""A benchmark run: every photo through :func:`edge.bench.pipeline.measure_image`, JSON as it goes.

The JSON file is rewritten (atomically) after every photo, so a long run that stops keeps what
it measured; ``resume`` skips the photos the file already holds for the same settings and
weights. Layout::

    {"format": "edge-bench/1", "machine": {...}, "settings": {..., "key": ...},
     "started": ..., "updated": ..., "complete": bool,
     "images": [one row per photo, see edge.bench.pipeline], "summary": {...}}

The summary is computed from the rows by :func:`edge.bench.report.summarize`, as every table
and plot is.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from edge.bench.lossless import recorded_path
from edge.bench.pipeline import BenchModels, BenchOptions, finite, measure_image
from edge.bench.report import summarize
from edge.bench.uplink import Flight
from edge.codec.container import write_file_atomically
from edge.errors import InputError

FORMAT = "edge-bench/1"


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = None
    return {"host": platform.node(), "system": platform.platform(), "processor": model or platform.processor(),
            "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1) if memory_gib else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def load_result(path: Path) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read benchmark JSON: {error}", str(path)) from None
    if not isinstance(result, dict) or result.get("format") != FORMAT:
        raise InputError(f"not an edge-bench result (format {FORMAT})", str(path))
    return result


def run_benchmark(paths: list[Path], options: BenchOptions, models: BenchModels, weights: dict,
                  flight: Flight = Flight(), json_path: Path | None = None, resume: bool = False,
                  progress: Callable[[str, int, str], None] | None = None) -> dict:
    """Measure every photo; ``progress(image, done, stage)`` hears each stage. Returns the result."""
    settings = {**asdict(options), "weights": weights, "flight": asdict(flight),
                "masks": Path(models.masks_dir).name if models.masks_dir else models.mask_source,
                "segmentation": models.segmenter is not None}
    # The key (resume) tells mask folders apart by where they are; the result names only the folder.
    masks_key = str(models.masks_dir) if models.masks_dir else models.mask_source
    settings["key"] = options.key({"weights": weights, "masks": masks_key,
                                   "segmentation": settings["segmentation"]})
    result = {"format": FORMAT, "machine": machine_info(), "settings": finite(settings),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "complete": False, "images": []}
    if resume and json_path is not None and Path(json_path).exists():
        previous = load_result(json_path)
        if previous.get("settings", {}).get("key") == settings["key"] and previous["images"]:
            result["images"] = previous["images"]
            result["started"] = previous.get("started", result["started"])
    done = {row["path"] for row in result["images"]}
    for index, path in enumerate(paths):
        if recorded_path(path) in done:
            continue
        report = (lambda stage, name=Path(path).name, count=len(result["images"]):
                  progress(name, count, stage)) if progress else None
        load_before = os.getloadavg()[0]
        row = measure_image(Path(path), options, models, index=index, progress=report)
        # Other jobs on the machine stretch every time; the load says how much the times can be trusted.
        row["load_average"] = {"start": load_before, "end": os.getloadavg()[0]}
        result["images"].append(finite(row))
        _save(result, json_path)
        if progress:
            progress(Path(path).name, len(result["images"]), "done")
    result["complete"] = True
    _save(result, json_path)
    return result


def _save(result: dict, json_path: Path | None) -> None:
    result["updated"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    result["summary"] = finite(summarize(result))
    if json_path is not None:
        write_file_atomically(json_path, json.dumps(result, indent=1).encode())
