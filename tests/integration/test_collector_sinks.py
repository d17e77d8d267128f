"""Sinks as a list: InfluxDB 1.6.7 and VictoriaMetrics written side by side (a migration), each
with its own spool; a message is acknowledged only once both have its points, and an outage of
one store holds only that store's spool."""

from __future__ import annotations

import asyncio

import pytest

from dcim.config import CollectorConfig
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


async def test_influxdb_1x_and_victoriametrics_side_by_side(mosquitto, influxdb, victoriametrics_factory, tmp_path):
    vm = victoriametrics_factory()
    run = uid()
    db = f"c{run}"
    influxdb.create_database(db)
    cfg = CollectorConfig(
        topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", spool_path=tmp_path / "spool",
        dead_letter_path=tmp_path / "dead.jsonl", linger_ms=100, retry_max_s=0.5, self_report_s=0,
        sinks=[{"kind": "influxdb_v1", "name": "old", "url": influxdb.url, "database": db, "timeout_s": 2},
               {"kind": "influxdb_v2", "name": "new", "url": vm.url, "org": "dcim", "bucket": "dcim", "timeout_s": 2}],
    )
    msgs = gpu_messages(f"dcim/{run}", 300)

    def vm_points() -> int:
        vm.flush()
        return sum(len(s["values"]) for s in vm.export(f'{{__name__="gpu_power_w",site="{run}"}}'))

    pub = Publisher(mosquitto.host, mosquitto.port)
    async with running(cfg, mosquitto.url) as c:
        assert [r.sink.name for r in c.routers] == ["old", "new"]
        await asyncio.to_thread(pub.publish, msgs[:100])
        await wait_for(lambda: influx_count(influxdb, db) >= 800 and vm_points() >= 800, what="both stores")
        # VictoriaMetrics away: its own spool takes its share, InfluxDB goes on, messages are acked
        await asyncio.to_thread(vm.stop)
        await asyncio.to_thread(pub.publish, msgs[100:200])
        await wait_for(lambda: influx_count(influxdb, db) >= 1600, what="InfluxDB while VictoriaMetrics is away")
        await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") >= 200, what="acked from the spool")
        assert metric(c, "dcim_collector_sink_up", sink="new") == 0
        assert metric(c, "dcim_collector_sink_up", sink="old") == 1
        assert c.routers[1].spool.batches > 0 and c.routers[0].spool.empty()
        await asyncio.to_thread(vm.start)
        await asyncio.to_thread(pub.publish, msgs[200:])
        await wait_for(lambda: influx_count(influxdb, db) >= 2400 and vm_points() >= 2400, timeout_s=90,
                       what="every point in both stores")
        await wait_for(lambda: metric(c, "dcim_collector_spool_bytes") == 0, what="both spools drained")
        assert metric(c, "dcim_collector_points_written_total", sink="old") == 2400
        assert metric(c, "dcim_collector_points_written_total", sink="new") == 2400
    pub.close()
    assert (tmp_path / "spool" / "old").is_dir() and (tmp_path / "spool" / "new").is_dir()
    assert influx_records(influxdb, db, "gpu", TAGS) == expected_rows(all_records(msgs), TAGS)
    vm.close()


def test_sink_kinds_come_from_one_registry():
    from dcim.collector.sinks import SINKS
    from dcim.config import SINK_CONFIGS

    assert set(SINKS) == set(SINK_CONFIGS) == {"influxdb_v1", "influxdb_v2", "embedded"}
    with pytest.raises(ValueError, match="sink names must be unique"):
        CollectorConfig(sinks=[{"kind": "influxdb_v1"}, {"kind": "influxdb_v1"}])
    with pytest.raises(ValueError, match="kind"):
        CollectorConfig(sinks=[{"kind": "kafka"}])
