"""The offshore subscriber: chunks in, decoded photos out, an acknowledgement for each bundle.

::

    broker --$share/GROUP/ROOT/+/chunk--> store chunk (network thread; checksum checked first)
        --complete--> decoder thread(s): reassemble, verify, decode, write image + mask + sidecar
        --> ack {ok} on ROOT/DEVICE/ack        (or a negative ack with the reason)

Persistent session (fixed client id, clean_start false): chunks sent while the subscriber is
away wait at the broker. Idempotent: a duplicate chunk or bundle changes nothing and is
acknowledged again. A damaged chunk or bundle is kept aside (``rejected/``), never written
as an image, and answered with a negative ack naming the reason, so the edge sends the photo
again in another form.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable

from edge.codec.container import decode_bundle
from edge.comms.messages import Ack, ChunkFormatError, parse_chunk
from edge.comms.mqtt import MqttLink, Received
from edge.comms.topics import Topics
from edge.config import OffshoreConfig
from edge.errors import EdgeError
from edge.offshore.decode import DecodedImage, PhotoDecoder
from edge.offshore.output import OutputFolder
from edge.offshore.reassembly import ChunkStore
from edge.service.health import Notifier, StopSignals, supervise

log = logging.getLogger(__name__)

REACK_INTERVAL_S = 10.0      # a finished bundle's chunks arriving again are answered at most this often
SWEEP_INTERVAL_S = 600.0


class Subscriber:
    """``start()``, ``stop()``; ``decode`` may be injected (default: a :class:`PhotoDecoder`)."""

    def __init__(self, config: OffshoreConfig, decode: Callable[..., DecodedImage] | None = None):
        self.config = config
        self.decode = decode or PhotoDecoder()
        self.topics = Topics(config.mqtt.topic_root)
        self.store = ChunkStore(config.output.folder)
        self.output = OutputFolder(config.output)
        self.stop_event = threading.Event()
        self.ready: queue.Queue[Path] = queue.Queue()        # complete parts folders
        self._reacked: dict[str, float] = {}
        self._workers: list[threading.Thread] = []
        self.link = MqttLink(config.mqtt, self.topics.offshore_availability(config.mqtt.client_id),
                             subscriptions=[self.topics.chunk_subscription(config.subscribe.devices,
                                                                           config.subscribe.group)],
                             deliver=self._on_message)
        self.chunks_received = 0
        self.written = 0
        self.refused = 0

    # -- life cycle

    def start(self) -> None:
        """Queue what a previous run left complete, start the decoders, then connect."""
        for folder in sorted(self.store.incoming.iterdir()):
            if folder.is_dir() and self.store.complete(folder):
                self.ready.put(folder)
        for index in range(self.config.subscribe.workers):
            worker = threading.Thread(target=self._work, name=f"decoder-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        self.link.start()
        log.info("subscriber %s: listening on %s, writing to %s", self.config.mqtt.client_id,
                 self.link.subscriptions[0], self.config.output.folder)

    def stop(self) -> None:
        self.stop_event.set()
        for worker in self._workers:
            worker.join()
        self._workers.clear()
        self.link.stop()

    @property
    def alive(self) -> bool:
        return all(worker.is_alive() for worker in self._workers)

    # -- network thread: store the chunk before paho acknowledges it to the broker

    def _on_message(self, message: Received) -> None:
        device = self.topics.device_of(message.topic)
        try:
            chunk = parse_chunk(message.payload, message.properties)
        except ChunkFormatError as error:
            log.warning("ignoring a message on %s: %s", message.topic, error)
            return
        if device is None:
            return
        self.chunks_received += 1
        if self.store.is_done(chunk.bundle_id):
            self._reack(device, chunk.bundle_id)
            return
        if not chunk.checksum_ok():
            reason = f"chunk {chunk.index + 1} of {chunk.count} failed its checksum (damaged in transit)"
            self.output.reject_chunk(chunk.bundle_id, chunk.index, chunk.payload, reason, device)
            self._answer(device, Ack(chunk.bundle_id, False, reason, "transport", self.config.mqtt.client_id))
            log.error("bundle %s from %s (%s): %s; asked for it again", chunk.bundle_id, device,
                      chunk.source, reason)
            self.refused += 1
            return
        folder = self.store.add(device, chunk)
        if folder is not None:
            self.ready.put(folder)

    def _reack(self, device: str, bundle_id: str) -> None:
        now = time.monotonic()
        if now - self._reacked.get(bundle_id, -REACK_INTERVAL_S) >= REACK_INTERVAL_S:
            self._reacked[bundle_id] = now
            self._answer(device, Ack(bundle_id, True, subscriber=self.config.mqtt.client_id))

    def _answer(self, device: str, ack: Ack) -> None:
        try:
            self.link.publish(self.topics.ack(device), ack.encode())
        except ConnectionError as error:
            log.warning("cannot send the ack of %s now (%s); the edge will send the bundle again",
                        ack.bundle_id, error)

    # -- decoder threads

    def _work(self) -> None:
        next_sweep = time.monotonic()
        while not self.stop_event.is_set():
            if time.monotonic() >= next_sweep:
                removed = self.store.sweep(self.config.output.incoming_max_age_s)
                if removed:
                    log.info("dropped %d incomplete bundles older than %.0f s", removed,
                             self.config.output.incoming_max_age_s)
                next_sweep = time.monotonic() + SWEEP_INTERVAL_S
            try:
                folder = self.ready.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.process(folder)
            except Exception:
                # Not the bundle's fault (disk full ...): no ack, the edge sends it again later.
                log.exception("handling %s failed; leaving it for the edge to send again", folder.name)

    def process(self, folder: Path) -> None:
        """Reassemble, verify, decode, write, acknowledge one complete bundle."""
        if not folder.exists():
            return                                   # another decoder took it
        meta = self.store.meta(folder)
        bundle_id, device = meta["bundle_id"], meta["device"]
        name = f"{device}/{meta['source'] or bundle_id}"
        data = b""
        try:
            data = self.store.assemble(folder)
            bundle = decode_bundle(data, name=name)
            if bundle.bundle_id != bundle_id:
                raise EdgeError(f"{name}: the bundle's id {bundle.bundle_id} is not the announced {bundle_id}")
        except EdgeError as error:
            self._refuse(folder, device, bundle_id, data, error)
            return
        with self.store.lock(bundle.source.sha256):  # one decoder per photo, across processes
            if not folder.exists() or self.store.is_done(bundle_id):
                self._answer(device, Ack(bundle_id, True, subscriber=self.config.mqtt.client_id))
                return
            if self.output.has_photo(bundle):
                log.info("%s: already written (from another bundle); acknowledging %s", name, bundle_id)
                record = {"duplicate_of_photo": bundle.source.sha256}
            else:
                started = time.perf_counter()
                try:
                    decoded = self.decode(bundle, name)
                except EdgeError as error:
                    self._refuse(folder, device, bundle_id, data, error)
                    return
                seconds = time.perf_counter() - started
                sidecar = self.output.write(device, bundle, data, decoded, {
                    "surface": meta.get("surface", ""), "received_at": time.time(),
                    "decode_seconds": round(seconds, 3), "subscriber": self.config.mqtt.client_id})
                self.written += 1
                log.info("%s: written %s (%d bytes, %.2f bpp, decoded in %.2f s)", name, sidecar["image"],
                         len(data), sidecar["bpp"], seconds)
                record = {"image": sidecar["image"]}
            self.store.mark_done(bundle_id, {"device": device, "time": time.time(), **record})
            self.store.discard(folder)
        self._answer(device, Ack(bundle_id, True, subscriber=self.config.mqtt.client_id))

    def _refuse(self, folder: Path, device: str, bundle_id: str, data: bytes, error: EdgeError) -> None:
        section = getattr(error, "section", "") or ""
        kept = self.output.reject_bundle(bundle_id, data, str(error), section, device)
        self.store.discard(folder)
        self.refused += 1
        log.error("refused bundle %s from %s: %s (kept as %s); negative ack sent", bundle_id, device, error, kept)
        self._answer(device, Ack(bundle_id, False, str(error), section, self.config.mqtt.client_id))


def run_subscriber(config: OffshoreConfig, decode: Callable[..., DecodedImage] | None = None,
                   notifier: Notifier | None = None, tick_s: float = 1.0) -> int:
    """Run until SIGTERM/SIGINT; systemd READY/WATCHDOG/STOPPING like the edge daemon."""
    notifier = notifier or Notifier()
    subscriber = Subscriber(config, decode)
    signals = StopSignals().install()
    try:
        subscriber.start()
        notifier.ready(f"listening on {subscriber.link.subscriptions[0]}")

        def problem() -> str:
            return "" if subscriber.alive else "a decoder thread stopped unexpectedly"

        def status() -> str:
            return (f"{subscriber.written} photos written, {subscriber.refused} refused; broker "
                    f"{'connected' if subscriber.link.connected else 'not connected'}")

        return supervise(subscriber.stop_event, signals, notifier, tick_s, problem, status)
    finally:
        notifier.stopping()
        subscriber.stop()
        signals.restore()
        notifier.close()
