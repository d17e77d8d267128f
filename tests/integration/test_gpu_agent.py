"""The GPU agent against real servers: Mosquitto (publish, status, broker restart), Prometheus, promtool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import urllib.request

import aiomqtt
import pytest
import servers
from prometheus_client import CollectorRegistry
from servers import MissingBinaryError, wait_until

from dcim.agents.gpu.agent import GpuAgent, gpu_topic, run_agent
from dcim.agents.gpu.metrics import serve_gpu_metrics
from dcim.agents.publisher import Publisher
from dcim.config import MqttConfig
from dcim.lineprotocol.decode import decode
from dcim.schema import validate
from dcim.simulators.nvml import SimNvml, synthetic_gpus

pytestmark = pytest.mark.integration

TAGS = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "node": "A01-n01"}


class StepClock:
    """Wall clock for records: each poll reads a new whole second, so every poll has its own timestamp."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return 1_800_000_000_000_000_000 + self.n * 1_000_000_000


def make_agent(registry: CollectorRegistry, clock_ns=None) -> GpuAgent:
    gpus = synthetic_gpus("A01-n01", 8)
    gpus[3].unsupported = {"mem_temp_c"}
    kw = {"clock_ns": clock_ns} if clock_ns else {}
    agent = GpuAgent(SimNvml(gpus), tags=TAGS, registry=registry, xid_timeout_ms=20, **kw)
    agent.start()
    return agent


async def subscribe(url_host: str, port: int, topic: str, out: list, ready: asyncio.Event, *, until, **kw) -> None:
    async with aiomqtt.Client(url_host, port, **kw) as sub:
        await sub.subscribe(topic, qos=1)
        ready.set()
        async for msg in sub.messages:
            out.append((str(msg.topic), bytes(msg.payload)))
            if until(out):
                return


async def test_publishes_each_poll_as_valid_line_protocol(mosquitto) -> None:
    reg = CollectorRegistry()
    agent = make_agent(reg)
    topic = gpu_topic("dcim", TAGS)
    assert topic == "dcim/dc1/A01/A01-n01/gpu"
    got: list = []
    ready = asyncio.Event()
    sub = asyncio.create_task(subscribe(mosquitto.host, mosquitto.port, f"{topic}/#", got, ready,
                                        until=lambda o: sum(t == topic for t, _ in o) >= 3))
    await asyncio.wait_for(ready.wait(), 5)
    pub = Publisher(MqttConfig(url=mosquitto.url), client_id="gpu-it-1", status_topic=f"{topic}/status",
                    queue_max=100, registry=reg, component="gpu")
    try:
        async with pub:
            assert await run_agent(agent, pub, topic=topic, interval_s=0.05, stop=asyncio.Event(), polls=3) == 3
            assert await pub.flush(5)
            await asyncio.wait_for(sub, 5)
    finally:
        agent.close()
    assert got[0] == (f"{topic}/status", b"online")
    polls = [p for t, p in got if t == topic]
    assert len(polls) == 3
    for payload in polls:
        records = list(decode(payload.decode()))
        assert sum(r.measurement == "gpu" for r in records) == 8
        assert all(validate(r, allow_extra_tags=False) == [] for r in records)
        gpu3 = next(r for r in records if r.measurement == "gpu" and r.tags["gpu"] == "3")
        assert "mem_temp_c" not in gpu3.fields  # unsupported stays absent over MQTT too
        agent_rec = next(r for r in records if r.measurement == "agent" and "gpu" not in r.tags)
        assert agent_rec.fields["queue_depth"] >= 0 and agent_rec.fields["dropped_total"] == 0


async def test_survives_broker_restart_without_losing_queued_polls(mosquitto_factory) -> None:
    broker = mosquitto_factory()
    reg = CollectorRegistry()
    agent = make_agent(reg, clock_ns=StepClock())
    topic = gpu_topic("dcim", TAGS)
    sub_kw = {"identifier": "gpu-restart-sub", "clean_session": False}
    got: list = []
    ready = asyncio.Event()
    first = asyncio.create_task(subscribe(broker.host, broker.port, topic, got, ready, until=lambda o: False,
                                          **sub_kw))
    await asyncio.wait_for(ready.wait(), 5)
    pub = Publisher(MqttConfig(url=broker.url), client_id="gpu-it-2", status_topic=f"{topic}/status",
                    queue_max=1000, registry=reg, component="gpu")
    try:
        async with pub:
            await run_agent(agent, pub, topic=topic, interval_s=0.02, stop=asyncio.Event(), polls=5)
            assert await pub.flush(5)
            broker.stop()
            with contextlib.suppress(aiomqtt.MqttError, asyncio.CancelledError):
                await asyncio.wait_for(first, 5)
            await run_agent(agent, pub, topic=topic, interval_s=0.02, stop=asyncio.Event(), polls=10)
            assert pub.depth == 10  # queued while the broker is away
            assert reg.get_sample_value("dcim_agent_mqtt_connected", {"component": "gpu"}) == 0
            broker.start()
            assert await pub.flush(20)
            await run_agent(agent, pub, topic=topic, interval_s=0.02, stop=asyncio.Event(), polls=2)
            assert await pub.flush(5)
    finally:
        agent.close()

    def times(out: list) -> set[int]:
        return {next(iter(decode(p.decode()))).time_ns for _, p in out}

    expected = {1_800_000_000_000_000_000 + n * 1_000_000_000 for n in range(1, 18)}
    ready2 = asyncio.Event()
    await asyncio.wait_for(subscribe(broker.host, broker.port, topic, got, ready2,
                                     until=lambda o: times(o) >= expected, **sub_kw), 15)
    assert times(got) == expected  # every poll arrived, the queued ones included
    assert reg.get_sample_value("dcim_agent_dropped_total", {"component": "gpu"}) == 0


def test_prometheus_scrapes_metrics(prometheus_factory) -> None:
    reg = CollectorRegistry()
    agent = make_agent(reg)
    agent.poll()
    server = serve_gpu_metrics(reg, "127.0.0.1", 0)
    try:
        prom = prometheus_factory(targets=[f"127.0.0.1:{server.port}"], self_scrape=False)
        prom.wait_targets_up(30)
        result = wait_until(lambda: prom.query("DCGM_FI_DEV_GPU_TEMP"), 30, 0.2, "GPU temperatures scraped")
        assert len(result) == 8
        assert {r["metric"]["Hostname"] for r in result} == {"A01-n01"}
        assert all(float(r["value"][1]) > 0 for r in result)
        energy = prom.query("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")
        assert len(energy) == 8
        # The GPU without memory temperature has no series at all, never a 0.
        mem = prom.query("DCGM_FI_DEV_MEMORY_TEMP")
        assert len(mem) == 7 and all(float(r["value"][1]) > 0 for r in mem)
        assert prom.query('dcim_gpu_agent_unsupported_field{field="mem_temp_c",gpu="3"}')
        # Prometheus takes dcgm-exporter's counters as counters, under their exact names
        meta = wait_until(lambda: prom.api("metadata").get("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"), 30, 0.2,
                          "metadata scraped")
        assert meta[0]["type"] == "counter"
        assert prom.api("metadata")["DCGM_FI_DEV_GPU_TEMP"][0]["type"] == "gauge"
        assert len(prom.query("rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[1m])")) in (0, 8)
        assert len(prom.query("DCGM_FI_DEV_XID_ERRORS == 0")) == 8  # 0 before any XID, as dcgm-exporter
    finally:
        server.close()
        agent.close()


def _promtool() -> str:
    try:
        return str(servers.find_binary("promtool"))
    except MissingBinaryError as exc:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail(f"CI=true and promtool is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))


def test_promtool_flags_nothing_but_dcgm_exporter_spellings() -> None:
    promtool = _promtool()
    reg = CollectorRegistry()
    Publisher(MqttConfig(), client_id="x", status_topic="s", queue_max=1, registry=reg, component="gpu")
    gpus = synthetic_gpus("A01-n01", 2)
    gpus[0].xid_events.append((13, 0.0))
    agent = GpuAgent(SimNvml(gpus), tags=TAGS, registry=reg, xid_timeout_ms=20)
    agent.start()
    try:
        wait_until(lambda: agent.xids.summary(agent.reader.gpus[0].uuid).total == 1, 5, 0.01, "xid counted")
        agent.poll()
        server = serve_gpu_metrics(reg, "127.0.0.1", 0)
        body = urllib.request.urlopen(server.url, timeout=5).read()
        server.close()
    finally:
        agent.close()
    assert b"dcim_gpu_xid_errors_total" in body and b"dcim_agent_queue_depth" in body
    proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    problems = [ln for ln in (proc.stdout + proc.stderr).decode().splitlines() if ln.strip()]
    assert any(ln.startswith("DCGM_FI_") for ln in problems)  # the lint does look at them ...
    ours = [ln for ln in problems if not ln.startswith("DCGM_FI_")]
    assert ours == []  # ... and finds nothing in the agent's own names
