"""Sending spooled bundles over MQTT and acting on the offshore side's acknowledgements.

One thread does everything here, so no state is shared with paho's network thread (which only
fills the link's queues):

- picks the bundles the journal says are due (spooled, or published and unacknowledged past
  the ack timeout), cuts each into chunks and publishes them with QoS 1, at most
  ``max_inflight`` unanswered at once and within the optional rate limit
  (:mod:`edge.daemon.sendrate`);
- marks a bundle ``published`` when the broker acknowledged every chunk (``on_publish``
  reason codes); a refused chunk sends the bundle again later, with back-off;
- on the offshore ack: ``acknowledged``, and the spooled files are deleted; on a negative
  ack: the photo is coded again as its source file (``recode``), or, if that is what was
  refused, the same bundle is sent again, up to ``max_attempts`` sends (the policy:
  :mod:`edge.daemon.acks`);
- publishes the status topic every ``status_interval_s``, from a thread of its own, so the
  status still goes out while the sending thread waits (a journal write on a full disk).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge.comms.messages import Ack, chunk_properties, split_bundle
from edge.comms.mqtt import ONLINE, MqttLink
from edge.comms.topics import Topics
from edge.config import EdgeConfig
from edge.daemon.acks import AfterRefusal, after_refusal, release_settled
from edge.daemon.diskspace import DiskWaitStopped
from edge.daemon.journal import Journal, PhotoRecord
from edge.daemon.sendrate import RateMeter, TokenBucket
from edge.daemon.spool import Spool

log = logging.getLogger(__name__)


@dataclass
class _Sending:
    """A bundle on its way to the broker."""

    photo: PhotoRecord
    chunks: list
    next_index: int = 0
    outstanding: set[int] = field(default_factory=set)
    failed: str = ""
    no_subscribers: bool = False

    @property
    def all_queued(self) -> bool:
        return self.next_index >= len(self.chunks)


class Publisher:
    def __init__(self, config: EdgeConfig, journal: Journal, spool: Spool, stop: threading.Event,
                 recode: Callable[[PhotoRecord], None], status_source: Callable[[], dict] = dict):
        self.config = config
        self.journal = journal
        self.spool = spool
        self.stop_event = stop
        self.recode = recode
        self.status_source = status_source
        self.topics = Topics(config.mqtt.topic_root)
        self.link = MqttLink(config.mqtt, self.topics.availability(config.device),
                             subscriptions=[self.topics.ack(config.device)])
        self._wake = threading.Event()
        self._sending: dict[str, _Sending] = {}           # bundle id -> progress
        self._mids: dict[int, str] = {}                   # chunk mid -> bundle id
        self._retry_after: dict[int, float] = {}          # photo id -> monotonic time
        self._current: _Sending | None = None
        self._bucket = TokenBucket(int(config.publish.rate_limit_bytes_per_s), time.monotonic())
        self._thread: threading.Thread | None = None
        self._status_thread: threading.Thread | None = None
        self.sent_bytes = 0
        self.last_error = ""
        self._rate = RateMeter()

    # -- life cycle

    def start(self) -> None:
        self.link.start()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()
        self._status_thread = threading.Thread(target=self._status_loop, name="status", daemon=True)
        self._status_thread.start()

    def stop(self) -> None:
        """Stop sending (unfinished bundles stay spooled), publish ``stopped``, disconnect."""
        self._wake.set()
        for thread in (self._thread, self._status_thread):
            if thread is not None:
                thread.join()
        self.link.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Something was spooled: look at the journal now."""
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._mids)

    # -- the loop

    def _status_loop(self) -> None:
        while not self.stop_event.is_set():
            if self.link.connected:
                try:
                    self._publish_status()
                except Exception:                    # a status is not worth the thread: try next time
                    log.exception("publishing the status failed")
                self.stop_event.wait(self.config.publish.status_interval_s)
            else:
                self.stop_event.wait(0.1)

    def _run(self) -> None:
        try:
            self._send_loop()
        except DiskWaitStopped:
            pass                         # stopping while a journal write waited for space

    def _send_loop(self) -> None:
        next_poll = 0.0
        while not self.stop_event.is_set():
            self._drain_completions()
            self._drain_acks()
            now = time.monotonic()
            if not self.link.connected:
                self.stop_event.wait(0.1)
                continue
            if self.inflight >= self.config.publish.max_inflight:
                self._wait_completion(0.1)
                continue
            if self._current is None or self._current.all_queued:
                self._current = None
                if now >= next_poll or self._wake.is_set():
                    self._wake.clear()
                    self._current = self._next_bundle()
                    if self._current is None:
                        next_poll = now + 0.5        # nothing due: look again in a while (or when woken)
                if self._current is None:
                    self._wait_completion(0.05)
                    continue
            self._send_next_chunk(self._current)

    def _wait_completion(self, timeout: float) -> None:
        try:
            completion = self.link.completions.get(timeout=timeout)
        except queue.Empty:
            return
        self._complete(completion)

    # -- sending

    def _next_bundle(self) -> _Sending | None:
        now = time.monotonic()
        skip = {s.photo.id for s in self._sending.values()}
        skip |= {photo_id for photo_id, when in self._retry_after.items() if when > now}
        for record in self.journal.due_for_sending(time.time(), self.config.publish.ack_timeout_s, skip):
            if record.attempts >= self.config.publish.max_attempts:
                self.journal.set_state(record.id, "failed", reason=f"no acknowledgement after {record.attempts} "
                                       f"sends (last: {record.reason or 'none'}); bundle kept in the spool")
                log.error("%s: giving up after %d sends; its bundle stays in %s", record.path, record.attempts,
                          self.spool.bundles)
                continue
            try:
                data = self.spool.read_bundle(record.bundle_id)
            except OSError as error:
                # The spooled file is gone (deleted by hand?): code the photo again.
                log.error("%s: spooled bundle %s unreadable (%s); coding the photo again", record.path,
                          record.bundle_id, error.strerror)
                self.journal.set_state(record.id, "seen", reason="spooled bundle was missing")
                self.recode(self.journal.get(record.id))
                continue
            chunks = split_bundle(record.bundle_id, data, int(self.config.publish.chunk_bytes),
                                  source=Path(record.path).name, surface=record.surface or "")
            sending = _Sending(record, chunks)
            self._sending[record.bundle_id] = sending
            if record.state == "published":
                log.info("%s: no acknowledgement yet, sending bundle %s again (send %d)",
                         Path(record.path).name, record.bundle_id, record.attempts + 1)
            return sending
        return None

    def _send_next_chunk(self, sending: _Sending) -> None:
        chunk = sending.chunks[sending.next_index]
        if not self._take_tokens(len(chunk.payload)):
            return
        try:
            mid = self.link.publish(self.topics.chunks(self.config.device), chunk.payload, chunk_properties(chunk))
        except ConnectionError as error:
            self.last_error = str(error)
            self.stop_event.wait(0.2)
            return
        sending.next_index += 1
        sending.outstanding.add(mid)
        self._mids[mid] = chunk.bundle_id
        self.sent_bytes += len(chunk.payload)
        self._rate.record(len(chunk.payload), time.monotonic())

    def _take_tokens(self, size: int) -> bool:
        """Token bucket for ``rate_limit_bytes_per_s``: False (after a short wait) if not yet allowed."""
        wait_s = self._bucket.take(size, time.monotonic())
        if wait_s == 0.0:
            return True
        self._wait_completion(min(wait_s, 0.1))
        return False

    # -- broker answers

    def _drain_completions(self) -> None:
        while True:
            try:
                completion = self.link.completions.get_nowait()
            except queue.Empty:
                return
            self._complete(completion)

    def _complete(self, completion) -> None:
        bundle_id = self._mids.pop(completion.mid, None)
        if bundle_id is None:
            return                                       # availability, status: nothing to track
        sending = self._sending.get(bundle_id)
        if sending is None:
            return
        sending.outstanding.discard(completion.mid)
        if not completion.ok:
            sending.failed = completion.reason
        sending.no_subscribers |= completion.no_subscribers
        if sending.all_queued and not sending.outstanding:
            self._finish(sending)

    def _finish(self, sending: _Sending) -> None:
        del self._sending[sending.photo.bundle_id]
        if self._current is sending:
            self._current = None
        record = self.journal.get(sending.photo.id)
        if record.bundle_id != sending.photo.bundle_id or record.state not in ("spooled", "published"):
            return                                       # acknowledged or replaced meanwhile
        name = Path(record.path).name
        if sending.failed:
            self.last_error = f"broker refused a chunk of {name}: {sending.failed}"
            log.warning("%s; sending it again later", self.last_error)
            self._retry_after[record.id] = time.monotonic() + min(60.0, 2.0 ** min(record.attempts, 6))
            return
        self._retry_after.pop(record.id, None)
        self.journal.set_state(record.id, "published", attempts=record.attempts + 1, published_at=time.time())
        if sending.no_subscribers:
            self.last_error = "no subscriber for the chunk topic: bundles are re-sent after the ack timeout"
            log.warning("%s: the broker has no subscriber for it; it will be sent again after %.0f s", name,
                        self.config.publish.ack_timeout_s)
        else:
            log.info("%s: published bundle %s (%d bytes, %d chunks)", name, record.bundle_id,
                     sending.chunks[0].bundle_size, len(sending.chunks))

    # -- offshore answers

    def _drain_acks(self) -> None:
        while True:
            try:
                message = self.link.received.get_nowait()
            except queue.Empty:
                return
            try:
                ack = Ack.decode(message.payload)
            except ValueError as error:
                log.warning("ignoring a message on %s: %s", message.topic, error)
                continue
            self._handle_ack(ack)

    def _handle_ack(self, ack: Ack) -> None:
        record = self.journal.find_bundle(ack.bundle_id)
        if record is None or record.state in ("acknowledged", "failed"):
            return                                       # unknown or already settled: duplicates are normal
        name = Path(record.path).name
        if ack.ok:
            self._settled(record, ack)
            return
        if ack.bundle_id != record.bundle_id:
            return                                       # refusal of a bundle already replaced
        self._forget(record.bundle_id)
        reason = f"refused offshore by {ack.subscriber or 'a subscriber'}: {ack.reason}"
        log.error("%s: bundle %s %s", name, ack.bundle_id, reason)
        action = after_refusal(record, self.config.publish.max_attempts)
        if action is AfterRefusal.GIVE_UP:
            self.journal.set_state(record.id, "failed", reason=reason)
            log.error("%s: giving up after %d sends; its bundle stays in the spool", name, record.attempts)
        elif action is AfterRefusal.SEND_AGAIN:
            self.journal.set_state(record.id, "spooled", reason=reason)
            log.info("%s: sending the source-file bundle again", name)
        else:
            self.journal.set_state(record.id, "segmented", fallback=1, reason=reason)
            log.info("%s: falling back to sending the source file", name)
            self.recode(self.journal.get(record.id))

    def _settled(self, record: PhotoRecord, ack: Ack) -> None:
        self.journal.set_state(record.id, "acknowledged")     # the reason of an earlier refusal stays
        self._forget(record.bundle_id)
        release_settled(record, ack, self.spool, self.config.spool.delete_from_card_after_ack)
        log.info("%s: acknowledged by %s (bundle %s)", Path(record.path).name, ack.subscriber or "offshore",
                 ack.bundle_id)

    def _forget(self, bundle_id: str | None) -> None:
        sending = self._sending.pop(bundle_id, None) if bundle_id else None
        if sending is not None:
            for mid in sending.outstanding:
                self._mids.pop(mid, None)
            if self._current is sending:
                self._current = None

    # -- status

    def rate_bytes_per_s(self, window_s: float = 10.0) -> float:
        return self._rate.bytes_per_s(time.monotonic(), window_s)

    def _publish_status(self) -> None:
        status = {
            "device": self.config.device,
            "time": time.time(),
            "photos": self.journal.counts(),
            "spool_bytes": self.spool.used_bytes,
            "spool_max_bytes": self.spool.max_bytes,
            "spool_full": self.spool.full,
            "inflight_chunks": self.inflight,
            "sent_bytes": self.sent_bytes,
            "rate_bytes_per_s": round(self.rate_bytes_per_s(), 1),
            "last_error": self.last_error or self.link.last_error,
        }
        status.update(self.status_source())
        try:
            self.link.publish(self.topics.status(self.config.device), json.dumps(status, sort_keys=True),
                              retain=True)
        except ConnectionError:
            pass


class StartupStatus:
    """The status topic while start-up waits for disk space, before the journal and the
    publisher exist, so that offshore sees why nothing comes.

    It connects as ``CLIENT_ID-starting`` without a persistent session, so it never takes over
    the publisher's session, and it is closed once the daemon has started.
    """

    def __init__(self, config: EdgeConfig):
        self.config = config
        self.topics = Topics(config.mqtt.topic_root)
        self._link: MqttLink | None = None
        self._next = 0.0

    def report(self, state: dict) -> None:
        """Publish ``state`` (retained) at most every ``status_interval_s``; connects on first use."""
        if self._link is None:
            mqtt = self.config.mqtt.model_copy(update={"client_id": f"{self.config.mqtt.client_id}-starting",
                                                       "session_expiry_s": 0})
            self._link = MqttLink(mqtt, self.topics.availability(self.config.device))
            self._link.start()
        now = time.monotonic()
        if not self._link.connected or now < self._next:
            return
        status = {"device": self.config.device, "time": time.time(), "starting": True, **state}
        try:
            self._link.publish(self.topics.status(self.config.device), json.dumps(status, sort_keys=True),
                               retain=True)
        except ConnectionError:
            return
        self._next = now + self.config.publish.status_interval_s

    def close(self) -> None:
        if self._link is not None:
            self._link.stop(final_availability=ONLINE)      # the publisher's link says the same
            self._link = None
