"""Helpers for the collector's integration tests: messages with known values, a QoS 1 publisher,
a collector running in the test's event loop, and readers for what arrived in the stores."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from dcim.collector.app import Collector
from dcim.config import CollectorConfig, MqttConfig
from dcim.lineprotocol.encode import encode_record
from dcim.record import Record

T0 = (time.time_ns() // 10**9 - 3600) * 10**9  # an hour ago, on a whole second (VictoriaMetrics keeps ms)


def uid() -> str:
    return uuid.uuid4().hex[:10]


@dataclass
class Message:
    topic: str
    payload: bytes
    records: list[Record] = field(default_factory=list)


def gpu_messages(prefix: str, n: int, *, nodes: int = 4, gpus: int = 8, start: int = 0, t0: int = T0,
                 site: str | None = None) -> list[Message]:
    """``n`` agent polls (one message per node poll, one line per GPU) with distinct, exact values.

    Topics follow the GPU agent's layout ``<root>/<site>/<rack>/<node>/gpu``: the last level of
    ``prefix`` is the site, and the lines' tags agree with their topic as the collector requires.
    """
    site = site if site is not None else prefix.rsplit("/", 1)[-1]
    out = []
    for k in range(start, start + n):
        node = k % nodes
        step = k // nodes
        ts = t0 + step * 10**9
        recs = [
            Record("gpu", {"site": site, "rack": "R1", "node": f"n{node}", "gpu": str(g)},
                   {"power_w": 100.0 + k + g / 8, "temp_c": 40.0 + (k % 97) / 4, "util_pct": float(g * 12.5),
                    "mem_used_bytes": k * 1000 + g, "throttle_hw_slowdown": (k + g) % 5 == 0},
                   ts)
            for g in range(gpus)
        ]
        payload = "\n".join(encode_record(r) for r in recs).encode()
        out.append(Message(f"{prefix}/R1/n{node}/gpu", payload, recs))
    return out


def all_records(msgs: Iterable[Message]) -> list[Record]:
    return [r for m in msgs for r in m.records]


class Publisher:
    """A paho client publishing with QoS 1 and waiting for every PUBACK; reconnects by itself."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uid()}")
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()

    def publish(self, msgs: Iterable[Message], *, delay_s: float = 0.0, qos: int = 1) -> None:
        infos = []
        for m in msgs:
            infos.append(self.client.publish(m.topic, m.payload, qos=qos))
            if delay_s:
                time.sleep(delay_s)
        for info in infos:
            info.wait_for_publish(timeout=60)
            assert info.is_published(), "the broker did not acknowledge a publish"

    def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=60)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.asynccontextmanager
async def running(config: CollectorConfig, mqtt_url: str, **kwargs) -> AsyncIterator[Collector]:
    """A collector running in this event loop until the block ends (then stopped cleanly)."""
    c = Collector(config, MqttConfig(url=mqtt_url), **kwargs)
    task = asyncio.create_task(c.run())
    try:
        await asyncio.wait_for(c.connected.wait(), 20)
        yield c
    finally:
        c.stop()
        await asyncio.wait_for(task, 60)


async def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition"):
    """Poll ``predicate`` (sync; run in a thread) until it is truthy; its value."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(predicate)
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout_s} s (last: {last!r})")


def metric(c: Collector, name: str, **labels) -> float:
    return c.metrics.registry.get_sample_value(name, labels or None) or 0.0


# --- what arrived ------------------------------------------------------------------------------


def influx_count(influxdb, db: str, measurement: str = "gpu", fld: str = "power_w") -> int:
    rows = influxdb.points(f'SELECT count("{fld}") FROM "{measurement}"', db)
    return int(rows[0]["count"]) if rows else 0


def influx_records(influxdb, db: str, measurement: str, tag_keys: Iterable[str]) -> dict[tuple, dict]:
    """(tags..., time) -> fields, from InfluxDB 1.x."""
    keys = list(tag_keys)
    out = {}
    for row in influxdb.points(f'SELECT * FROM "{measurement}"', db):
        t = row.pop("time")
        row.pop("_measurement", None)
        tags = tuple(row.pop(k, None) for k in keys)
        out[(*tags, t)] = {k: v for k, v in row.items() if v is not None}
    return out


def expected_rows(records: Iterable[Record], tag_keys: Iterable[str]) -> dict[tuple, dict]:
    keys = list(tag_keys)
    return {(*(r.tags.get(k) for k in keys), r.time_ns): dict(r.fields) for r in records}
