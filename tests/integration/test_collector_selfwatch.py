"""The pipeline watches itself: the collector reads Mosquitto's $SYS counters into broker records
and reports on itself, and the pipeline rules page on them (against a real Mosquitto)."""

from __future__ import annotations

import asyncio

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import load_rules
from dcim.collector.store import EmbeddedStore
from dcim.config import CollectorConfig
from dcim.record import Record
from tests.collector.helpers import running, uid, wait_for

pytestmark = pytest.mark.integration


async def test_broker_counters_and_self_reports_reach_the_store_and_the_rules(mosquitto_factory, tmp_path):
    broker = mosquitto_factory(extra_config="sys_interval 1")
    run = uid()
    store = tmp_path / "store"
    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", sink="embedded",
                          embedded_path=store, spool_path=tmp_path / "spool", dead_letter_path=tmp_path / "dead.jsonl",
                          linger_ms=50, self_report_s=0.5, broker_stats=True)

    def measured(name: str) -> list:
        return list(EmbeddedStore(store).query(name))

    try:
        async with running(cfg, broker.url):
            got = await wait_for(lambda: [r for r in measured("broker") if r.fields.get("clients_connected", 0) >= 1],
                                 what="a broker record from $SYS counting us as connected")
            await wait_for(lambda: [r for r in measured("agent") if r.tags.get("component") == "collector"],
                           what="the collector's report on itself")
            await asyncio.sleep(0.1)
    finally:
        broker.close()
    assert got[0].tags == {"host": "127.0.0.1"} and got[0].fields["clients_connected"] >= 1
    fields = {k for r in measured("broker") for k in r.fields}
    assert {"publish_dropped_total", "store_messages", "clients_connected"} <= fields
    me = [r for r in measured("agent") if r.tags.get("component") == "collector"][-1]
    assert me.fields["spool_used_pct"] == 0.0 and me.fields["dead_letters_total"] == 0

    # the shipped pipeline rules take these records as they are: a rise of the broker's drop counter pages
    engine = Engine(load_rules(["alerts/rules/pipeline.yaml"]))
    records = sorted(measured("broker") + measured("agent"), key=lambda r: r.time_ns)
    last = [r for r in records if r.measurement == "broker" and "publish_dropped_total" in r.fields][-1]
    later = Record("broker", dict(last.tags), {"publish_dropped_total": last.fields["publish_dropped_total"] + 50},
                   records[-1].time_ns + 10**9)
    transitions = engine.process([*records, later]) + engine.advance(later.time_ns + 10**9)
    fired = [t.rule for t in transitions if t.state == "firing"]
    assert fired == ["BrokerDroppingMessages"]
