"""Surface grouping: capture-time gaps, folders, full groups and idle timeouts; EXIF capture times."""
from __future__ import annotations

import calendar
import io
from datetime import datetime

from PIL import Image

from tests.daemon_helpers import jpeg_bytes
from edge.codec.metadata import source_metadata_from_bytes
from edge.config import GroupingConfig
from edge.daemon.grouping import GroupMember, SurfaceGrouper, capture_time_from_exif


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def ids(groups):
    return [[m.photo_id for m in group.members] for group in groups]


def test_a_capture_time_gap_starts_a_new_surface():
    grouper = SurfaceGrouper(GroupingConfig(max_gap_s=30, max_photos=100, idle_s=60), Clock())
    closed = []
    for photo_id, t in enumerate([0, 2, 4, 6, 100, 102, 104]):
        closed += grouper.add(GroupMember(photo_id, 1_700_000_000 + t, ""))
    assert ids(closed) == [[0, 1, 2, 3]]
    last = grouper.flush()
    assert ids(last) == [[4, 5, 6]]
    assert closed[0].surface != last[0].surface


def test_groups_close_when_full_or_idle():
    clock = Clock()
    grouper = SurfaceGrouper(GroupingConfig(max_gap_s=30, max_photos=3, idle_s=10), clock)
    closed = []
    for photo_id in range(4):
        closed += grouper.add(GroupMember(photo_id, 1_700_000_000 + photo_id, ""))
    assert ids(closed) == [[0, 1, 2]]
    clock.now = 9.9
    assert grouper.expire() == []
    clock.now = 10.0
    assert ids(grouper.expire()) == [[3]] and grouper.open_photos == 0


def test_folder_mode_with_and_without_a_pattern():
    plain = SurfaceGrouper(GroupingConfig(mode="folder", max_photos=100), Clock())
    for photo_id, folder in enumerate(["T1/B1/PS", "T1/B1/SS", "T1/B1/PS"]):
        assert plain.add(GroupMember(photo_id, None, folder)) == []
    assert sorted(ids(plain.flush())) == [[0, 2], [1]]
    pattern = SurfaceGrouper(GroupingConfig(mode="folder", folder_regex=r"(B\d)/", max_photos=100), Clock())
    for photo_id, folder in enumerate(["T1/B1/PS", "T1/B2/PS", "T1/B1/SS"]):
        pattern.add(GroupMember(photo_id, None, folder))
    assert sorted((g.surface, [m.photo_id for m in g.members]) for g in pattern.flush()) == \
        [("B1", [0, 2]), ("B2", [1])]


def test_capture_time_from_exif():
    moment = datetime(2024, 5, 1, 10, 0, 7)
    metadata = source_metadata_from_bytes(jpeg_bytes(0, moment), "x.jpg")
    assert capture_time_from_exif(metadata.exif) == calendar.timegm(moment.timetuple())
    plain = io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, "JPEG")
    assert capture_time_from_exif(source_metadata_from_bytes(plain.getvalue(), "y.jpg").exif) is None
    assert capture_time_from_exif(b"garbage, not a TIFF structure") is None
