"""Chunks: properties survive MQTT, malformed chunks are refused, reassembly in any order with
duplicates, a wrong reassembly is a transport error, two codings of one bundle id never mix."""
from __future__ import annotations

import os
import random
import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.comms.messages import Ack, ChunkFormatError, chunk_properties, parse_chunk, split_bundle
from edge.comms.topics import Topics
from edge.errors import BundleError
from edge.offshore.reassembly import ChunkStore

BUNDLE_ID = "0123456789abcdef0123456789abcdef"


def test_chunks_round_trip_through_their_properties():
    data = os.urandom(10_000)
    chunks = split_bundle(BUNDLE_ID, data, 4096, source="DJI_0001.JPG", surface="s1")
    assert [len(c.payload) for c in chunks] == [4096, 4096, 1808]
    for chunk in chunks:
        again = parse_chunk(chunk.payload, chunk_properties(chunk))
        assert again == chunk and again.checksum_ok()
    assert split_bundle(BUNDLE_ID, b"", 4096)[0].count == 1


def with_pairs(pairs) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = list(pairs)             # paho appends user properties: start afresh
    return properties


def test_malformed_chunks_are_refused():
    chunk = split_bundle(BUNDLE_ID, b"abc", 4096)[0]
    pairs = chunk_properties(chunk).UserProperty
    with pytest.raises(ChunkFormatError, match="count"):
        parse_chunk(chunk.payload, with_pairs(p for p in pairs if p[0] != "count"))
    with pytest.raises(ChunkFormatError, match="index"):
        parse_chunk(chunk.payload, with_pairs((k, "9" if k == "index" else v) for k, v in pairs))
    with pytest.raises(ChunkFormatError, match="bundle_id"):
        parse_chunk(chunk.payload, with_pairs((k, "../../etc" if k == "bundle_id" else v) for k, v in pairs))
    with pytest.raises(ChunkFormatError):
        parse_chunk(b"x", None)


def test_topics_and_acks():
    topics = Topics("fleet/edge")
    assert topics.chunk_subscription("+", "decoders") == "$share/decoders/fleet/edge/+/chunk"
    assert topics.chunk_subscription("drone-1") == "fleet/edge/drone-1/chunk"
    assert topics.device_of(topics.ack("drone-1")) == "drone-1"
    assert topics.device_of("other/drone-1/chunk") is None
    ack = Ack(BUNDLE_ID, False, "section stream:blade: checksum mismatch", "stream:blade", "decoder-1")
    assert Ack.decode(ack.encode()) == ack
    with pytest.raises(ValueError):
        Ack.decode(b"{not json")


def test_reassembly_in_any_order_with_duplicates(tmp_path):
    store = ChunkStore(tmp_path)
    data = os.urandom(50_000)
    chunks = split_bundle(BUNDLE_ID, data, 8192)
    arrivals = chunks + chunks[:3]
    random.Random(1).shuffle(arrivals)
    complete = [store.add("drone-1", chunk) for chunk in arrivals]
    first_complete = next(i for i, folder in enumerate(complete) if folder is not None)
    assert len({c.index for c in arrivals[: first_complete + 1]}) == len(chunks)   # not before the last one
    folder = complete[first_complete]
    assert store.assemble(folder) == data
    # A second coding of the same photo under the same id goes to its own folder.
    other = split_bundle(BUNDLE_ID, os.urandom(50_000), 8192)
    assert store.add("drone-1", other[0]) != folder and store.add("drone-1", other[0]) is None
    store.discard(folder)
    assert not folder.exists()


def test_a_wrong_reassembly_is_a_transport_error(tmp_path):
    store = ChunkStore(tmp_path)
    chunks = split_bundle(BUNDLE_ID, os.urandom(9000), 4096)
    for chunk in chunks[:-1]:
        store.add("drone-1", chunk)
    folder = store.add("drone-1", chunks[-1])
    (folder / "1.part").write_bytes(b"\0" * 4096)          # damaged on disk
    with pytest.raises(BundleError) as caught:
        store.assemble(folder)
    assert caught.value.section == "transport"


def test_stale_incomplete_bundles_are_swept(tmp_path):
    store = ChunkStore(tmp_path)
    chunk = split_bundle(BUNDLE_ID, os.urandom(9000), 4096)[0]
    store.add("drone-1", chunk)
    assert store.sweep(max_age_s=3600) == 0
    old = time.time() - 7200
    for path in [*store.incoming.rglob("*"), *store.incoming.iterdir()]:
        os.utime(path, (old, old))
    assert store.sweep(max_age_s=3600) == 1 and not any(store.incoming.iterdir())
