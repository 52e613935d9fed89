"""What the offshore side's answer means for a photo, apart from how it arrives.

A positive ack settles the photo: its spooled bundles, mask and source copy go, and with
``delete_from_card_after_ack`` the photo on the card too. A refusal of a coded bundle falls back
to sending the source file (the refusal says the subscriber could not trust or decode it); a
refusal of the source file itself sends it again, until ``max_attempts`` sends, then gives up
and keeps the bundle in the spool for a person to look at.
"""
from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

from edge.comms.messages import Ack
from edge.daemon.journal import PhotoRecord
from edge.daemon.spool import Spool

log = logging.getLogger(__name__)


class AfterRefusal(Enum):
    SEND_SOURCE = "send the source file"
    SEND_AGAIN = "send the source-file bundle again"
    GIVE_UP = "give up"


def after_refusal(record: PhotoRecord, max_attempts: int) -> AfterRefusal:
    """What to do with ``record`` whose current bundle the offshore side refused."""
    if not record.sent_source:
        return AfterRefusal.SEND_SOURCE
    if record.attempts >= max_attempts:
        return AfterRefusal.GIVE_UP
    return AfterRefusal.SEND_AGAIN


def release_settled(record: PhotoRecord, ack: Ack, spool: Spool, delete_from_card: bool) -> None:
    """Free what an acknowledged photo held: its bundles (the one acknowledged and the current
    one, when a fallback replaced it meanwhile), mask and source copy; the card's file if asked."""
    for bundle_id in {record.bundle_id, ack.bundle_id} - {None}:
        spool.delete_bundle(bundle_id)
    spool.delete_mask(record.id)
    spool.delete_source_copy(record.source_copy)
    if delete_from_card:
        try:
            Path(record.path).unlink()
        except OSError as error:
            log.warning("cannot delete %s from the card after its acknowledgement: %s", record.path, error.strerror)
