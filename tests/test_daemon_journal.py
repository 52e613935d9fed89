"""The journal: states, identity by content, guarded transitions, re-send timing, durability
across a kill -9 of the process writing it."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from edge.daemon.journal import STATES, Journal


@pytest.fixture
def journal(tmp_path):
    opened = Journal(tmp_path / "journal.sqlite")
    yield opened
    opened.close()


def add(journal, name: str, sha: str, **extra):
    return journal.add_photo(f"/card/{name}", 100, 5, sha * 64, 1000.0, **extra)


def test_photo_identity_is_its_content(journal):
    first, new = add(journal, "DJI_0001.JPG", "a")
    assert new and first.state == "seen"
    again, new = journal.add_photo("/other-mount/DJI_0001.JPG", 100, 9, "a" * 64, 1000.0)
    assert not new and again.id == first.id and again.path == "/other-mount/DJI_0001.JPG"
    assert journal.find_file("/other-mount/DJI_0001.JPG", 100, 9).id == first.id
    assert journal.find_file("/card/DJI_0001.JPG", 100, 5) is None     # the location moved
    reused_name, new = add(journal, "DJI_0001.JPG", "b")                 # camera numbering restarted
    assert new and reused_name.id != first.id


def test_states_and_guarded_transitions(journal):
    photo, _ = add(journal, "x.jpg", "c")
    assert journal.set_state(photo.id, "segmented", expect=("seen",), surface="s1")
    assert not journal.set_state(photo.id, "spooled", expect=("seen",))   # not in 'seen' any more
    assert journal.set_state(photo.id, "spooled", bundle_id="1" * 32, bundle_size=10)
    assert journal.find_bundle("1" * 32).id == photo.id
    journal.set_state(photo.id, "segmented", fallback=1, reason="refused offshore: x")
    journal.set_state(photo.id, "spooled", bundle_id="2" * 32, sent_source=1)
    assert journal.find_bundle("1" * 32).id == photo.id                  # old ids still lead to the photo
    record = journal.get(photo.id)
    assert record.fallback and record.sent_source and record.surface == "s1"
    with pytest.raises(ValueError, match="unknown journal state"):
        journal.set_state(photo.id, "lost")
    with pytest.raises(ValueError, match="cannot set"):
        journal.set_state(photo.id, "seen", path="/elsewhere")
    assert set(journal.counts()) <= set(STATES)


def test_due_for_sending_waits_longer_after_each_send(journal):
    spooled, _ = add(journal, "a.jpg", "d")
    published, _ = add(journal, "b.jpg", "e")
    journal.set_state(spooled.id, "spooled", bundle_id="3" * 32)
    journal.set_state(published.id, "published", bundle_id="4" * 32, attempts=3, published_at=1000.0)
    # attempts=3: the wait is 4x the timeout (doubling per send)
    assert [r.id for r in journal.due_for_sending(1000.0 + 39, 10)] == [spooled.id]
    assert [r.id for r in journal.due_for_sending(1000.0 + 40, 10)] == [spooled.id, published.id]
    assert journal.due_for_sending(1000.0 + 40, 10, skip={spooled.id, published.id}) == []


def test_wal_mode_and_committed_states_survive_kill_9(tmp_path):
    path = tmp_path / "journal.sqlite"
    child = textwrap.dedent(f"""
        import os, signal
        from edge.daemon.journal import Journal
        journal = Journal({str(path)!r})
        record, _ = journal.add_photo("/card/a.jpg", 1, 1, "f" * 64, None)
        journal.set_state(record.id, "spooled", bundle_id="5" * 32)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", child], timeout=60)
    assert result.returncode == -signal.SIGKILL
    journal = Journal(path)
    try:
        assert journal.find_sha256("f" * 64).state == "spooled"
        assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        journal.close()
