"""Points published over MQTT arrive exactly (count and values) in InfluxDB 1.6.7 over /write,
in VictoriaMetrics over /api/v2/write, and survive an InfluxDB outage in the middle of a stream."""

from __future__ import annotations

import asyncio
import os

import pytest

from dcim.collector.sinks import InfluxSink
from dcim.config import CollectorConfig, InfluxConfig
from dcim.lineprotocol.decode import decode
from tests.collector.helpers import (
    Publisher,
    all_records,
    expected_rows,
    gpu_messages,
    influx_count,
    influx_records,
    metric,
    running,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration
TAGS = ("site", "rack", "node", "gpu")
OUTAGE_S = float(os.environ.get("DCIM_COLLECTOR_OUTAGE_S", "5"))


def config(tmp_path, run: str, **kw) -> CollectorConfig:
    return CollectorConfig(
        topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", spool_path=tmp_path / "spool",
        dead_letter_path=tmp_path / "dead.jsonl", linger_ms=100, retry_max_s=0.5,
        self_report_s=0, **kw,  # exact point counts below: no self-reports among them
    )


async def test_points_arrive_exactly_over_v1(mosquitto, influxdb, tmp_path):
    run = uid()
    db = f"c{run}"
    influxdb.create_database(db)
    cfg = config(tmp_path, run, sink="influx", influx=InfluxConfig(url=influxdb.url, api="v1", database=db))
    msgs = gpu_messages(f"dcim/{run}", 300)
    async with running(cfg, mosquitto.url) as c:
        pub = Publisher(mosquitto.host, mosquitto.port)
        await asyncio.to_thread(pub.publish, msgs)
        pub.close()
        await wait_for(lambda: influx_count(influxdb, db) >= 2400, what="2400 points in InfluxDB")
        await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") == 300, what="300 acks")
    assert influx_records(influxdb, db, "gpu", TAGS) == expected_rows(all_records(msgs), TAGS)
    assert metric(c, "dcim_collector_points_written_total", sink="influxdb_v1") == 2400
    assert metric(c, "dcim_collector_points_spooled_total") == 0


async def test_points_arrive_exactly_over_v2(mosquitto, victoriametrics, tmp_path):
    run = uid()
    cfg = config(tmp_path, run, sink="influx",
                 influx=InfluxConfig(url=victoriametrics.url, api="v2", org="dcim", bucket=f"b{run}"))
    msgs = gpu_messages(f"dcim/{run}", 120, site=run)  # VictoriaMetrics ignores the bucket
    expected = {}
    for r in all_records(msgs):
        for f in ("power_w", "temp_c", "util_pct"):
            expected[(f"gpu_{f}", r.tags["node"], r.tags["gpu"], r.time_ns // 10**6)] = r.fields[f]

    def arrived():
        got = {}
        for s in victoriametrics.export(f'{{site="{run}",__name__=~"gpu_(power_w|temp_c|util_pct)"}}'):
            m = s["metric"]
            for v, t in zip(s["values"], s["timestamps"]):
                got[(m["__name__"], m["node"], m["gpu"], t)] = v
        return got if len(got) >= len(expected) else None

    async with running(cfg, mosquitto.url) as c:
        pub = Publisher(mosquitto.host, mosquitto.port)
        await asyncio.to_thread(pub.publish, msgs)
        pub.close()
        got = await wait_for(arrived, what="every point in VictoriaMetrics")
    assert got == expected
    assert metric(c, "dcim_collector_points_written_total", sink="influxdb_v2") == 960


class Spy:
    """Wraps a sink and keeps the lines of every accepted write, in the order they were accepted."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.lines: list[str] = []

    async def write(self, body: bytes) -> None:
        await self.inner.write(body)
        self.lines += body.decode().splitlines()

    def close(self) -> None:
        self.inner.close()


async def test_influxdb_down_mid_stream_loses_nothing_and_keeps_order(mosquitto, influxdb_factory, tmp_path):
    """InfluxDB stopped mid-stream, then started again. The outage lasts OUTAGE_S (5 s by default,
    about 8 s with the stop and start; DCIM_COLLECTOR_OUTAGE_S=30 gives the full 30 s): the code path
    (spool, acknowledge, back off, drain in order) is the same, only longer."""
    influx = influxdb_factory()
    run = uid()
    db = f"c{run}"
    influx.create_database(db)
    icfg = InfluxConfig(url=influx.url, api="v1", database=db, timeout_s=3)
    cfg = config(tmp_path, run, sink="influx", influx=icfg)
    spy = Spy(InfluxSink(icfg))
    msgs = gpu_messages(f"dcim/{run}", 600)
    pub = Publisher(mosquitto.host, mosquitto.port)
    async with running(cfg, mosquitto.url, sink=spy) as c:
        await asyncio.to_thread(pub.publish, msgs[:200])
        await wait_for(lambda: influx_count(influx, db) >= 1600, what="first third in InfluxDB")
        await asyncio.to_thread(influx.stop)
        await asyncio.to_thread(pub.publish, msgs[200:400], delay_s=0.01)
        # acknowledged while InfluxDB is away: the points are in the fsynced spool
        await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") >= 400, what="acks while down")
        assert metric(c, "dcim_collector_points_spooled_total") > 0
        assert metric(c, "dcim_collector_spool_bytes") > 0
        assert metric(c, "dcim_collector_sink_up", sink="influxdb_v1") == 0
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(influx.start)
        await asyncio.to_thread(pub.publish, msgs[400:])
        await wait_for(lambda: influx_count(influx, db) >= 4800, timeout_s=90, what="every point after the outage")
        await wait_for(lambda: metric(c, "dcim_collector_spool_bytes") == 0, what="spool drained")
    pub.close()
    assert influx_records(influx, db, "gpu", TAGS) == expected_rows(all_records(msgs), TAGS)
    assert metric(c, "dcim_collector_sink_errors_total", sink="influxdb_v1", status="network") > 0
    # every series was written in time order, across the outage and the spool
    last: dict[tuple, int] = {}
    for line in spy.lines:
        (r,) = decode(line)
        key = r.series()
        assert r.time_ns >= last.get(key, 0), f"{key} went back in time"
        last[key] = r.time_ns
