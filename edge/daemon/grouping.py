"""Grouping photos by blade surface: the segmentation's random forest trains per surface.

Two ways to tell surfaces apart (``grouping.mode``):

- ``capture-time``: a drone flies one surface after the other; a gap of more than
  ``max_gap_s`` between EXIF capture times starts a new surface.
- ``folder``: one surface per folder (relative to the watched folder), or per match of
  ``folder_regex`` in that relative path.

A group closes after ``max_photos`` photos or when no photo joined it for ``idle_s``, so
coding never waits for a surface that is not coming.
"""
from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from PIL import Image

from edge.config import GroupingConfig

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_SUBSEC_ORIGINAL = 0x9291
_DATETIME = 0x0132


def capture_time_from_exif(exif: bytes) -> float | None:
    """EXIF DateTimeOriginal (else DateTime) as Unix seconds, read as UTC; None if absent or garbled.

    Cameras write local time without a zone: fine here, only differences matter.
    """
    if not exif:
        return None
    try:
        tags = Image.Exif()
        tags.load(exif)
        sub = tags.get_ifd(_EXIF_IFD)
        text = sub.get(_DATETIME_ORIGINAL) or tags.get(_DATETIME)
        if not isinstance(text, str):
            return None
        moment = time.strptime(text.strip("\x00 ").strip(), "%Y:%m:%d %H:%M:%S")
        seconds = float(calendar.timegm(moment))
        fraction = str(sub.get(_SUBSEC_ORIGINAL) or "").strip("\x00 ").strip()
        if fraction.isdigit():
            seconds += float(f"0.{fraction}")
        return seconds
    except Exception:        # malformed EXIF is common and never a reason to refuse a photo
        return None


@dataclass(frozen=True)
class GroupMember:
    """What grouping needs to know of a photo."""

    photo_id: int
    capture_time: float | None      # Unix seconds
    folder_key: str                 # folder relative to the watched folder ("" at its top)


@dataclass
class SurfaceGroup:
    surface: str
    members: list[GroupMember] = field(default_factory=list)
    last_capture: float | None = None
    last_added: float = 0.0         # monotonic time the last photo joined


class SurfaceGrouper:
    """Feed photos with :meth:`add`; closed groups come out of :meth:`add` and :meth:`expire`."""

    def __init__(self, config: GroupingConfig, clock=time.monotonic):
        self.config = config
        self.clock = clock
        self._open: dict[str, SurfaceGroup] = {}     # grouping key -> open group
        self._serial: dict[str, int] = {}
        self._regex = re.compile(config.folder_regex) if config.folder_regex else None

    def key_of(self, member: GroupMember) -> str:
        if self.config.mode == "capture-time":
            return ""                                # one open group at a time
        if self._regex is not None:
            match = self._regex.search(member.folder_key)
            if match:
                return match.group(1) if match.groups() else match.group(0)
        return member.folder_key

    def add(self, member: GroupMember) -> list[SurfaceGroup]:
        """Add a photo; returns the groups this closed (a capture-time gap, a full group)."""
        closed = []
        key = self.key_of(member)
        group = self._open.get(key)
        if group is not None and self._starts_new_surface(group, member):
            closed.append(self._open.pop(key))
            group = None
        if group is None:
            group = self._open[key] = SurfaceGroup(self._name(key, member))
        group.members.append(member)
        group.last_added = self.clock()
        if member.capture_time is not None:
            group.last_capture = member.capture_time
        if len(group.members) >= self.config.max_photos:
            closed.append(self._open.pop(key))
        return closed

    def expire(self) -> list[SurfaceGroup]:
        """Close the groups no photo joined for ``idle_s``."""
        now = self.clock()
        idle = [key for key, group in self._open.items() if now - group.last_added >= self.config.idle_s]
        return [self._open.pop(key) for key in idle]

    def flush(self) -> list[SurfaceGroup]:
        """Close every open group."""
        groups = list(self._open.values())
        self._open.clear()
        return groups

    @property
    def open_photos(self) -> int:
        return sum(len(group.members) for group in self._open.values())

    def _starts_new_surface(self, group: SurfaceGroup, member: GroupMember) -> bool:
        if self.config.mode != "capture-time" or member.capture_time is None or group.last_capture is None:
            return False
        return abs(member.capture_time - group.last_capture) > self.config.max_gap_s

    def _name(self, key: str, member: GroupMember) -> str:
        """A readable, unique surface name: the folder key, or the first capture time."""
        if self.config.mode == "capture-time" and member.capture_time is not None:
            base = datetime.fromtimestamp(member.capture_time, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        else:
            base = key or "top"
        serial = self._serial.get(base, 0) + 1
        self._serial[base] = serial
        return base if serial == 1 else f"{base}#{serial}"
