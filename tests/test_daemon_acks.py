"""The daemon's answer to offshore acks (edge.daemon.acks), on a real spool folder."""
import dataclasses
import logging

import numpy as np
import pytest

from edge.comms.messages import Ack
from edge.daemon.acks import AfterRefusal, after_refusal, release_settled
from edge.daemon.journal import PhotoRecord
from edge.daemon.spool import Spool


def photo(path="/card/DJI_0001.JPG", **changes) -> PhotoRecord:
    record = PhotoRecord(id=7, path=str(path), size=10, mtime_ns=0, sha256="ab" * 32, folder_key="card",
                         capture_time=None, surface=None, state="published", reason="", fallback=False,
                         sent_source=False, bundle_id="b-coded", bundle_size=10, source_copy=None, attempts=1,
                         published_at=None)
    return dataclasses.replace(record, **changes)


@pytest.mark.parametrize("sent_source, attempts, expected", [
    (False, 1, AfterRefusal.SEND_SOURCE),       # a coded bundle refused: the source file goes instead
    (False, 9, AfterRefusal.SEND_SOURCE),       # however often it was sent
    (True, 1, AfterRefusal.SEND_AGAIN),         # the source file refused: again, while sends are left
    (True, 2, AfterRefusal.SEND_AGAIN),
    (True, 3, AfterRefusal.GIVE_UP),            # max_attempts sends made
    (True, 4, AfterRefusal.GIVE_UP),
])
def test_after_a_refusal(sent_source, attempts, expected):
    assert after_refusal(photo(sent_source=sent_source, attempts=attempts), max_attempts=3) is expected


def filled_spool(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    source = card / "DJI_0001.JPG"
    source.write_bytes(b"\xff\xd8 camera bytes")
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    for bundle_id in ("b-coded", "b-source", "b-other"):
        spool.write_bundle(bundle_id, bundle_id.encode() * 10)
    spool.write_mask(7, np.ones((4, 4), bool))
    copy = spool.copy_source(source, "ab" * 32)
    return spool, source, copy


def test_an_acknowledged_photo_frees_its_bundles_mask_and_source_copy_and_keeps_the_card(tmp_path):
    spool, source, copy = filled_spool(tmp_path)
    # the coded bundle was acknowledged after a fallback had already replaced it with the source file
    record = photo(source, bundle_id="b-source", source_copy=str(copy))
    release_settled(record, Ack(bundle_id="b-coded", ok=True), spool, delete_from_card=False)
    assert not spool.has_bundle("b-coded") and not spool.has_bundle("b-source")
    assert spool.has_bundle("b-other")                          # another photo's bundle stays
    assert spool.read_mask(7) is None and not copy.exists()
    assert source.exists()


def test_delete_from_card_after_ack_removes_the_photo_and_a_missing_one_is_only_a_warning(tmp_path, caplog):
    spool, source, copy = filled_spool(tmp_path)
    record = photo(source, source_copy=str(copy))
    release_settled(record, Ack(bundle_id="b-coded", ok=True), spool, delete_from_card=True)
    assert not source.exists()
    with caplog.at_level(logging.WARNING, logger="edge.daemon.acks"):
        release_settled(record, Ack(bundle_id="b-coded", ok=True), spool, delete_from_card=True)
    assert "cannot delete" in caplog.text and "DJI_0001.JPG" in caplog.text
