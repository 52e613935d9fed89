"""The spool: durable writes, byte accounting, a quota that waits (never drops), crash leftovers."""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from edge.daemon.spool import Spool, quarantine_file


def test_bundles_are_written_whole_and_accounted(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=10_000)
    spool.write_bundle("a" * 32, b"1" * 3000)
    spool.write_bundle("a" * 32, b"2" * 1000)            # rewritten: counted once
    spool.write_bundle("b" * 32, b"3" * 500)
    assert spool.used_bytes == 1500
    assert spool.read_bundle("a" * 32) == b"2" * 1000
    assert not list(spool.bundles.glob(".*.tmp"))
    spool.delete_bundle("a" * 32)
    spool.delete_bundle("a" * 32)                         # twice: harmless
    assert spool.used_bytes == 500 and not spool.has_bundle("a" * 32)
    assert Spool(tmp_path / "spool", 10_000).used_bytes == 500   # measured again on start


def test_a_full_spool_waits_for_room_with_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    spool = Spool(tmp_path / "spool", max_bytes=1000)
    spool.write_bundle("a" * 32, b"x" * 800)
    stop = threading.Event()
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("ok", spool.wait_for_room(500, stop)))
    waiter.start()
    time.sleep(1.2)
    assert waiter.is_alive() and spool.full                # blocked, not dropped
    assert caplog.text.count("is full") == 1
    spool.delete_bundle("a" * 32)                          # an acknowledgement frees space
    waiter.join(5)
    assert result["ok"] is True and not spool.full
    spool.write_bundle("b" * 32, b"x" * 900)
    stop.set()
    assert spool.wait_for_room(500, stop) is False         # stopping: give up waiting


def test_leftovers_of_a_crash_are_removed(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=10_000)
    (spool.bundles / ".abc.edgb.123.tmp").write_bytes(b"half")
    (spool.work / ".1.mask.png.9.tmp").write_bytes(b"half")
    assert spool.remove_temporary_files() == 2
    assert spool.used_bytes == 0


def test_masks_and_quarantine(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=10_000)
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    spool.write_mask(4, mask)
    assert np.array_equal(spool.read_mask(4), mask)
    spool.delete_mask(4)
    assert spool.read_mask(4) is None
    bad = tmp_path / "DJI_0009.JPG"
    bad.write_bytes(b"\xff\xd8 truncated")
    kept = quarantine_file(bad, tmp_path / "quarantine", "not a complete image", "ab" * 32)
    assert kept.read_bytes() == bad.read_bytes() and bad.exists()      # copied, the card untouched
    assert "not a complete image" in kept.with_name(kept.name + ".reason.txt").read_text()
