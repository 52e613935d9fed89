"""The uplink view: how long a flight's photos take to send, per coding method.

A flight of ``photos`` photos takes ``flight_minutes`` to shoot (about 400 photos in 15 minutes
for one turbine). Each method sends ``bytes_per_photo`` per photo over a link of ``link_mbps``
megabits per second (10^6 bits, the unit link speeds are sold in), with no protocol overhead::

    upload seconds = photos * bytes_per_photo * 8 / (link_mbps * 10^6)

The link keeps up with the drone when the upload takes no longer than the flight.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_LINK_MBPS = 2.0
DEFAULT_PHOTOS = 400
DEFAULT_FLIGHT_MINUTES = 15.0


@dataclass(frozen=True)
class Flight:
    photos: int = DEFAULT_PHOTOS
    minutes: float = DEFAULT_FLIGHT_MINUTES
    link_mbps: float = DEFAULT_LINK_MBPS

    def __post_init__(self):
        if self.photos < 1 or self.minutes <= 0 or self.link_mbps <= 0:
            raise ValueError("a flight needs at least one photo, a positive duration and a positive link speed")

    @property
    def photos_per_minute(self) -> float:
        """The rate the edge has to code at to keep up with the camera."""
        return self.photos / self.minutes


def upload_seconds(bytes_per_photo: float, flight: Flight) -> float:
    return flight.photos * bytes_per_photo * 8 / (flight.link_mbps * 1e6)


def upload_row(method: str, bytes_per_photo: float, flight: Flight) -> dict:
    seconds = upload_seconds(bytes_per_photo, flight)
    return {"method": method, "bytes_per_photo": bytes_per_photo, "upload_minutes": seconds / 60,
            "flight_minutes": flight.minutes, "upload_to_flight": seconds / 60 / flight.minutes,
            "keeps_up": seconds / 60 <= flight.minutes}


def uplink_table(bytes_per_photo: dict[str, float], flight: Flight) -> dict:
    """``bytes_per_photo`` maps method -> mean bytes of one full-size photo."""
    return {"flight": asdict(flight),
            "rows": [upload_row(method, size, flight) for method, size in bytes_per_photo.items()]}
