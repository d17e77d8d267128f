"""Run mode: one MQTT message per device poll to dcim/<site>/<rack>/<device>/snmp, and /metrics."""

from __future__ import annotations

import asyncio
import urllib.request

import aiomqtt
import pytest
from prometheus_client import CollectorRegistry

from dcim.agents.snmp.cli import run
from dcim.agents.snmp.poller import Device
from dcim.agents.snmp.profile import load_profiles
from dcim.config import MqttConfig, named_site
from dcim.lineprotocol.decode import decode
from dcim.simulators.hall import Hall
from dcim.simulators.snmp import serve

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim():
    handle = serve(Hall(named_site("h100-hall"), seed=3), devices=["A01-pdu-a", "cdu-a"])
    yield handle
    handle.stop()


async def test_run_publishes_one_message_per_device_poll(mosquitto, sim, free_tcp_port: int) -> None:
    devices = [Device("A01-pdu-a", port=sim.ports["A01-pdu-a"], tags={"site": "dc1", "rack": "A01", "pdu": "pdu-a"}),
               Device("cdu-a", port=sim.ports["cdu-a"], tags={"site": "dc1", "row": "A", "loop": "loop-a"}),
               Device("ghost", port=sim.ports["cdu-a"], community="wrong", timeout_s=1.0, retries=1,
                      tags={"site": "dc1", "rack": "B09"}, profile="liebert_flexible")]
    host, port = mosquitto.url.removeprefix("mqtt://").split(":")
    got: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(host, int(port), identifier="snmp-run-test") as client:
        await client.subscribe("dcim/dc1/+/+/snmp", qos=1)

        async def collect() -> None:
            async for msg in client.messages:
                got.append((str(msg.topic), bytes(msg.payload)))
                if len(got) == 6:
                    return

        collector = asyncio.create_task(collect())
        registry = CollectorRegistry()
        metrics_text: list[str] = []

        async def scrape_while_running() -> None:
            while not any("ghost" in t for t, _ in got):  # after the silent device's first failed poll
                await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{free_tcp_port}/metrics"
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())  # noqa: S310
            metrics_text.append(text)

        scraper = asyncio.create_task(scrape_while_running())
        await run(devices, load_profiles(), site_tag="dc1", mqtt=MqttConfig(url=mosquitto.url), interval_s=0.5,
                  metrics_host="127.0.0.1", metrics_port=free_tcp_port, queue_max=100, max_in_flight=8,
                  polls_max=2, registry=registry)
        await asyncio.wait_for(collector, 20)
        await scraper
    # the silent device (1 s x 2 tries) delays nobody: both other devices' polls arrive first
    assert [t for t, _ in got[:4]].count("dcim/dc1/B09/ghost/snmp") == 0
    topics = sorted(t for t, _ in got)
    assert topics == sorted(["dcim/dc1/A01/A01-pdu-a/snmp"] * 2 + ["dcim/dc1/A/cdu-a/snmp"] * 2
                            + ["dcim/dc1/B09/ghost/snmp"] * 2)
    for topic, payload in got:
        recs = decode(payload)
        health = [r for r in recs if r.measurement == "agent"]
        assert len(health) == 1
        if "ghost" in topic:
            assert health[0].fields["stale"] is True and len(recs) == 1
        else:
            assert health[0].fields["up"] is True and len(recs) > 1
    text = metrics_text[0]
    assert 'dcim_snmp_device_up{device="A01-pdu-a"} 1.0' in text
    assert 'dcim_snmp_device_stale{device="ghost"} 1.0' in text
    assert "wrong" not in text.replace("dcim_snmp", "")


async def test_sigterm_stops_polling_and_flushes_what_is_queued(mosquitto, sim) -> None:
    """systemd stops the poller with SIGTERM: it must not sleep out its interval or drop queued polls."""
    import signal

    devices = [Device("A01-pdu-a", port=sim.ports["A01-pdu-a"], tags={"site": "dc1", "rack": "A01", "pdu": "pdu-a"})]
    host, port = mosquitto.url.removeprefix("mqtt://").split(":")
    got: list[bytes] = []
    async with aiomqtt.Client(host, int(port), identifier="snmp-sigterm-test") as client:
        await client.subscribe("dcim/dc1/A01/A01-pdu-a/snmp", qos=1)
        registry = CollectorRegistry()
        runner = asyncio.create_task(
            run(devices, load_profiles(), site_tag="dc1", mqtt=MqttConfig(url=mosquitto.url), interval_s=3600,
                metrics_host="127.0.0.1", metrics_port=0, queue_max=100, max_in_flight=8, registry=registry))
        async for msg in client.messages:
            got.append(bytes(msg.payload))
            break
        signal.raise_signal(signal.SIGTERM)  # the handler run() installed turns it into a clean stop
        await asyncio.wait_for(runner, 20)  # long before the hour-long interval
    assert len(got) == 1 and decode(got[0])
    published = registry.get_sample_value("dcim_agent_published_total", {"component": "snmp"})
    assert published == 1
    assert registry.get_sample_value("dcim_agent_queue_depth", {"component": "snmp"}) == 0
