"""Every MQTT topic name, built in this one place (:class:`Topics`).

Both sides use it: the edge publisher (:mod:`edge.daemon.publisher`) and the offshore
subscriber (:mod:`edge.offshore.subscriber`). Topics, all under ``mqtt.topic_root``::

    ROOT/DEVICE/chunk          bundle chunks, QoS 1, user properties below   edge -> offshore
    ROOT/DEVICE/ack            {"bundle_id", "ok", "reason", ...} JSON, QoS 1 offshore -> edge
    ROOT/DEVICE/availability   online | offline (last will) | stopped, retained
    ROOT/DEVICE/status         periodic JSON status, retained
    ROOT/_offshore/CLIENT/availability   the same for each subscriber

The offshore side subscribes ``$share/GROUP/ROOT/+/chunk`` so several decoders split the load.
The chunk and ack messages themselves are in :mod:`edge.comms.messages`.
"""
from __future__ import annotations

from dataclasses import dataclass

OFFSHORE_LEVEL = "_offshore"          # topic level of subscribers; never a device name (names start alphanumeric)


@dataclass(frozen=True)
class Topics:
    """Every topic name, built in this one place."""

    root: str

    def chunks(self, device: str) -> str:
        return f"{self.root}/{device}/chunk"

    def ack(self, device: str) -> str:
        return f"{self.root}/{device}/ack"

    def availability(self, device: str) -> str:
        return f"{self.root}/{device}/availability"

    def status(self, device: str) -> str:
        return f"{self.root}/{device}/status"

    def offshore_availability(self, client_id: str) -> str:
        return f"{self.root}/{OFFSHORE_LEVEL}/{client_id}/availability"

    def chunk_subscription(self, devices: str = "+", group: str = "") -> str:
        """The offshore subscription; with a group, a shared one."""
        topic = self.chunks(devices)
        return f"$share/{group}/{topic}" if group else topic

    def device_of(self, topic: str) -> str | None:
        """The device level of a ROOT/DEVICE/... topic, or None for another topic."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        device = topic[len(prefix):].split("/", 1)[0]
        return device or None
