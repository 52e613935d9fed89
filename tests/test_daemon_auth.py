"""TLS and user name/password towards a Mosquitto that requires both: the right password (read
from the environment) delivers; a wrong one is refused, reported, and never counted as connected."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from tests.daemon_helpers import arrivals, edge_config, offshore_config, wait_for, write_photo
from edge.comms.broker import MosquittoBroker, find_mosquitto
from edge.daemon.pipeline import EdgeDaemon
from edge.offshore.subscriber import Subscriber

pytestmark = pytest.mark.broker


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def secure_broker(tmp_path):
    if find_mosquitto() is None or shutil.which("mosquitto_passwd") is None or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl (apt-get install mosquitto openssl)")
    certs = tmp_path / "certs"
    certs.mkdir()
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca",
            cwd=certs)
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=certs)
    (certs / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.cnf", cwd=certs)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "drone", "right-horse-battery"],
                   check=True, capture_output=True, timeout=30)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "offshore", "staple-correct"],
                   check=True, capture_output=True, timeout=30)
    tls = f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'server.crt'}\nkeyfile {certs / 'server.key'}\n"
    broker = MosquittoBroker(tmp_path / "broker", listener_options=tls, anonymous=False, password_file=passwords)
    broker.start()
    yield broker, certs / "ca.crt"
    broker.kill()


def secure(ca, user, env):
    return {"tls": {"enabled": True, "ca_file": str(ca)},
            "auth": {"username": user, "password": {"env": env}}}


def test_tls_and_password_deliver(tmp_path, secure_broker, monkeypatch):
    broker, ca = secure_broker
    monkeypatch.setenv("EDGE_PASS", "right-horse-battery")
    monkeypatch.setenv("OFFSHORE_PASS", "staple-correct")
    edge = edge_config(tmp_path, broker.port, mqtt=secure(ca, "drone", "EDGE_PASS"))
    offshore = offshore_config(tmp_path, broker.port, mqtt=secure(ca, "offshore", "OFFSHORE_PASS"))
    subscriber = Subscriber(offshore)
    daemon = EdgeDaemon(edge)
    subscriber.start()
    daemon.start()
    try:
        write_photo(edge.watch.folders[0], 0)
        wait_for(lambda: len(arrivals(offshore.output.folder)) == 1, 30, "the photo to arrive over TLS")
        wait_for(lambda: daemon.journal.counts().get("acknowledged") == 1, 10, "its acknowledgement")
    finally:
        daemon.stop()
        subscriber.stop()


def test_a_wrong_password_is_refused_and_not_taken_for_a_connection(tmp_path, secure_broker, monkeypatch, caplog):
    broker, ca = secure_broker
    monkeypatch.setenv("EDGE_PASS", "not-the-Password-42")
    edge = edge_config(tmp_path, broker.port, mqtt=secure(ca, "drone", "EDGE_PASS"))
    daemon = EdgeDaemon(edge)
    daemon.start()
    try:
        write_photo(edge.watch.folders[0], 0)
        wait_for(lambda: daemon.journal.counts().get("spooled") == 1, 20, "the photo to be spooled")
        time.sleep(1.0)
        link = daemon.publisher.link
        assert not link.connected and "refused" in link.last_error
        assert daemon.journal.counts().get("spooled") == 1          # kept, waiting for the broker
        assert "not-the-Password-42" not in caplog.text                           # the password is never logged
    finally:
        daemon.stop()
