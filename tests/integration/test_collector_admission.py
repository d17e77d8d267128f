"""Tags are part of the schema and of the topic, a series budget holds off a flood, and every
refusal (InfluxDB's too) is dead-lettered with its topic: against real Mosquitto and InfluxDB 1.6.7."""

from __future__ import annotations

import pytest

from dcim.collector.deadletter import read_dead_letters
from dcim.config import CollectorConfig, InfluxConfig
from tests.collector.helpers import (
    T0,
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


async def test_wrong_node_made_up_tags_and_a_series_flood_are_refused_with_their_topics(mosquitto, influxdb, tmp_path):
    run = uid()
    db = f"c{run}"
    influxdb.create_database(db)
    # InfluxDB already holds sm_clock_mhz of measurement gpu as a string: it refuses our float (400)
    influxdb.write(f'gpu,site={run},rack=R0,node=old,gpu=0 sm_clock_mhz="fast" {T0 - 10**9}\n', db)
    good = gpu_messages(f"dcim/{run}", 8)  # 4 nodes x 8 GPUs = 32 series
    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", sink="influx",
                          influx=InfluxConfig(url=influxdb.url, database=db), max_series=40,
                          spool_path=tmp_path / "spool", dead_letter_path=tmp_path / "dead.jsonl", linger_ms=100)
    n0 = f"dcim/{run}/R1/n0/gpu"
    wrong_node = f"gpu,site={run},rack=R1,node=n1,gpu=0 power_w=1 {T0}".encode()
    made_up = f"gpu,site={run},rack=R1,node=n0,gpu=0,colour=red power_w=1 {T0}".encode()
    conflict = f"gpu,site={run},rack=R1,node=n0,gpu=0 sm_clock_mhz=1410 {T0 + 1}".encode()
    flood = [f"gpu,site={run},rack=R1,node=n0,gpu=x{i} power_w=1 {T0}".encode() for i in range(30)]
    pub = Publisher(mosquitto.host, mosquitto.port)
    async with running(cfg, mosquitto.url) as c:
        pub.publish(good[:4])
        await wait_for(lambda: metric(c, "dcim_collector_points_written_total", sink="influxdb_v1") >= 32,
                       what="the first polls written")
        pub.publish_raw(n0, wrong_node)
        pub.publish_raw(n0, made_up)
        pub.publish_raw(n0, conflict)
        for p in flood:
            pub.publish_raw(n0, p)
        pub.publish(good[4:])  # the same 32 series again: admitted, the flood does not starve them
        await wait_for(lambda: influx_count(influxdb, db) >= 64, what="every legitimate point")
        await wait_for(lambda: metric(c, "dcim_collector_rejected_total", reason="sink_rejected") >= 1,
                       what="InfluxDB's refusal")
        assert metric(c, "dcim_collector_rejected_total", reason="topic_mismatch") == 1
        assert metric(c, "dcim_collector_rejected_total", reason="unknown_tag") == 1
        assert metric(c, "dcim_collector_rejected_total", reason="series_budget") == 30 - 8
        assert metric(c, "dcim_collector_series") == 40
    pub.close()
    stored = influx_records(influxdb, db, "gpu", TAGS)
    for rec in all_records(good):
        key = tuple(rec.tags[k] for k in TAGS) + (rec.time_ns,)
        assert stored[key]["power_w"] == rec.fields["power_w"]
    assert (run, "R1", "n1", "0", T0) not in stored or stored[(run, "R1", "n1", "0", T0)]["power_w"] != 1
    dead = read_dead_letters(tmp_path / "dead.jsonl")
    by_reason: dict[str, list[dict]] = {}
    for d in dead:
        by_reason.setdefault(d["reason"], []).append(d)
    assert by_reason["topic_mismatch"][0]["topic"] == n0 and "node='n1'" in by_reason["topic_mismatch"][0]["detail"]
    assert by_reason["unknown_tag"][0]["topic"] == n0
    assert len(by_reason["series_budget"]) == 22 and {d["topic"] for d in by_reason["series_budget"]} == {n0}
    refused = by_reason["sink_rejected"]
    assert [d["topic"] for d in refused] == [n0] and "sm_clock_mhz=1410" in refused[0]["text"]
    assert all("field type conflict" in d["detail"] for d in refused)
