"""The watcher hands over each photo once, only when complete, with inotify and with polling;
it rescans at start-up and when the folder comes back."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from edge.config import WatchConfig
from edge.daemon.watcher import NO_EVENT_FILESYSTEMS, Watcher, choose_observer, filesystem_type


@pytest.fixture
def watch(tmp_path):
    started = []

    def start(observer: str, stable_s: float, folder: Path | None = None) -> tuple[Watcher, queue.Queue]:
        folder = folder or tmp_path / "card"
        config = WatchConfig(folders=[folder], observer=observer, poll_interval_s=0.1, stable_s=stable_s)
        found: queue.Queue = queue.Queue()
        stop = threading.Event()
        watcher = Watcher(config, found, stop)
        watcher.start()
        started.append((watcher, stop))
        return watcher, found

    yield start
    for watcher, stop in started:
        stop.set()
        watcher.stop()


def drain(found: queue.Queue, wait: float) -> list:
    time.sleep(wait)
    items = []
    while not found.empty():
        items.append(found.get())
    return items


def write_slowly(path: Path, pieces: int = 4, pause: float = 0.25) -> bytes:
    data = bytes(range(256)) * 64
    with open(path, "wb") as handle:
        for _ in range(pieces):
            handle.write(data)
            handle.flush()
            time.sleep(pause)
    return data * pieces


@pytest.mark.parametrize("observer, stable_s", [("inotify", 30.0), ("polling", 0.6)])
def test_a_file_is_taken_once_when_complete(tmp_path, watch, observer, stable_s):
    """inotify: taken on close (stable_s is far too long to matter); polling: once size and mtime
    held still for stable_s, longer than the writer's pauses."""
    card = tmp_path / "card"
    card.mkdir()
    watcher, found = watch(observer, stable_s)
    time.sleep(0.3)
    size = len(write_slowly(card / "DJI_0001.JPG"))
    items = drain(found, 1.5 + (stable_s if observer == "polling" else 0))
    assert [(item.path.name, item.size) for item in items] == [("DJI_0001.JPG", size)]
    assert drain(found, 0.5) == []                   # not handed over again


def test_start_up_rescan_takes_existing_photos_and_skips_others(tmp_path, watch):
    card = tmp_path / "card"
    (card / "100MEDIA").mkdir(parents=True)
    for name in ("100MEDIA/DJI_0001.JPG", "DJI_0002.jpg", "DJI_0002.mask.png", "notes.txt", ".hidden.jpg"):
        (card / name).write_bytes(b"x" * 100)
    watcher, found = watch("inotify", 0.2)
    names = sorted(item.path.name for item in drain(found, 1.5))
    assert names == ["DJI_0001.JPG", "DJI_0002.jpg"]


def test_a_folder_that_reappears_is_rescanned(tmp_path, watch):
    card = tmp_path / "card"
    watcher, found = watch("inotify", 0.2)
    time.sleep(0.3)                                  # the card is not inserted
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "DJI_0001.JPG").write_bytes(b"x" * 100)
    staged.rename(card)                               # inserted, photo already on it: no file event
    assert [item.path.name for item in drain(found, 1.5)] == ["DJI_0001.JPG"]
    card.rename(tmp_path / "removed")                 # pulled out ...
    time.sleep(0.5)
    (tmp_path / "removed" / "DJI_0002.JPG").write_bytes(b"y" * 100)   # ... a photo added elsewhere
    (tmp_path / "removed").rename(card)               # ... and back: everything on it is handed over
    # again (it may be another card with the same names); the journal skips what it knows.
    assert sorted(item.path.name for item in drain(found, 1.5)) == ["DJI_0001.JPG", "DJI_0002.JPG"]


def test_auto_observer_polls_where_inotify_sees_nothing(tmp_path):
    assert filesystem_type(Path("/proc")) == "proc"
    kind = filesystem_type(tmp_path)
    expected = "polling" if kind.startswith(NO_EVENT_FILESYSTEMS) else "inotify"
    assert choose_observer("auto", tmp_path) == expected
    assert choose_observer("polling", tmp_path) == "polling"
