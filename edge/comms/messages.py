"""The messages on the MQTT topics: bundle chunks and the offshore side's acknowledgements.

A chunk's user properties: ``bundle_id``, ``index``, ``count``, ``checksum`` (SHA-256 of the
chunk), ``bundle_size`` and ``bundle_sha256`` (of the whole bundle), plus ``source`` (photo
file name) and ``surface``. An ack is a JSON object (:class:`Ack`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


# ---------------------------------------------------------------------------- chunks

@dataclass(frozen=True)
class Chunk:
    """One MQTT message of a bundle."""

    bundle_id: str
    index: int
    count: int
    checksum: str              # SHA-256 of payload (hex)
    bundle_size: int
    bundle_sha256: str
    payload: bytes
    source: str = ""
    surface: str = ""

    def checksum_ok(self) -> bool:
        return hashlib.sha256(self.payload).hexdigest() == self.checksum


class ChunkFormatError(ValueError):
    """A message on a chunk topic lacks a property or has a malformed one."""


def split_bundle(bundle_id: str, data: bytes, chunk_bytes: int, source: str = "",
                 surface: str = "") -> list[Chunk]:
    """Cut an encoded bundle into chunks of at most ``chunk_bytes`` (an empty bundle is one chunk)."""
    digest = hashlib.sha256(data).hexdigest()
    pieces = [data[i:i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
    return [Chunk(bundle_id, index, len(pieces), hashlib.sha256(piece).hexdigest(), len(data), digest,
                  piece, source, surface)
            for index, piece in enumerate(pieces)]


def chunk_properties(chunk: Chunk) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [
        ("bundle_id", chunk.bundle_id), ("index", str(chunk.index)), ("count", str(chunk.count)),
        ("checksum", chunk.checksum), ("bundle_size", str(chunk.bundle_size)),
        ("bundle_sha256", chunk.bundle_sha256), ("source", chunk.source), ("surface", chunk.surface),
    ]
    properties.ContentType = "application/x-edge-bundle-chunk"
    return properties


def parse_chunk(payload: bytes, properties: Properties | None) -> Chunk:
    """Rebuild a chunk from a received message; raises :class:`ChunkFormatError`."""
    pairs = dict(getattr(properties, "UserProperty", None) or [])
    try:
        chunk = Chunk(bundle_id=pairs["bundle_id"], index=int(pairs["index"]), count=int(pairs["count"]),
                      checksum=pairs["checksum"], bundle_size=int(pairs["bundle_size"]),
                      bundle_sha256=pairs["bundle_sha256"], payload=bytes(payload),
                      source=pairs.get("source", ""), surface=pairs.get("surface", ""))
    except KeyError as error:
        raise ChunkFormatError(f"chunk message lacks the user property {error.args[0]!r}") from None
    except ValueError:
        raise ChunkFormatError("chunk message has a non-integer index, count or bundle_size") from None
    hexdigits = set("0123456789abcdef")
    if not (len(chunk.bundle_id) == 32 and set(chunk.bundle_id) <= hexdigits):
        raise ChunkFormatError(f"bad bundle_id {chunk.bundle_id!r}")
    if not 0 <= chunk.index < chunk.count <= 1 << 20 or chunk.bundle_size < 0:
        raise ChunkFormatError(f"bad index/count {chunk.index}/{chunk.count}")
    for value in (chunk.checksum, chunk.bundle_sha256):
        if not (len(value) == 64 and set(value) <= hexdigits):
            raise ChunkFormatError(f"bad checksum {value!r}")
    return chunk


# ---------------------------------------------------------------------------- acknowledgements

@dataclass(frozen=True)
class Ack:
    """The offshore side's answer about one bundle: ok, or refused with a reason."""

    bundle_id: str
    ok: bool
    reason: str = ""            # why it was refused ("section stream:blade: checksum mismatch")
    section: str = ""           # the bundle section at fault, when known
    subscriber: str = ""        # client id of the subscriber that answered

    def encode(self) -> bytes:
        return json.dumps({"bundle_id": self.bundle_id, "ok": self.ok, "reason": self.reason,
                           "section": self.section, "subscriber": self.subscriber},
                          sort_keys=True).encode("utf-8")

    @staticmethod
    def decode(payload: bytes) -> "Ack":
        try:
            value = json.loads(payload.decode("utf-8"))
            return Ack(bundle_id=str(value["bundle_id"]), ok=bool(value["ok"]),
                       reason=str(value.get("reason", "")), section=str(value.get("section", "")),
                       subscriber=str(value.get("subscriber", "")))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed ack message: {error}") from None
