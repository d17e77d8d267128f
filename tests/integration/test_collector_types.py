"""Types per sink: unsigned fields (the IF-MIB byte and error counters) reach InfluxDB 1.6.7 as
integers, a value past 2^63-1 is refused with that reason, and VictoriaMetrics (/api/v2/write) takes
them as sent; each against the real server."""

from __future__ import annotations

import asyncio

import pytest

from dcim.collector.deadletter import read_dead_letters
from dcim.config import CollectorConfig, InfluxConfig
from tests.collector.helpers import T0, Publisher, metric, running, uid, wait_for

pytestmark = pytest.mark.integration
BIG = 2**63 + 5  # an IF-MIB ifHCInOctets past the signed range (a 64-bit counter near its wrap)


def _payload(run: str) -> tuple[str, bytes, bytes]:
    topic = f"dcim/{run}/R1/sw1/snmp"
    ok = (f"netif,site={run},rack=R1,switch=sw1,ifname=eth0 rx_bytes_total=9223372036854775807u,"
          f"rx_errors_total=3u {T0}\n"
          f"netif,site={run},rack=R1,switch=sw1,ifname=eth1 rx_bytes_total=42u {T0}\n").encode()
    big = f"netif,site={run},rack=R1,switch=sw1,ifname=eth2 rx_bytes_total={BIG}u {T0}\n".encode()
    return topic, ok, big


def _config(tmp_path, run: str, influx: InfluxConfig) -> CollectorConfig:
    return CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", sink="influx", influx=influx,
                           spool_path=tmp_path / "spool", dead_letter_path=tmp_path / "dead.jsonl", linger_ms=100)


async def test_unsigned_counters_reach_influxdb_1x_as_integers(mosquitto, influxdb, tmp_path):
    run = uid()
    db = f"c{run}"
    influxdb.create_database(db)
    topic, ok, big = _payload(run)
    async with running(_config(tmp_path, run, InfluxConfig(url=influxdb.url, database=db)), mosquitto.url) as c:
        pub = Publisher(mosquitto.host, mosquitto.port)
        await asyncio.to_thread(pub.publish_raw, topic, ok + big)
        pub.close()
        await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") >= 1, what="acknowledged")
    rows = {r["ifname"]: r for r in influxdb.points("SELECT * FROM netif", db)}
    assert rows["eth0"]["rx_bytes_total"] == 2**63 - 1 and rows["eth0"]["rx_errors_total"] == 3
    assert rows["eth1"]["rx_bytes_total"] == 42
    assert "eth2" not in rows
    types = {r["fieldKey"]: r["fieldType"] for r in influxdb.points("SHOW FIELD KEYS FROM netif", db, epoch=None)}
    assert types == {"rx_bytes_total": "integer", "rx_errors_total": "integer"}
    (dead,) = read_dead_letters(tmp_path / "dead.jsonl")
    assert dead["reason"] == "sink_rejected" and dead["topic"] == topic
    assert f"{BIG}" in dead["detail"] and "past 2^63-1" in dead["detail"]


async def test_unsigned_counters_reach_victoriametrics_as_sent(mosquitto, victoriametrics, tmp_path):
    run = uid()
    topic, ok, big = _payload(run)
    cfg = _config(tmp_path, run, InfluxConfig(url=victoriametrics.url, api="v2", org="dcim", bucket=f"b{run}"))
    async with running(cfg, mosquitto.url) as c:
        pub = Publisher(mosquitto.host, mosquitto.port)
        await asyncio.to_thread(pub.publish_raw, topic, ok + big)
        pub.close()
        await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") >= 1, what="acknowledged")

    def arrived():
        victoriametrics.flush()
        got = {(s["metric"]["__name__"], s["metric"]["ifname"]): s["values"][-1]
               for s in victoriametrics.export(f'{{site="{run}"}}')}
        return got if len(got) >= 4 else None

    got = await wait_for(arrived, what="the counters in VictoriaMetrics")
    assert got[("netif_rx_bytes_total", "eth1")] == 42
    assert got[("netif_rx_errors_total", "eth0")] == 3
    # VictoriaMetrics keeps float64: the big counters arrive as their nearest doubles
    assert float(got[("netif_rx_bytes_total", "eth0")]) == float(2**63 - 1)
    assert float(got[("netif_rx_bytes_total", "eth2")]) == float(BIG)
    assert read_dead_letters(tmp_path / "dead.jsonl") == []
