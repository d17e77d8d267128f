"""The shared agent publisher: ordering, acknowledgement, bounded queue, status topic, broker restarts."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

import aiomqtt
import pytest
from prometheus_client import CollectorRegistry

from dcim.agents.publisher import Publisher
from dcim.mqtt import broker_address
from dcim.config import MqttConfig, Secret
from dcim.errors import ConfigError


def _publisher(url: str, registry: CollectorRegistry, *, queue_max: int = 100, client_id: str = "pub-test",
               status: str = "dcim/test/status", **kw) -> Publisher:
    return Publisher(MqttConfig(url=url, **kw), client_id=client_id, status_topic=status, queue_max=queue_max,
                     registry=registry, component="test")


def _metric(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"component": "test"})


def test_broker_address_parses_and_refuses() -> None:
    assert broker_address("mqtt://127.0.0.1:1999") == ("127.0.0.1", 1999, False)
    assert broker_address("mqtts://localhost") == ("localhost", 8883, True)
    with pytest.raises(ConfigError, match="scheme"):
        broker_address("http://127.0.0.1:1883")


async def test_full_queue_drops_oldest_and_counts(free_tcp_port: int) -> None:
    reg = CollectorRegistry()
    pub = _publisher(f"mqtt://127.0.0.1:{free_tcp_port}", reg, queue_max=3)  # nothing listens there
    results = [pub.publish("t", str(i).encode()) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert pub.depth == 3
    assert [p for _, p in pub._queue] == [b"2", b"3", b"4"]  # the newest three are kept
    assert _metric(reg, "dcim_agent_dropped_total") == 2
    assert _metric(reg, "dcim_agent_queue_depth") == 3
    async with pub:
        assert await pub.flush(0.3) is False  # no broker: nothing can be acknowledged
        assert not pub.connected
        assert _metric(reg, "dcim_agent_mqtt_connected") == 0


async def _collect(url: str, topic: str, n: int, out: list, ready: asyncio.Event, *, until: set | None = None,
                   **kw) -> None:
    """Append (topic, payload, retain) to ``out`` until ``n`` messages, or every payload in ``until``, arrived."""
    host, port, _ = broker_address(url)
    async with aiomqtt.Client(host, port, **kw) as sub:
        await sub.subscribe(topic, qos=1)
        ready.set()
        async for msg in sub.messages:
            out.append((str(msg.topic), bytes(msg.payload), msg.retain))
            if until is not None:
                if until <= {p for _, p, _ in out}:
                    return
            elif len(out) >= n:
                return


async def test_publishes_in_order_with_online_status(mosquitto) -> None:
    reg = CollectorRegistry()
    got: list = []
    ready = asyncio.Event()
    collector = asyncio.create_task(_collect(mosquitto.url, "dcim/order/#", 20, got, ready))
    await asyncio.wait_for(ready.wait(), 5)
    pub = _publisher(mosquitto.url, reg, status="dcim/order/status")
    async with pub:
        for i in range(19):
            assert pub.publish("dcim/order/data", f"m{i}".encode())
        assert await pub.flush(5)
        await asyncio.wait_for(collector, 5)
        assert pub.connected
        assert _metric(reg, "dcim_agent_mqtt_connected") == 1
    assert got[0] == ("dcim/order/status", b"online", False)
    assert [p for t, p, _ in got if t == "dcim/order/data"] == [f"m{i}".encode() for i in range(19)]
    assert _metric(reg, "dcim_agent_published_total") == 19
    assert _metric(reg, "dcim_agent_queue_depth") == 0
    # A clean stop leaves a retained offline status (the will only fires on a lost connection).
    retained: list = []
    ready2 = asyncio.Event()
    await asyncio.wait_for(_collect(mosquitto.url, "dcim/order/status", 1, retained, ready2), 5)
    assert retained == [("dcim/order/status", b"offline", True)]


async def test_survives_broker_restart_without_losing_queued(mosquitto_factory) -> None:
    broker = mosquitto_factory()
    reg = CollectorRegistry()
    sub_kw = {"identifier": "restart-sub", "clean_session": False}
    got: list = []
    ready = asyncio.Event()
    # A persistent QoS 1 session: the broker keeps what arrives for us while we are away.
    first = asyncio.create_task(_collect(broker.url, "dcim/restart/data", 10**6, got, ready, **sub_kw))
    await asyncio.wait_for(ready.wait(), 5)
    pub = _publisher(broker.url, reg, status="dcim/restart/status")
    async with pub:
        for i in range(5):
            pub.publish("dcim/restart/data", f"a{i}".encode())
        assert await pub.flush(5)
        broker.stop()
        with contextlib.suppress(aiomqtt.MqttError, asyncio.CancelledError):
            await asyncio.wait_for(first, 5)
        for i in range(5):
            pub.publish("dcim/restart/data", f"b{i}".encode())  # queued while the broker is away
        assert await pub.flush(0.5) is False
        assert pub.depth == 5
        broker.start()
        assert await pub.flush(15)
    ready2 = asyncio.Event()
    expected = [f"{c}{i}".encode() for c in "ab" for i in range(5)]
    await asyncio.wait_for(_collect(broker.url, "dcim/restart/data", 0, got, ready2, until=set(expected),
                                    **sub_kw), 10)
    # At-least-once: the broker may hand a message to the subscriber twice, but none is lost or reordered.
    assert list(dict.fromkeys(p for _, p, _ in got)) == expected
    assert _metric(reg, "dcim_agent_dropped_total") == 0


async def test_wrong_password_retries_and_never_leaks_secret(mosquitto_factory, tmp_path, monkeypatch,
                                                            caplog) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "agent", "right-password"], check=True,
                   capture_output=True)
    broker = mosquitto_factory(allow_anonymous=False, extra_config=f"password_file {pwfile}\n")
    monkeypatch.setenv("DCIM_TEST_MQTT_PW", "not-the-password-s3cr3t")
    reg = CollectorRegistry()
    pub = _publisher(broker.url, reg, username="agent", password=Secret(env="DCIM_TEST_MQTT_PW"))
    caplog.set_level("DEBUG")
    async with pub:
        pub.publish("dcim/pw/data", b"x")
        assert await pub.flush(1.0) is False
        assert not pub.connected
        assert pub.last_error is not None
    assert "s3cr3t" not in caplog.text
    assert "s3cr3t" not in (pub.last_error or "")


def test_serve_metrics_serves_the_given_registry_and_closes() -> None:
    import urllib.request

    from dcim.exporter import serve_metrics

    reg = CollectorRegistry()
    _publisher("mqtt://127.0.0.1:1", reg)  # registers the publisher's metrics
    server = serve_metrics(reg, "127.0.0.1", 0)
    try:
        assert server.port > 0
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert 'dcim_agent_queue_depth{component="test"} 0.0' in body
        assert "python_gc" not in body  # only our registry, not the global one
    finally:
        server.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=1)


def test_serve_metrics_port_in_use_is_a_config_error() -> None:
    from dcim.exporter import serve_metrics

    reg = CollectorRegistry()
    with serve_metrics(reg, "127.0.0.1", 0) as first:
        with pytest.raises(ConfigError, match="cannot serve /metrics"):
            serve_metrics(reg, "127.0.0.1", first.port)


async def test_tls_to_a_plain_port_fails_cleanly_and_keeps_retrying(mosquitto) -> None:
    reg = CollectorRegistry()
    pub = _publisher(f"mqtts://{mosquitto.host}:{mosquitto.port}", reg)
    async with pub:
        pub.publish("dcim/tls/data", b"x")
        assert await pub.flush(1.0) is False
        assert not pub.connected and pub.last_error is not None
        assert pub._task is not None and not pub._task.done()  # the connection task is alive, retrying
    assert pub.depth == 1  # nothing was lost either


def test_missing_secret_is_a_clear_error_at_construction(monkeypatch) -> None:
    from dcim.errors import SecretError

    monkeypatch.delenv("DCIM_TEST_NO_SUCH_PW", raising=False)
    with pytest.raises(SecretError, match="DCIM_TEST_NO_SUCH_PW"):
        _publisher("mqtt://127.0.0.1:1883", CollectorRegistry(), username="u",
                   password=Secret(env="DCIM_TEST_NO_SUCH_PW"))
