"""Two collectors on a shared subscription split one stream; malformed input is counted and
dead-lettered while the valid points of the same stream all arrive and the collector stays up."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from dcim.collector.deadletter import read_dead_letters
from dcim.collector.store import EmbeddedStore
from dcim.config import CollectorConfig, InfluxConfig
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
DATA = Path(__file__).resolve().parents[1] / "collector" / "data"


def store_keys(path: Path) -> dict[tuple, dict]:
    return expected_rows(EmbeddedStore(path).query("gpu"), TAGS)


async def test_two_collectors_on_a_shared_subscription_split_the_stream(mosquitto, tmp_path):
    run = uid()
    group = f"g{run}"

    def cfg(name: str) -> CollectorConfig:
        d = tmp_path / name
        return CollectorConfig(topics=[f"dcim/{run}/#"], shared_group=group, client_id=f"{name}-{run}",
                               sink="embedded", embedded_path=d / "store", spool_path=d / "spool",
                               dead_letter_path=d / "dead.jsonl", linger_ms=100)

    msgs = gpu_messages(f"dcim/{run}", 400)
    expected = expected_rows(all_records(msgs), TAGS)
    async with running(cfg("a"), mosquitto.url) as a, running(cfg("b"), mosquitto.url) as b:
        assert a.subscriptions() == [f"$share/{group}/dcim/{run}/#"]
        pub = Publisher(mosquitto.host, mosquitto.port)
        await asyncio.to_thread(pub.publish, msgs)
        pub.close()
        await wait_for(lambda: metric(a, "dcim_collector_points_written_total", sink="embedded")
                       + metric(b, "dcim_collector_points_written_total", sink="embedded") >= 3200,
                       what="every point written by one of the two")
    got_a = store_keys(tmp_path / "a" / "store")
    got_b = store_keys(tmp_path / "b" / "store")
    assert got_a and got_b, "both collectors took a share"
    assert {**got_a, **got_b} == expected  # the union is what was published
    assert not set(got_a) & set(got_b)  # and, with nobody crashing, nothing twice


async def test_malformed_input_is_counted_dead_lettered_and_survived(mosquitto, influxdb, tmp_path):
    run = uid()
    db = f"c{run}"
    influxdb.create_database(db)
    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", sink="influx",
                          influx=InfluxConfig(url=influxdb.url, database=db), mappings=["cdu_gateway"],
                          spool_path=tmp_path / "spool", dead_letter_path=tmp_path / "dead.jsonl", linger_ms=100)
    good = gpu_messages(f"dcim/{run}", 60)
    rng = random.Random(7)
    cdu_doc = json.loads((DATA / "cdu_gateway.json").read_text())
    cdu_topic = f"cdugw/{run}/hall1/A/cdu-a/loop-a"
    bad = [
        (f"dcim/{run}/R1/x/gpu", bytes(rng.randrange(256) for _ in range(3000)), "parse_error"),
        (f"dcim/{run}/R1/x/gpu", b"gpu,node=n1 power_w=\ngpu,node=n1,gpu=1 power_w=1.0 nope", "parse_error"),
        (f"dcim/{run}/R1/x/gpu", b"x" * (10 * 1024 * 1024), "payload_too_large"),
        (cdu_topic, b'{"status": "ok", "secondary": {', "json_error"),
        (cdu_topic, json.dumps(dict(cdu_doc, status="offline")).encode(), "mapping_error"),
        (f"dcim/{run}/R1/x/gpu", b'{"power": 1}', "no_mapping"),
    ]
    # unknown fields and measurements inside otherwise good messages: only those lines go
    mixed = gpu_messages(f"dcim/{run}", 10, start=60)
    for m in mixed:
        t = m.records[0].time_ns
        m.payload += f"\ngpu,node=n9 warp_drive_w=1.0 {t}\nnosuch,node=n9 x=1 {t}".encode()
    async with running(cfg, mosquitto.url) as c:
        pub = Publisher(mosquitto.host, mosquitto.port)
        pub.publish_raw(f"dcim/{run}/R1/n0/status", b"online", retain=True)
        stream: list = []
        for i, m in enumerate(good):
            stream.append(m)
            if i % 10 == 0:
                stream.append(bad[i // 10])
        stream += mixed
        for item in stream:
            if isinstance(item, tuple):
                await asyncio.to_thread(pub.publish_raw, item[0], item[1])
            else:
                await asyncio.to_thread(pub.publish, [item])
        pub.publish_raw(cdu_topic, (DATA / "cdu_gateway.json").read_bytes())
        pub.close()
        await wait_for(lambda: influx_count(influxdb, db) >= 560, what="every valid point")
        await wait_for(lambda: influx_count(influxdb, db, "coolant_loop", "flow_lpm") >= 1, what="the CDU document")
        await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") >= len(stream) + 2, what="all acked")
        assert not c.stopping.is_set() and c.connected.is_set()  # still up and connected
        assert metric(c, "dcim_collector_messages_received_total", kind="status") == 1
        for reason in ("parse_error", "payload_too_large", "json_error", "mapping_error", "no_mapping"):
            assert metric(c, "dcim_collector_rejected_total", reason=reason) >= 1, reason
        assert metric(c, "dcim_collector_rejected_total", reason="unknown_field") == 10
        assert metric(c, "dcim_collector_rejected_total", reason="unknown_measurement") == 10
    assert influx_records(influxdb, db, "gpu", TAGS) == expected_rows(all_records(good + mixed), TAGS)
    dead = read_dead_letters(tmp_path / "dead.jsonl")
    assert {d["reason"] for d in dead} >= {b[2] for b in bad} | {"unknown_field", "unknown_measurement"}
    big = [d for d in dead if d["reason"] == "payload_too_large"]
    assert len(big) == 1 and big[0]["topic"] == f"dcim/{run}/R1/x/gpu" and "10485760 bytes" in big[0]["detail"]
    assert all(d["topic"] for d in dead)


async def test_a_slow_sink_bounds_what_waits_in_memory(mosquitto, tmp_path):
    """The broker pushes faster than the sink takes: reading pauses, memory stays bounded, nothing is lost."""
    from tests.collector.fakes import ScriptedSink

    class Slow(ScriptedSink):
        async def write(self, body: bytes) -> None:
            await asyncio.sleep(0.05)
            await super().write(body)

    run = uid()
    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", receive_maximum=40,
                          batch_size=40, linger_ms=50, spool_path=tmp_path / "spool",
                          dead_letter_path=tmp_path / "dead.jsonl")
    sink = Slow()
    msgs = gpu_messages(f"dcim/{run}", 600, gpus=2)
    peak = 0
    async with running(cfg, mosquitto.url, sink=sink) as c:
        pub = Publisher(mosquitto.host, mosquitto.port)
        sending = asyncio.create_task(asyncio.to_thread(pub.publish, msgs))
        while len(sink.accepted) < 1200:
            if c._client is not None:  # noqa: SLF001
                peak = max(peak, c._client._queue.qsize())  # noqa: SLF001
            await asyncio.sleep(0.01)
        await sending
        pub.close()
        assert metric(c, "dcim_collector_read_pauses_total") > 0
    assert peak <= 40 + 20  # the high-water mark, plus what one socket read can carry
    assert sorted(sink.accepted) == sorted(line for m in msgs for line in m.payload.decode().split("\n"))


async def test_a_backlog_bigger_than_the_window_is_taken_on_reconnect(mosquitto, tmp_path):
    """Messages queued at the broker for our session while we were away (more than the high-water
    mark) flood in on reconnect, ahead of the SUBACK; they all arrive."""
    from tests.collector.fakes import ScriptedSink

    run = uid()
    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", receive_maximum=20,
                          batch_size=50, linger_ms=50, spool_path=tmp_path / "spool",
                          dead_letter_path=tmp_path / "dead.jsonl")
    async with running(cfg, mosquitto.url, sink=ScriptedSink()):
        pass  # the broker now keeps a session with our subscription
    msgs = gpu_messages(f"dcim/{run}", 400, gpus=2)
    pub = Publisher(mosquitto.host, mosquitto.port)
    await asyncio.to_thread(pub.publish, msgs)
    pub.close()
    sink = ScriptedSink()
    async with running(cfg, mosquitto.url, sink=sink) as c:
        await wait_for(lambda: len(sink.accepted) >= 800, timeout_s=60, what="the whole backlog")
        assert metric(c, "dcim_collector_read_pauses_total") > 0
    assert sorted(sink.accepted) == sorted(line for m in msgs for line in m.payload.decode().split("\n"))
