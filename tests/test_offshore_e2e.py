"""The offshore side with the real codec (tiny random models): damaged bundles are refused,
negatively acknowledged, and the photo still arrives through the source-file fallback;
lossless ROI blades arrive bit for bit."""
from __future__ import annotations

import hashlib
import json
import logging
import threading

import numpy as np
import paho.mqtt.client as paho
import pytest
import torch
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.daemon_helpers import arrivals, decoded_source, edge_config, offshore_config, wait_for, write_mask, write_photo
from edge.codec import photo
from edge.daemon.pipeline import EdgeDaemon
from edge.offshore.decode import PhotoDecoder
from edge.offshore.subscriber import Subscriber
from tests.tiny_models import tiny_bitswap_coder, tiny_lossy_coder

pytestmark = pytest.mark.broker
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def coders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return photo.Coders(lossy=tiny_lossy_coder(folder, patch_size=64), lossless=tiny_bitswap_coder(),
                        lossy_name="tiny-lossy", lossless_name="tiny-bitswap")


class Relay:
    """A client between the edge (topic root ``relay``) and the subscriber (root ``edge``) that
    forwards chunks and acks, and damages the first chunk of chosen photos once:

    - ``flip``: bits flipped, the chunk's checksum left as the edge computed it;
    - ``forge``: bits flipped and both checksums recomputed, so only the bundle's own section
      CRCs can tell (the bundle is a single chunk here).
    """

    def __init__(self, port: int, damage: dict[str, str]):
        self.damage = dict(damage)
        self.damaged: list[str] = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="relay", protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe("relay/+/chunk", qos=1),
                                                         c.subscribe("edge/+/ack", qos=1))
        self.client.on_message = self._forward
        self.client.connect("127.0.0.1", port)
        self.ready = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.ready.set()

    def start(self):
        self.client.loop_start()
        assert self.ready.wait(5)

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _forward(self, client, userdata, message):
        root, device, kind = message.topic.split("/")
        if kind == "ack":
            client.publish(f"relay/{device}/ack", message.payload, qos=1)
            return
        payload = bytearray(message.payload)
        pairs = list(message.properties.UserProperty)
        values = dict(pairs)
        mode = self.damage.pop(values["source"], None)
        if mode is not None and values["index"] == "0":
            middle = len(payload) // 2
            payload[middle] ^= 0x5A
            payload[middle + 1] ^= 0x01
            if mode == "forge":
                digest = hashlib.sha256(payload).hexdigest()
                pairs = [(k, digest if k in ("checksum", "bundle_sha256") else v) for k, v in pairs]
            self.damaged.append(values["source"])
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = pairs
        client.publish(f"edge/{device}/chunk", bytes(payload), qos=1, properties=properties)


def test_damaged_bundles_are_refused_and_the_photos_arrive_through_the_fallback(tmp_path, broker, coders, caplog):
    caplog.set_level(logging.INFO)
    edge = edge_config(tmp_path, broker.port, coding={"mode": "lossy", "quality": 1},
                       mqtt={"topic_root": "relay"})
    offshore = offshore_config(tmp_path, broker.port)
    card = edge.watch.folders[0]
    relay = Relay(broker.port, {"DJI_0001.JPG": "flip", "DJI_0002.JPG": "forge"})
    subscriber = Subscriber(offshore, decode=PhotoDecoder(coders))
    daemon = EdgeDaemon(edge, coders=coders)
    relay.start()
    subscriber.start()
    daemon.start()
    try:
        for index in range(4):
            write_photo(card, index)
        wait_for(lambda: daemon.journal.counts().get("acknowledged") == 4, 60, "every photo acknowledged")
        records = {r.path.rsplit("/", 1)[-1]: r for r in daemon.journal.all()}
    finally:
        daemon.stop()
        subscriber.stop()
        relay.stop()

    assert sorted(relay.damaged) == ["DJI_0001.JPG", "DJI_0002.JPG"]
    received = {r["source"]: r for r in arrivals(offshore.output.folder)}
    assert sorted(received) == [f"DJI_{i:04d}.JPG" for i in range(4)]
    rejected = offshore.output.folder / "rejected"
    for name, record in received.items():
        image = offshore.output.folder / record["image"]
        sidecar = json.loads(image.with_name(image.name[:-4] + ".json").read_text())
        coders_used = [region["coder"] for region in sidecar["regions"]]
        if name in relay.damaged:
            original = records[name]
            assert coders_used == ["source-file"] and original.fallback
            refused_id = sidecar["regions"][0]["params"]["fallback_for"]
            assert refused_id and refused_id != record["bundle_id"]
            assert "refused offshore" in original.reason
            assert np.array_equal(decoded_source(image), decoded_source(card / name))   # arrived intact
        else:
            assert coders_used == ["lossy"] and not records[name].fallback
    # The flipped chunk failed its checksum; the forged one passed it and failed a section CRC.
    chunk_reason = json.loads(next(rejected.glob("*.chunk0.json")).read_text())
    assert "checksum" in chunk_reason["reason"] and chunk_reason["section"] == "transport"
    bundle_reason = json.loads(next(rejected.glob("*.edgb.json")).read_text())
    assert "checksum mismatch" in bundle_reason["reason"] and bundle_reason["section"]
    assert "falling back to sending the source file" in caplog.text


@pytest.mark.slow
def test_lossless_roi_blades_arrive_bit_exact(tmp_path, broker, coders):
    """ROI mode (Bit-swap blade seeded by the lossy background) through the whole chain."""
    edge = edge_config(tmp_path, broker.port, segmentation={"mode": "mask-files"},
                       coding={"mode": "roi", "blade": "bitswap", "background": "hp-easn", "bg_quality": 0,
                               "if_larger_than_source": "keep"})
    offshore = offshore_config(tmp_path, broker.port)
    card = edge.watch.folders[0]
    subscriber = Subscriber(offshore, decode=PhotoDecoder(coders))
    daemon = EdgeDaemon(edge, coders=coders)
    subscriber.start()
    daemon.start()
    try:
        for index in (3, 4):
            write_mask(card, index)
            write_photo(card, index)
        wait_for(lambda: len(arrivals(offshore.output.folder)) == 2, 120, "both photos to arrive")
    finally:
        daemon.stop()
        subscriber.stop()
    for record in arrivals(offshore.output.folder):
        image = offshore.output.folder / record["image"]
        sidecar = json.loads(image.with_name(image.name[:-4] + ".json").read_text())
        assert {region["name"] for region in sidecar["regions"]} == {"background", "blade"}
        blade_cells = decoded_source(image.with_name(image.name[:-4] + ".mask.png")) > 127
        blade = blade_cells[..., 0]
        assert blade.any() and not blade.all()
        decoded, source = decoded_source(image), decoded_source(card / record["source"])
        assert np.array_equal(decoded[blade], source[blade])           # blade: bit for bit
        assert not np.array_equal(decoded[~blade], source[~blade])     # background: lossy
