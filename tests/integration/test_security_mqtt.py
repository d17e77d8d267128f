"""MQTT with a password and TLS client certificates: agents and collector connect, strangers don't,
and the password shows up nowhere (logs, errors, /metrics)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dcim.agents.publisher import Publisher
from dcim.collector.app import Collector
from dcim.collector.store import EmbeddedStore
from dcim.config import CollectorConfig, MqttConfig, Secret
from dcim.lineprotocol.encode import encode
from dcim.record import Record

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55word-never-logged"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required (Debian package openssl)")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dcim test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "dcim-agent")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{name}.crt", *extra, cwd=d)
    for f in d.iterdir():
        f.chmod(0o644)
    return d


@pytest.fixture(scope="module")
def secure_broker(mosquitto_factory, pki: Path):
    pw = pki / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "dcim", PASSWORD], check=True, capture_output=True)
    pw.chmod(0o644)
    broker = mosquitto_factory(
        allow_anonymous=False,
        extra_config="\n".join([
            f"cafile {pki / 'ca.crt'}",
            f"certfile {pki / 'server.crt'}",
            f"keyfile {pki / 'server.key'}",
            "require_certificate true",
            "tls_version tlsv1.2",
            f"password_file {pw}",
        ]),
    )
    yield broker
    broker.close()


def _mqtt_config(broker, pki: Path, *, password_env: str = "DCIM_TEST_MQTT_PASSWORD") -> MqttConfig:
    return MqttConfig(url=f"mqtts://127.0.0.1:{broker.port}", username="dcim", password=Secret(env=password_env),
                      ca_file=pki / "ca.crt", cert_file=pki / "client.crt", key_file=pki / "client.key")


def _paho_connect(broker, *, tls: Path | None, username: str | None, password: str | None) -> int:
    """Connect with paho; the CONNACK reason (0 accepted) or -1 when the connection itself failed."""
    result: dict[str, int] = {}
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="probe")
    if tls is not None:
        client.tls_set(ca_certs=str(tls / "ca.crt"), certfile=str(tls / "client.crt"), keyfile=str(tls / "client.key"))
    if username:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p=None: result.setdefault("rc", rc.value if hasattr(rc, "value") else rc)
    try:
        client.connect("127.0.0.1", broker.port, keepalive=5)
        for _ in range(50):
            client.loop(timeout=0.1)
            if "rc" in result:
                break
    except (OSError, ssl.SSLError):
        return -1
    finally:
        client.disconnect()
    return result.get("rc", -1)


def test_anonymous_plain_and_wrong_password_are_refused(secure_broker, pki: Path) -> None:
    assert _paho_connect(secure_broker, tls=None, username=None, password=None) == -1  # TLS only
    assert _paho_connect(secure_broker, tls=pki, username=None, password=None) not in (0, -1)  # no anonymous
    assert _paho_connect(secure_broker, tls=pki, username="dcim", password="wrong") not in (0, -1)
    assert _paho_connect(secure_broker, tls=pki, username="dcim", password=PASSWORD) == 0


async def test_agent_to_collector_over_tls_with_password(secure_broker, pki: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DCIM_TEST_MQTT_PASSWORD", PASSWORD)
    mqtt = _mqtt_config(secure_broker, pki)
    store_path = tmp_path / "store"
    ccfg = CollectorConfig(sink="embedded", embedded_path=store_path, spool_path=tmp_path / "spool",
                           dead_letter_path=tmp_path / "dead.jsonl", linger_ms=50, client_id="sec-collector")
    creg = CollectorRegistry()
    collector = Collector(ccfg, mqtt, registry=creg)
    run = asyncio.create_task(collector.run())
    await asyncio.wait_for(collector.connected.wait(), 10)

    areg = CollectorRegistry()
    records = [Record("gpu", {"site": "dc1", "rack": "A01", "node": "A01-n01", "gpu": str(i)},
                      {"temp_c": 40.0 + i}, 1_767_225_600_000_000_000 + i) for i in range(5)]
    async with Publisher(mqtt, client_id="sec-agent", status_topic="dcim/dc1/A01/A01-n01/status",
                         queue_max=100, registry=areg, component="gpu") as pub:
        for r in records:
            assert pub.publish("dcim/dc1/A01/A01-n01/gpu", encode([r]).encode())
        assert await pub.flush(10)

    got: list[Record] = []
    for _ in range(100):
        got = list(EmbeddedStore(store_path).query("gpu"))
        if len(got) == len(records):
            break
        await asyncio.sleep(0.1)
    collector.stop()
    await asyncio.wait_for(run, 30)
    assert sorted(got, key=lambda r: r.time_ns) == records

    exposed = generate_latest(areg).decode() + generate_latest(creg).decode()
    assert PASSWORD not in exposed
    assert PASSWORD not in caplog.text


async def test_wrong_password_is_reported_without_the_password(secure_broker, pki: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + PASSWORD
    monkeypatch.setenv("DCIM_TEST_MQTT_PASSWORD", wrong)
    mqtt = _mqtt_config(secure_broker, pki)
    reg = CollectorRegistry()
    async with Publisher(mqtt, client_id="sec-agent-bad", status_topic="dcim/x/status", queue_max=10,
                         registry=reg, component="gpu") as pub:
        pub.publish("dcim/x/gpu", b"gpu temp_c=1.0 1")
        assert not await pub.flush(2)
        assert not pub.connected
    assert reg.get_sample_value("dcim_agent_mqtt_connected", {"component": "gpu"}) == 0
    text = caplog.text
    assert "127.0.0.1" in text  # the failure is reported, naming the broker ...
    assert wrong not in text and PASSWORD not in text  # ... but never the password
    assert wrong not in generate_latest(reg).decode()


def test_record_from_mqtt_with_user_password_and_tls(mosquitto_factory, pki: Path, tmp_path: Path) -> None:
    """`dcim record --from-mqtt` takes a user, a password (from the environment) and a CA file over
    mqtts://; a wrong password is refused and reported without it."""
    import gzip
    import sys
    import threading
    import time

    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "dcim", PASSWORD], check=True, capture_output=True)
    pw.chmod(0o644)
    broker = mosquitto_factory(allow_anonymous=False, extra_config="\n".join([
        f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}", f"keyfile {pki / 'server.key'}",
        "tls_version tlsv1.2", f"password_file {pw}"]))
    line = "gpu,site=dc1,rack=A01,node=A01-n01,gpu=0 temp_c=41.5 1767225600000000000"

    def publish_for(seconds: float) -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="rec-pub")
        client.tls_set(ca_certs=str(pki / "ca.crt"))
        client.username_pw_set("dcim", PASSWORD)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            client.publish("dcim/dc1/A01/A01-n01/gpu", line.encode(), qos=1).wait_for_publish(5)
            time.sleep(0.3)
        client.loop_stop()
        client.disconnect()

    def record(password: str, out: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "dcim.app.cli", "record", "--from-mqtt", f"mqtts://127.0.0.1:{broker.port}",
               "--mqtt-user", "dcim", "--mqtt-password-env", "REC_PW", "--ca-file", str(pki / "ca.crt"),
               "--topic", "dcim/#", "--max-messages", "1", "--duration", "30s", "-o", str(out)]
        return subprocess.run(cmd, capture_output=True, text=True, env={"REC_PW": password, "PATH": "/usr/bin:/bin"},
                              timeout=120, check=False)

    try:
        publisher = threading.Thread(target=publish_for, args=(12,))
        publisher.start()
        out = tmp_path / "live.lp.gz"
        done = record(PASSWORD, out)
        publisher.join()
        assert done.returncode == 0, done.stderr
        assert "gpu,gpu=0,node=A01-n01,rack=A01,site=dc1 temp_c=41.5 1767225600000000000" in \
            gzip.decompress(out.read_bytes()).decode()
        assert PASSWORD not in done.stderr + done.stdout

        wrong = record("wrong-" + PASSWORD, tmp_path / "wrong.lp.gz")
        assert wrong.returncode != 0 and "credentials" in wrong.stderr
        assert PASSWORD not in wrong.stderr + wrong.stdout
    finally:
        broker.close()
