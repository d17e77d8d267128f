"""A recording of an InfluxDB range replays exactly like a recording of the MQTT stream that filled it.

The stream is a simulated pump failure published as agents do (one message per device poll); the
real collector writes it into InfluxDB 1.6.7 while ``records_from_mqtt`` records the same stream.
Then ``dcim record --from-influx`` reads the range back, and both recordings are replayed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcim.alerts.recording import Header, RecordingReader, format_time, write_recording
from dcim.alerts.recording_sources import records_from_mqtt, records_from_simulator
from dcim.collector.sinks import InfluxSink  # noqa: F401  (the collector's sink must exist for this test to mean anything)
from dcim.app.cli import cli
from dcim.config import CollectorConfig, InfluxConfig, load_site
from dcim.lineprotocol.encode import encode
from tests.alerts.test_replay_pump import SITE_YAML, rules_yaml
from tests.collector.helpers import Message, Publisher, influx_count, running, uid, wait_for

pytestmark = pytest.mark.integration


def device_messages(prefix: str, records: list) -> list[Message]:
    """One message per device poll, as the agents publish: a node's GPUs together, a loop alone."""
    groups: dict[tuple, list] = {}
    for r in records:
        device = r.tags.get("node") or r.tags.get("loop")
        groups.setdefault((r.time_ns, r.measurement, device), []).append(r)
    return [Message(f"{prefix}/{m}/{dev}", encode(recs).encode(), recs) for (_, m, dev), recs in groups.items()]


def replay_json(rec: Path, rules: Path) -> list[dict]:
    res = CliRunner().invoke(cli, ["replay", str(rec), "--rules", str(rules), "--format", "json"])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


async def test_influx_range_replays_like_the_stream_that_filled_it(mosquitto, influxdb, tmp_path: Path) -> None:
    run = uid()
    db = f"replay{run}"
    influxdb.create_database(db)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE_YAML)
    records = [r for r in records_from_simulator("pump-degradation", 300, site=load_site(site_file))
               if r.measurement in ("gpu", "coolant_loop")]
    msgs = device_messages(f"dcim/{run}", records)

    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", spool_path=tmp_path / "spool",
                          dead_letter_path=tmp_path / "dead.jsonl", linger_ms=100, retry_max_s=0.5, sink="influx",
                          influx=InfluxConfig(url=influxdb.url, api="v1", database=db))
    ready = asyncio.Event()
    counts: dict[str, int] = {}
    async with running(cfg, mosquitto.url):
        recorder = asyncio.create_task(records_from_mqtt(
            mosquitto.url, topics=[f"dcim/{run}/#"], max_messages=len(msgs), duration_s=120, ready=ready,
            counts=counts))
        await asyncio.wait_for(ready.wait(), 20)
        pub = Publisher(mosquitto.host, mosquitto.port)
        await asyncio.to_thread(pub.publish, msgs)
        pub.close()
        streamed = await recorder
        n_gpu = sum(1 for r in records if r.measurement == "gpu")
        await wait_for(lambda: influx_count(influxdb, db, "gpu", "temp_c") >= n_gpu, what="every GPU point in InfluxDB")
    assert counts == {"messages": len(msgs), "skipped": 0}

    start, end = records[0].time_ns, records[-1].time_ns
    from_stream = tmp_path / "stream.lp.gz"
    write_recording(from_stream, streamed, Header(source="mqtt", topology=str(site_file)))
    from_influx = tmp_path / "influx.lp.gz"
    res = CliRunner().invoke(cli, ["record", "--from-influx", influxdb.url, "--db", db, "--start", format_time(start),
                                   "--end", format_time(end), "--site", str(site_file), "-o", str(from_influx)])
    assert res.exit_code == 0, res.output

    a, b = RecordingReader(from_stream).records(), RecordingReader(from_influx).records()
    assert len(a) == len(records) and a == b  # same points, same field types (30.0 stays a float, 1i an int)

    flows = [r.fields["flow_lpm"] for r in records if r.measurement == "coolant_loop"]
    rules = tmp_path / "rules"
    rules.mkdir()
    temps = [r.fields["temp_c"] for r in records if r.measurement == "gpu"]
    (rules / "r.yaml").write_text(rules_yaml(round(flows[0] * 0.5, 1), round(sorted(temps)[len(temps) * 9 // 10], 1)))
    ta, tb = replay_json(from_stream, rules), replay_json(from_influx, rules)
    assert ta == tb
    assert any(t["state"] == "firing" and t["rule"] == "CoolantFlowLow" for t in ta)
    assert any(t["state"] == "firing" and t["rule"] == "GpuHot" for t in ta)

    # a location filter keeps the rack's GPUs and the loops (which carry no rack tag)
    one_rack = tmp_path / "a01.lp.gz"
    res = CliRunner().invoke(cli, ["record", "--from-influx", influxdb.url, "--db", db, "--start", format_time(start),
                                   "--end", format_time(end), "--rack", "A01", "-o", str(one_rack)])
    assert res.exit_code == 0, res.output
    got = RecordingReader(one_rack).records()
    assert {r.tags["rack"] for r in got if r.measurement == "gpu"} == {"A01"}
    assert [r for r in got if r.measurement == "coolant_loop"] == [r for r in a if r.measurement == "coolant_loop"]
    assert "rack=A01" in RecordingReader(one_rack).header.source


async def test_replay_into_influx_for_the_dashboards(influxdb, tmp_path: Path) -> None:
    db = f"scratch{uid()}"
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE_YAML)
    rec = tmp_path / "pump.lp.gz"
    records = [r for r in records_from_simulator("pump-degradation", 200, site=load_site(site_file))
               if r.measurement == "coolant_loop"]
    write_recording(rec, records, Header(source="test", topology=str(site_file)))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(rules_yaml(round(records[0].fields["flow_lpm"] * 0.5, 1), 200.0))
    for shift in (False, True):
        args = ["replay", str(rec), "--rules", str(rules), "--to-influx", influxdb.url, "--db", f"{db}{int(shift)}"]
        res = await asyncio.to_thread(CliRunner().invoke, cli, args + (["--shift-to-now"] if shift else []))
        assert res.exit_code == 0, res.output
    kept = influxdb.points("SELECT flow_lpm FROM coolant_loop", f"{db}0")
    assert sorted(p["time"] for p in kept) == sorted(r.time_ns for r in records)
    alerts = influxdb.points("SELECT state, value FROM alert", f"{db}0")
    assert [p["state"] for p in alerts][:2] == ["pending", "firing"]
    shifted = influxdb.points("SELECT flow_lpm FROM coolant_loop", f"{db}1")
    offset = {p["time"] - r for p, r in zip(sorted(shifted, key=lambda p: p["time"]), sorted(r.time_ns for r in records))}
    assert len(offset) == 1  # one shift for every point: the incident keeps its shape
    import time

    assert abs(max(p["time"] for p in shifted) - time.time_ns()) < 120 * 10**9  # it ends (about) now


def test_record_from_mqtt_on_the_command_line(mosquitto, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from dcim.record import Record

    run = uid()
    out = tmp_path / "live.lp.gz"
    proc = subprocess.Popen([sys.executable, "-m", "dcim.app.cli", "record", "--from-mqtt", mosquitto.url,
                             "--topic", f"dcim/{run}/#", "--max-messages", "5", "--duration", "60s", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = Publisher(mosquitto.host, mosquitto.port)
    sent = []
    try:
        k = 0
        while proc.poll() is None and k < 200:  # until the recorder is subscribed and has its five
            r = Record("gpu", {"rack": "A01", "node": "A01-n01", "gpu": "0"}, {"temp_c": 60.0 + k}, 10**18 + k * 10**9)
            pub.publish([Message(f"dcim/{run}/A01/A01-n01/gpu", encode([r]).encode(), [r])])
            sent.append(r)
            k += 1
            time.sleep(0.2)
    finally:
        pub.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    got = RecordingReader(out).records()
    assert len(got) == 5 and all(g in sent for g in got)
    assert [g.time_ns for g in got] == sorted(g.time_ns for g in got)
    assert "mqtt url=" in RecordingReader(out).header.source


def test_a_recording_imports_into_influxdb_as_it_is(influxdb, tmp_path: Path) -> None:
    import gzip

    from dcim.record import Record

    db = f"import{uid()}"
    influxdb.create_database(db)
    recs = [Record("gpu", {"rack": "A01", "model": "NVIDIA H100 80GB"}, {"temp_c": 60.0 + t, "processes": 1},
                   10**18 + t * 10**9) for t in range(50)]
    rec = tmp_path / "r.lp.gz"
    write_recording(rec, recs, Header(source="import test", topology="embedded"))
    influxdb.write(gzip.decompress(rec.read_bytes()), db)  # the # header lines are comments to InfluxDB
    rows = influxdb.points('SELECT temp_c, processes, model FROM gpu', db)
    assert [(r["time"], r["temp_c"], r["processes"], r["model"]) for r in rows] == [
        (r.time_ns, r.fields["temp_c"], 1, "NVIDIA H100 80GB") for r in recs]
