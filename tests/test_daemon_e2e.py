"""The edge daemon and the offshore subscriber against a real Mosquitto: photos dropped into the
watched folder arrive decoded offshore, exactly once, through broker crashes, bad files,
an absent subscriber, a full spool and damaged chunks."""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.daemon_helpers import (FLIGHT_START, arrivals, decoded_source, edge_config, offshore_config,
                            photo_pixels, retained, wait_for, write_mask, write_photo)
from edge.codec.sourcefile import compress_source_file
from edge.comms.topics import Topics
from edge.daemon.journal import Journal
from edge.daemon.pipeline import EdgeDaemon
from edge.offshore.subscriber import Subscriber

pytestmark = pytest.mark.broker


class Running:
    """Start things, and stop them in reverse order whatever happens."""

    def __init__(self):
        self.items = []

    def __call__(self, thing):
        thing.start()
        self.items.append(thing)
        return thing

    def stop(self, thing) -> None:
        if thing in self.items:
            self.items.remove(thing)
            thing.stop()

    def stop_all(self) -> None:
        while self.items:
            self.items.pop().stop()


@pytest.fixture
def running():
    started = Running()
    try:
        yield started
    finally:
        started.stop_all()


def journal_states(config) -> dict:
    journal = Journal(config.journal_path)
    try:
        return {Path(record.path).name: record for record in journal.all()}
    finally:
        journal.close()


# ---------------------------------------------------------------------------- the main path

def test_twenty_photos_arrive_decoded_exactly_once(tmp_path, broker, running):
    """20 photos over two surfaces (a capture-time gap) arrive bit-exact, with metadata and masks."""
    edge = edge_config(tmp_path, broker.port, segmentation={"mode": "mask-files"})
    offshore = offshore_config(tmp_path, broker.port)
    running(Subscriber(offshore))
    daemon = running(EdgeDaemon(edge))
    card = edge.watch.folders[0]
    photos = []
    for index in range(20):
        if index % 2 == 0:
            write_mask(card, index)                     # masks for half the photos
        gap = 120 if index >= 10 else 0                 # a second surface after a 2-minute gap
        photos.append(write_photo(card, index, FLIGHT_START + timedelta(seconds=2 * index + gap)))
        time.sleep(0.02)

    wait_for(lambda: len(arrivals(offshore.output.folder)) >= 20, 60, "20 photos to arrive")
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 20, 20, "20 acknowledgements")
    topics = Topics(edge.mqtt.topic_root)
    status = json.loads(retained(broker.port, topics.status(edge.device)))
    assert retained(broker.port, topics.availability(edge.device)) == b"online"
    running.stop(daemon)
    assert retained(broker.port, topics.availability(edge.device)) == b"stopped"

    records = arrivals(offshore.output.folder)
    assert len(records) == 20 and len({r["sha256"] for r in records}) == 20
    for record in records:
        source = card / record["source"]
        image_path = offshore.output.folder / record["image"]
        assert np.array_equal(decoded_source(image_path), decoded_source(source))   # exact pixels
        with Image.open(image_path) as image:                                       # metadata restored
            assert image.getexif().get_ifd(0x8769).get(0x9003)
        stem = image_path.name[:-len(".png")]
        sidecar = json.loads((image_path.parent / f"{stem}.json").read_text())
        assert sidecar["source"]["sha256"] == record["sha256"] and sidecar["device"] == edge.device
        assert (image_path.parent / f"{stem}.source.jpg").read_bytes() == source.read_bytes()
        mask = np.asarray(Image.open(image_path.parent / f"{stem}.mask.png")) > 127
        index = int(record["source"][4:8])
        if index % 2 == 0:
            truth = photo_pixels(index)[1]
            assert mask[truth].all() and mask.any()       # blade cells cover the blade
        else:
            assert not mask.any()
    surfaces = {r.surface for r in journal_states(edge).values()}
    assert len(surfaces) >= 2                             # the gap split the flight
    assert status["device"] == edge.device and "photos" in status and "queues" in status
    assert not any(edge.spool.folder.joinpath("bundles").iterdir())   # acknowledged bundles deleted


def test_bad_files_are_quarantined_and_the_rest_arrive(tmp_path, broker, running):
    edge = edge_config(tmp_path, broker.port)
    offshore = offshore_config(tmp_path, broker.port)
    running(Subscriber(offshore))
    daemon = running(EdgeDaemon(edge))
    card = edge.watch.folders[0]
    good = [write_photo(card, index) for index in range(3)]
    whole = (card / "DJI_0000.JPG").read_bytes()
    (card / "DJI_0100.JPG").write_bytes(whole[: len(whole) // 2])     # truncated JPEG
    (card / "DJI_0101.JPG").write_bytes(b"flight log, not a photo\n" * 50)

    wait_for(lambda: len(arrivals(offshore.output.folder)) >= 3, 30, "the good photos to arrive")
    wait_for(lambda: daemon.journal.counts().get("failed") == 2, 10, "two quarantined files")
    states = {Path(r.path).name: r for r in daemon.journal.all()}
    assert "truncated" in states["DJI_0100.JPG"].reason
    assert "cannot identify image" in states["DJI_0101.JPG"].reason
    quarantine = edge.quarantine_folder
    reasons = sorted(p.read_text() for p in quarantine.glob("*.reason.txt"))
    assert len(reasons) == 2 and any("DJI_0100.JPG" in r and "truncated" in r for r in reasons)
    assert sorted(r["source"] for r in arrivals(offshore.output.folder)) == [p.name for p in good]


# ---------------------------------------------------------------------------- outages

def test_broker_killed_mid_transfer_and_restarted(tmp_path, broker, running):
    """SIGKILL the broker while bundles are on their way: after its restart every photo
    arrives, none twice."""
    edge = edge_config(tmp_path, broker.port, publish={"rate_limit_bytes_per_s": "120KB", "ack_timeout_s": 3})
    offshore = offshore_config(tmp_path, broker.port)
    running(Subscriber(offshore))
    daemon = running(EdgeDaemon(edge))
    card = edge.watch.folders[0]
    for index in range(10):
        write_photo(card, index)
    wait_for(lambda: len(arrivals(offshore.output.folder)) >= 2, 30, "the first photos to arrive")
    broker.kill()
    time.sleep(1.5)
    assert len(arrivals(offshore.output.folder)) < 10, "the transfer finished before the crash"
    broker.start()
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 10, 60, "every photo acknowledged")
    records = arrivals(offshore.output.folder)
    assert sorted(r["source"] for r in records) == [f"DJI_{i:04d}.JPG" for i in range(10)]


def test_subscriber_offline_during_the_flight_gets_everything(tmp_path, broker, running):
    edge = edge_config(tmp_path, broker.port, publish={"ack_timeout_s": 600})
    offshore = offshore_config(tmp_path, broker.port)
    subscriber = running(Subscriber(offshore))
    subscriber.link.wait_connected(5)
    time.sleep(0.3)                                     # subscription registered at the broker
    running.stop(subscriber)                            # away: its persistent session queues for it
    daemon = running(EdgeDaemon(edge))
    card = edge.watch.folders[0]
    for index in range(8):
        write_photo(card, index)
    wait_for(lambda: daemon.journal.counts().get("published") == 8, 30, "every bundle published")
    assert arrivals(offshore.output.folder) == []
    running(Subscriber(offshore))                       # back: no re-send needed (ack timeout 600 s)
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 8, 30, "every photo acknowledged")
    assert len(arrivals(offshore.output.folder)) == 8


def test_bundles_are_sent_again_when_nobody_listened(tmp_path, broker, running):
    """No subscriber ever connected: the broker drops the chunks; after the ack timeout the edge
    sends them again and they arrive."""
    edge = edge_config(tmp_path, broker.port, publish={"ack_timeout_s": 1})
    offshore = offshore_config(tmp_path, broker.port)
    daemon = running(EdgeDaemon(edge))
    for index in range(3):
        write_photo(edge.watch.folders[0], index)
    wait_for(lambda: daemon.journal.counts().get("published") == 3, 20, "bundles published to nobody")
    running(Subscriber(offshore))
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 3, 30, "every photo acknowledged")
    assert all(record.attempts >= 2 for record in daemon.journal.all())


def test_full_spool_waits_with_a_warning_and_drops_nothing(tmp_path, broker, running, caplog):
    caplog.set_level(logging.WARNING, logger="edge.daemon.spool")
    edge = edge_config(tmp_path, broker.port, spool={"max_bytes": "100KB"})
    offshore = offshore_config(tmp_path, broker.port)
    daemon = running(EdgeDaemon(edge))
    for index in range(6):
        write_photo(edge.watch.folders[0], index)
    wait_for(lambda: "spool" in caplog.text and "is full" in caplog.text, 20, "the spool-full warning")
    assert daemon.spool.used_bytes <= 100_000
    running(Subscriber(offshore))
    wait_for(lambda: len(arrivals(offshore.output.folder)) == 6, 40, "every photo to arrive")
    assert caplog.text.count("is full") == 1 or "has room again" in caplog.text


def test_two_subscribers_share_the_load_and_write_each_photo_once(tmp_path, broker, running):
    edge = edge_config(tmp_path, broker.port, publish={"chunk_bytes": "8KiB"})
    first = running(Subscriber(offshore_config(tmp_path, broker.port, client_id="decoder-a")))
    second = running(Subscriber(offshore_config(tmp_path, broker.port, client_id="decoder-b")))
    daemon = running(EdgeDaemon(edge))
    for index in range(10):
        write_photo(edge.watch.folders[0], index)
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 10, 40, "every photo acknowledged")
    records = arrivals(first.config.output.folder)
    assert sorted(r["source"] for r in records) == [f"DJI_{i:04d}.JPG" for i in range(10)]
    assert first.chunks_received > 0 and second.chunks_received > 0      # the chunks were split between them


def test_source_policy_spool_codes_from_the_copy_and_cleans_up_after_the_ack(tmp_path, broker, running):
    """The photo is copied into the spool at intake (the card may be pulled); coding reads the
    copy; after the acknowledgement the copy and, by policy, the card's file are deleted."""
    coded_from = []

    def coder(path, settings, mask):
        coded_from.append(Path(path))
        return compress_source_file(path, mask=mask)

    edge = edge_config(tmp_path, broker.port, spool={"source_policy": "spool", "delete_from_card_after_ack": True})
    offshore = offshore_config(tmp_path, broker.port)
    running(Subscriber(offshore))
    daemon = running(EdgeDaemon(edge, coder=coder))
    card = edge.watch.folders[0]
    for index in range(3):
        write_photo(card, index)
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 3, 30, "every photo acknowledged")
    sources = edge.spool.folder / "sources"
    assert coded_from and all(path.parent == sources for path in coded_from)
    wait_for(lambda: not any(sources.iterdir()) and not any(card.iterdir()), 5, "copies and card files deleted")
    assert len(arrivals(offshore.output.folder)) == 3


def test_a_card_pulled_before_coding_is_waited_for(tmp_path, broker, running, monkeypatch, caplog):
    """The card goes away between intake and coding (source_policy: card): the photos wait,
    nothing is quarantined, and they arrive once the card is back."""
    monkeypatch.setattr("edge.daemon.stages.MISSING_RETRY_S", 0.5)
    edge = edge_config(tmp_path, broker.port)
    card = edge.watch.folders[0]
    pulled = tmp_path / "pulled"

    def segment_then_pull_the_card(paths):
        if card.exists():
            card.rename(pulled)
            threading.Timer(1.0, pulled.rename, args=(card,)).start()
        return [None] * len(paths)

    offshore = offshore_config(tmp_path, broker.port)
    running(Subscriber(offshore))
    daemon = running(EdgeDaemon(edge, segmenter=segment_then_pull_the_card))
    for index in range(3):
        write_photo(card, index)
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 3, 40, "every photo acknowledged")
    assert "failed" not in daemon.journal.counts() and len(arrivals(offshore.output.folder)) == 3
    assert "card removed?" in caplog.text


# ---------------------------------------------------------------------------- a missed blade

@pytest.mark.parametrize("if_no_blade", ["send-source", "background"])
def test_a_model_mask_with_almost_no_blade_sends_the_source_file(tmp_path, broker, running, caplog, if_no_blade):
    """segmentation.mode model: a photo whose mask holds less blade than min_blade_fraction
    is taken for a missed blade and sent whole (unless if_no_blade says background)."""
    edge = edge_config(tmp_path, broker.port, coding={"mode": "roi"},
                       segmentation={"mode": "model", "min_blade_fraction": 0.01, "if_no_blade": if_no_blade})
    card = edge.watch.folders[0]

    def segmenter(paths):     # photo 0: its blade band; photo 1: a speck (0.3 %); photo 2: nothing
        masks = []
        for path in paths:
            index = int(path.stem.split("_")[1])
            mask = photo_pixels(index)[1] if index == 0 else np.zeros(photo_pixels(index)[1].shape, bool)
            if index == 1:
                mask[:10, :24] = True
            masks.append(mask)
        return masks

    offshore = offshore_config(tmp_path, broker.port)
    running(Subscriber(offshore))
    daemon = running(EdgeDaemon(edge, segmenter=segmenter))
    photos = [write_photo(card, index) for index in range(3)]
    sources = {path.name: path.read_bytes() for path in photos}
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 3, 60, "every photo acknowledged")
    sent_whole = {name: record.sent_source for name, record in journal_states(edge).items()}
    if if_no_blade == "send-source":
        assert sent_whole == {"DJI_0000.JPG": False, "DJI_0001.JPG": True, "DJI_0002.JPG": True}
        assert caplog.text.count("in case it missed the blade") == 2
    else:
        assert not any(sent_whole.values()) and "in case it missed the blade" not in caplog.text
    received = arrivals(offshore.output.folder)
    assert sorted(arrival["source"] for arrival in received) == sorted(sources)
    for arrival in received:                            # the photos sent whole arrive as the camera's files
        image = offshore.output.folder / arrival["image"]
        sidecar = json.loads(image.with_suffix(".json").read_text())
        if sent_whole[arrival["source"]]:
            assert (image.parent / sidecar["source_file"]).read_bytes() == sources[arrival["source"]]
        else:
            assert sidecar["source_file"] is None and sidecar["regions"][0]["coder"] != "source-file"
