"""The collector without a broker: one message at a time through decode, validate, batch, observe, route."""

from __future__ import annotations

import sys
import types

import pytest
from click.testing import CliRunner

from dcim.collector.app import SYS_TOPICS, AckToken, Collector, make_observers
from dcim.collector.cli import check, collector_cmd
from dcim.collector.deadletter import read_dead_letters
from dcim.config import CollectorConfig
from dcim.errors import ConfigError
from dcim.lineprotocol.decode import decode
from dcim.record import Record
from tests.collector.fakes import ScriptedSink

NOW = 1_800_000_000 * 10**9


def make(tmp_path, observers=(), **kw):
    cfg = CollectorConfig(spool_path=tmp_path / "spool", dead_letter_path=tmp_path / "dl.jsonl",
                          embedded_path=tmp_path / "store", **kw)
    sink = ScriptedSink()
    c = Collector(cfg, sink=sink, observers=observers, clock=lambda: NOW)
    return c, sink


def value(c, name, **labels):
    return c.metrics.registry.get_sample_value(name, labels or None) or 0


LINE = f"gpu,site=dc1,node=n1,gpu=0 power_w=300.5 {NOW}"


async def test_good_bad_and_status_messages(tmp_path):
    c, sink = make(tmp_path)
    acked = []
    c._client = types.SimpleNamespace(_client=types.SimpleNamespace(ack=lambda mid, qos: acked.append(mid)))  # noqa: SLF001
    c._generation = 1  # noqa: SLF001
    c.handle("dcim/dc1/A01/n1/gpu", f"{LINE}\ngpu,node=n1 nope=1 {NOW}".encode(), AckToken(1, 11, 1))
    c.handle("dcim/dc1/A01/n1/status", b"online", AckToken(1, 12, 1))
    c.handle("dcim/dc1/x", bytes(range(11, 256)), AckToken(1, 13, 1))
    c.handle("dcim/dc1/x", b'{"temp": 1}', AckToken(1, 14, 1))
    c.handle("dcim/dc1/x", b"x" * (c.config.max_payload_bytes + 1), AckToken(1, 15, 1))
    c.handle("dcim/dc1/x", LINE.encode(), AckToken(0, 16, 1))  # from a connection that is gone
    assert acked == []  # nothing is acknowledged before the batch is durable
    await c.flush()
    assert sink.accepted == [LINE, LINE]
    assert acked == [11, 12, 13, 14, 15]
    reasons = [d["reason"] for d in read_dead_letters(tmp_path / "dl.jsonl")]
    assert reasons == ["unknown_field", "parse_error", "no_mapping", "payload_too_large"]
    assert value(c, "dcim_collector_messages_received_total", kind="status") == 1
    assert value(c, "dcim_collector_messages_received_total", kind="lineprotocol") == 4
    assert value(c, "dcim_collector_points_received_total") == 2
    assert value(c, "dcim_collector_messages_acked_total") == 5
    big = read_dead_letters(tmp_path / "dl.jsonl")[-1]
    # the entry keeps the first 4096 bytes and says how large the message really was
    assert len(big["text"]) == 4096 and "first 4096 bytes" in big["detail"]
    assert big["size"] == c.config.max_payload_bytes + 1 and big["topic"]
    c.close()


async def test_admission_refusals_name_their_line_in_the_dead_letter_file(tmp_path):
    # a payload whose lines 2, 4 and 5 are refused after validation (an unknown tag, a device tag
    # the topic contradicts, a series past the budget) and line 3 by validation: each entry names
    # its line, and the other lines go on
    c, sink = make(tmp_path, max_series=2)
    good = [f"gpu,site=dc1,rack=A01,node=n1,gpu={g} power_w=300.5 {NOW}" for g in (0, 1, 2)]
    payload = "\n".join([good[0],
                         f"gpu,site=dc1,rack=A01,node=n1,gpu=0,colour=red power_w=1 {NOW}",
                         f"gpu,site=dc1,node=n1 nope=1 {NOW}",
                         f"gpu,site=dc1,rack=A01,node=n2,gpu=0 power_w=1 {NOW}",
                         good[2],
                         good[1]])
    c.handle("dcim/dc1/A01/n1/gpu", payload.encode())
    await c.flush()
    assert sink.accepted == [good[0], good[2]]
    dead = read_dead_letters(tmp_path / "dl.jsonl")
    assert [(d["reason"], d["line"]) for d in dead] == [
        ("unknown_field", 3), ("unknown_tag", 2), ("topic_mismatch", 4), ("series_budget", 6)]
    c.close()


async def test_batches_flush_at_batch_size_and_ack_window(tmp_path):
    c, _ = make(tmp_path, batch_size=3, receive_maximum=10)
    for i in range(2):
        c.handle("t", LINE.encode(), AckToken(1, i, 1))
    assert not c._full.is_set()  # noqa: SLF001
    c.handle("t", LINE.encode(), AckToken(1, 3, 1))
    assert c._full.is_set() and not c._room.is_set()  # noqa: SLF001 - ingest waits for the flush
    await c.flush()
    assert c._room.is_set()  # noqa: SLF001
    for i in range(5):  # half the broker's window of unacked messages also triggers a flush
        c.handle("t/status", b"online", AckToken(1, i, 1))
    assert c._full.is_set()  # noqa: SLF001
    c.close()


class Doubler:
    """An observer that writes one alert record per batch, and sees what the sink will get."""

    def __init__(self):
        self.seen: list[Record] = []

    def observe(self, records):
        self.seen += records
        return [Record("alert", {"alertname": "T", "severity": "info"}, {"state": "firing", "value": 1.0},
                       records[-1].time_ns)]


class Broken:
    def observe(self, records):
        raise RuntimeError("bug")


async def test_observers_see_the_batch_and_their_records_go_with_it(tmp_path):
    obs = Doubler()
    c, sink = make(tmp_path, observers=[Broken(), obs])
    c.handle("t", LINE.encode())
    await c.flush()
    assert [r.fields for r in obs.seen] == [{"power_w": 300.5}]
    assert len(sink.calls) == 1  # one write: the data and the alert together
    assert [r.measurement for line in sink.calls[0] for r in decode(line)] == ["gpu", "alert"]
    assert value(c, "dcim_collector_observer_errors_total") == 1
    assert value(c, "dcim_collector_observer_points_total") == 1
    c.close()


def test_alerts_true_builds_the_live_observer(monkeypatch):
    cfg = CollectorConfig(alerts=True)
    assert make_observers(CollectorConfig(), None) == []
    monkeypatch.setitem(sys.modules, "dcim.alerts.live", None)  # not there (yet)
    with pytest.raises(ConfigError, match="alerts"):
        make_observers(cfg, cfg)
    fake = types.ModuleType("dcim.alerts.live")
    fake.make_observer = lambda site: ("observer for", site)
    monkeypatch.setitem(sys.modules, "dcim.alerts.live", fake)
    assert make_observers(cfg, "site") == [("observer for", "site")]


async def test_mapped_json_topics(tmp_path):
    c, sink = make(tmp_path, mappings=["bms_cdu"], max_past_s=10 * 365 * 86400.0)
    assert "BMS/v1/PUB/Value/CDU/+/+/+/+/+/+/+" in c.subscriptions()
    c.handle("BMS/v1/PUB/Value/CDU/LiquidFlow/dc1/hall1/A/cdu-a/loop-a/Secondary",
             b'{"value": 200.0, "timestamp": 1743620423000, "quality": 1}')
    c.handle("BMS/v1/PUB/Value/CDU/Status/dc1/hall1/A/cdu-a/loop-a/Pump1",
             b'{"value": 1, "timestamp": 1743620423000, "quality": 1}')
    c.handle("BMS/v1/PUB/Value/CDU/LiquidFlow/dc1/hall1/A/cdu-a/loop-a/Secondary", b"{broken")
    await c.flush()
    assert sink.accepted == ["coolant_loop,cdu=cdu-a,loop=loop-a,room=hall1,row=A,site=dc1 flow_lpm=200.0 "
                             "1743620423000000000"]
    assert [d["reason"] for d in read_dead_letters(tmp_path / "dl.jsonl")] == ["json_error"]
    assert c.ignored == 1
    c.close()


def test_shared_subscription_topics(tmp_path):
    c, _ = make(tmp_path, shared_group="collectors", topics=["dcim/#", "telegraf/#"], broker_stats=True)
    subs = c.subscriptions()
    assert subs[:2] == ["$share/collectors/dcim/#", "$share/collectors/telegraf/#"]
    # the broker's own counters are read by every collector itself, never through the shared group
    assert subs[2:] == list(SYS_TOPICS)
    c.close()
    c, _ = make(tmp_path / "b", broker_stats=False, topics=["dcim/#"])
    assert c.subscriptions() == ["dcim/#"]
    c.close()


def test_broker_counters_and_the_collector_itself_become_records(tmp_path):
    c, sink = make(tmp_path, self_report_s=0.001, broker_stats=True)
    for topic, value in (("$SYS/broker/publish/messages/dropped", b"17"), ("$SYS/broker/store/messages/count", b"5")):
        c.handle(topic, value, AckToken(1, 1, 1))
    lines, records, rejects, kind = c.decode("$SYS/broker/clients/connected", b"not a number", 1)
    assert kind == "status" and [r.reason for r in rejects] == ["parse_error"]
    import asyncio
    import time

    time.sleep(0.01)
    asyncio.run(c.flush())
    recs = decode("\n".join(sink.accepted))
    broker = {k: v for r in recs if r.measurement == "broker" for k, v in r.fields.items()}
    assert broker == {"publish_dropped_total": 17, "store_messages": 5}
    (me,) = [r for r in recs if r.measurement == "agent"]
    assert me.tags["component"] == "collector" and me.fields["dead_letters_total"] == 0
    assert me.fields["spool_used_pct"] == 0.0 and me.fields["spool_bytes"] == 0
    c.close()


SITE = """
site: t1
rooms: [{name: hall1, rows: [{name: A, racks: [{name: A01, nodes: 1}]}]}]
mqtt: {url: "mqtt://127.0.0.1:1883"}
collector:
  sink: influx
  influx: {url: "http://127.0.0.1:8086", api: v1, database: dcim}
  mappings: [cdu_gateway]
"""

ONLY = """
mqtt: {url: "mqtt://127.0.0.1:1883"}
collector:
  sink: embedded
  shared_group: collectors
"""


def test_check_config_takes_a_site_or_a_collector_file(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    out = check(site)
    assert out[0].endswith(": ok") and any("influxdb_v1 http://127.0.0.1:8086" in line for line in out)
    assert any("cdu-gateway" in line for line in out)
    only = tmp_path / "collector.yaml"
    only.write_text(ONLY)
    assert any("$share/collectors/dcim/#" in line for line in check(only))
    res = CliRunner().invoke(collector_cmd, ["--check-config", str(only)])
    assert res.exit_code == 0 and "ok" in res.output


def test_check_config_errors(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("collector:\n  batch_size: 0\n  nope: 1\n")
    with pytest.raises(ConfigError, match=r"(?s)bad.yaml.*collector.batch_size \(line 2\)"):
        check(bad)
    secret = tmp_path / "secret.yaml"
    secret.write_text("collector:\n  sink: influx\n  influx: {username: u, password: {env: NOT_SET_ANYWHERE}}\n")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        check(secret)
    missing_map = tmp_path / "map.yaml"
    missing_map.write_text("collector:\n  mappings: [no_such_mapping]\n")
    with pytest.raises(ConfigError, match="no_such_mapping"):
        check(missing_map)


def test_topic_filter_cover():
    from dcim.collector.app import covers

    assert covers("dcim/#", "dcim/+/x") and covers("#", "a/b") and covers("a/+/c", "a/b/c")
    assert not covers("dcim/+", "dcim/+/x") and not covers("dcim/a", "dcim/+") and not covers("a/b", "a/#")
    assert covers("a/+", "a/+") and not covers("a/+/c", "a/b")


def test_mapping_inside_a_configured_filter_is_not_subscribed_twice(tmp_path):
    c, _ = make(tmp_path, topics=["#"], mappings=["cdu_gateway"])
    assert c.subscriptions() == ["#"]
    c.close()
    c, _ = make(tmp_path / "b", topics=["#"], broker_stats=True)
    assert c.subscriptions() == ["#", *SYS_TOPICS]  # "#" does not cover $SYS topics (MQTT 4.7.2)
    c.close()


async def test_live_alert_engine_runs_as_an_observer(tmp_path):
    """With the real alerts.live: a simulator batch goes through it and out with its alert records."""
    import dcim.alerts.live as live
    from dcim.config import named_site
    from dcim.lineprotocol.encode import encode_record
    from dcim.simulators.hall import Hall

    site = named_site("h100-hall")
    obs = live.make_observer(site)
    c, sink = make(tmp_path, observers=[obs], max_past_s=10 * 365 * 86400.0)
    hall = Hall(site)
    for _ in range(3):
        hall.step(1.0)
        c.handle("dcim/sim", "\n".join(encode_record(r) for r in hall.records()).encode())
        await c.flush()
    assert value(c, "dcim_collector_observer_errors_total") == 0
    assert len(sink.accepted) >= 3 * 700
    c.close()  # closes the observer (its ticker thread) too


async def test_a_decoding_bug_costs_one_message_not_the_pipeline(tmp_path, monkeypatch):
    c, sink = make(tmp_path)
    real = c.validator.read

    def flaky(payload, now_ns, linenos=None):
        if b"boom" in payload:
            raise RuntimeError("boom")
        return real(payload, now_ns, linenos)

    monkeypatch.setattr(c.validator, "read", flaky)
    c.handle("t", b"boom")
    c.handle("t", LINE.encode())
    await c.flush()
    assert sink.accepted == [LINE]
    (dead,) = read_dead_letters(tmp_path / "dl.jsonl")
    assert dead["reason"] == "parse_error" and "RuntimeError" in dead["detail"]
    c.close()
