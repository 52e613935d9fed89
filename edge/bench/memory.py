"""Peak resident memory of a stage, for this process and its stream workers (Linux /proc).

The kernel keeps each process's high-water mark (``VmHWM``); writing ``5`` to
``/proc/PID/clear_refs`` resets it to the current resident size, so the peak of one stage is
read by resetting before it and reading after it. Where that is not allowed the mark covers
the process's whole life so far, and the result says so (``reset: false``).
"""
from __future__ import annotations

import os
from pathlib import Path


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakMemory:
    """``start()`` before a stage, ``read()`` after it: MiB of this process and of ``workers``."""

    def __init__(self, workers: list[int] | None = None):
        self.pids = [os.getpid(), *(workers or [])]
        self.reset = True

    def start(self) -> None:
        for pid in self.pids:
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                self.reset = False

    def read(self) -> dict:
        marks = [_status_kib(pid, "VmHWM") for pid in self.pids]
        main = marks[0]
        workers = sum(m for m in marks[1:] if m is not None)
        return {"main_mib": round(main / 1024, 1) if main is not None else None,
                "workers_mib": round(workers / 1024, 1),
                "total_mib": round(((main or 0) + workers) / 1024, 1),
                "reset": self.reset}
