"""The MQTT v5 client link both services use (:class:`MqttLink`).

The edge publisher (:mod:`edge.daemon.publisher`) and the offshore subscriber
(:mod:`edge.offshore.subscriber`) each hold one. Topic names are in :mod:`edge.comms.topics`,
the chunk and ack messages in :mod:`edge.comms.messages`.

paho-mqtt 2.x keeps unacknowledged messages in memory only and re-sends them after a
reconnect; completion is tracked through ``on_publish(mid, reason_code)``, never through
``wait_for_publish``. Callbacks only put events on queues: they run on paho's network thread
while paho holds its own locks, so they must not wait for ours.
"""
from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import MqttConfig

log = logging.getLogger(__name__)

ONLINE, OFFLINE, STOPPED = "online", "offline", "stopped"      # availability payloads
QOS = 1


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    properties: Properties | None


@dataclass(frozen=True)
class Completion:
    mid: int
    ok: bool
    reason: str                  # paho's reason code name ("Success", "No matching subscribers" ...)
    no_subscribers: bool = False


class _PahoLog:
    """paho's log calls, with its errors demoted to debug messages.

    While the broker is away paho logs an ERROR on every loop turn ("Client is not connected")
    and every failed receive; the link itself says once per outage what happened. An exception
    raised in one of our callbacks ("Caught exception in on_...") stays an error.
    """

    def __init__(self):
        self.logger = logging.getLogger("edge.mqtt.paho")

    def log(self, level: int, message: str, *args) -> None:
        if level >= logging.WARNING and not str(message).startswith("Caught exception"):
            level = logging.DEBUG
        self.logger.log(level, message, *args)


class MqttLink:
    """One MQTT v5 client: persistent session, retained availability with a last will,
    automatic reconnect with back-off, subscriptions renewed on every connect.

    ``completions`` receives one :class:`Completion` per QoS 1 publish the broker answered;
    ``received`` one :class:`Received` per incoming message (when ``deliver`` is not given;
    ``deliver`` is called on the network thread instead, e.g. to store a chunk before paho
    acknowledges it to the broker).
    """

    def __init__(self, config: MqttConfig, availability_topic: str, subscriptions: list[str] = (),
                 deliver=None):
        self.config = config
        self.availability_topic = availability_topic
        self.subscriptions = list(subscriptions)
        self.completions: queue.Queue[Completion] = queue.Queue()
        self.received: queue.Queue[Received] = queue.Queue()
        self._deliver = deliver
        self._connected = threading.Event()
        self.last_error = ""
        self.connects = 0
        self._outage_said = False        # the current outage was logged (one warning per outage)
        self._stopping = False
        self._client = self._make_client()

    # -- set-up

    def _make_client(self) -> paho.Client:
        config = self.config
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=config.client_id,
                             protocol=paho.MQTTv5)
        client.enable_logger(_PahoLog())
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        client.max_queued_messages_set(0)
        # paho's own in-flight window is not ours: the publisher limits itself (publish.max_inflight)
        client.max_inflight_messages_set(0)
        if config.tls.enabled:
            client.tls_set(ca_certs=str(config.tls.ca_file) if config.tls.ca_file else None,
                           certfile=str(config.tls.cert_file) if config.tls.cert_file else None,
                           keyfile=str(config.tls.key_file) if config.tls.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(config.tls.insecure)
        if config.auth.username:
            password = (config.auth.password.resolve("mqtt.auth.password")
                        if config.auth.password is not None else None)
            client.username_pw_set(config.auth.username, password)
        client.will_set(self.availability_topic, OFFLINE, qos=QOS, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background (retrying with back-off until the broker answers)."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.config.session_expiry_s
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s,
                                   clean_start=False, properties=properties)
        self._client.loop_start()

    def stop(self, final_availability: str = STOPPED, timeout: float = 5.0) -> None:
        """Publish the final availability (when connected), disconnect cleanly, stop the thread."""
        if self._connected.is_set():
            info = self._client.publish(self.availability_topic, final_availability, qos=QOS, retain=True)
            deadline = time.monotonic() + timeout
            while not info.is_published() and time.monotonic() < deadline and self._connected.is_set():
                time.sleep(0.02)
        self._stopping = True
        self._client.disable_logger()        # paho logs its loop meeting the closed socket as an error
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- use

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def publish(self, topic: str, payload: bytes | str, properties: Properties | None = None,
                retain: bool = False, qos: int = QOS) -> int:
        """Queue a message; returns its mid (its :class:`Completion` arrives later)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"paho refused to queue a message on {topic}: {paho.error_string(info.rc)}")
        return info.mid

    # -- callbacks (network thread: record and return)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # Refused (bad credentials, not authorised ...): not connected, whatever the socket says.
            # Said once, not at every reconnect attempt.
            error = f"broker refused the connection: {reason_code}"
            (log.debug if error == self.last_error else log.error)(
                "%s (%s:%d as %s); retrying with back-off", error, self.config.host, self.config.port,
                self.config.client_id)
            self.last_error = error
            return
        self.connects += 1
        self._outage_said = False
        log.info("connected to %s:%d as %s (session present: %s)", self.config.host, self.config.port,
                 self.config.client_id, flags.session_present)
        client.publish(self.availability_topic, ONLINE, qos=QOS, retain=True)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=QOS)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stopping:
            self.last_error = f"disconnected from the broker: {reason_code}"
            log.warning("%s; reconnecting with back-off", self.last_error)
            self._outage_said = True

    def _on_connect_fail(self, client, userdata) -> None:
        if self._stopping or self._outage_said:
            return
        self._outage_said = True
        self.last_error = f"cannot reach the broker at {self.config.host}:{self.config.port}"
        log.warning("%s; retrying with back-off (%.0f to %.0f s)", self.last_error, self.config.reconnect_min_s,
                    self.config.reconnect_max_s)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # 0x10 "No matching subscribers": the broker took the message but nobody will get it.
        self.completions.put(Completion(mid, not reason_code.is_failure, str(reason_code),
                                        no_subscribers=reason_code.value == 0x10))

    def _on_message(self, client, userdata, message) -> None:
        received = Received(message.topic, bytes(message.payload), getattr(message, "properties", None))
        if self._deliver is None:
            self.received.put(received)
            return
        try:
            self._deliver(received)
        except Exception:           # an exception here would end paho's network thread
            log.exception("handling a message on %s failed", message.topic)
