"""Alert engines partitioned by row through MQTT topic filters give exactly the alerts one engine
gives over the whole hall: every message reaches the one engine whose row filters match its topic
(paho's topic matching, the broker's rules), and each engine knows only its row's topology."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from paho.mqtt.client import topic_matches_sub

from dcim.agents.gpu.agent import gpu_topic
from dcim.agents.snmp.cli import device_topic
from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.alerts.replay import replay
from dcim.config import named_site
from dcim.record import Record
from dcim.simulators.hall import Hall
from dcim.app.pipeline import transition_key
from dcim.simulators.scenarios import parse_scenario
from dcim.sites import row_site, row_topic_filters

PREFIX = "dcim"
#: Something for the rules of every kind in every row: a failing row CDU (loop and inhibited GPU alerts),
#: a feed lost under load with a cart on one phase, a PDU gone silent (stale/absent), a lost GPU, an XID.
INCIDENTS = """\
name: every-row
description: incidents in each row of the pod at once
duration: 6m
faults:
  - {kind: pump_degradation, loop: loop-a, flow_fraction: 0.25, at: 30s, ramp: 30s, until: 4m, recover: 20s}
  - {kind: feed_loss, rack: B02, pdu: pdu-b, at: 30s, until: 5m}
  - {kind: extra_load, rack: B02, pdu: pdu-a, phase: L1, power_w: 9000, at: 1m, ramp: 20s}
  - {kind: not_answering, rack: C01, pdu: pdu-a, at: 1m, until: 4m, recover: 0s}
  - {kind: gpu_lost, node: B01-n03, gpu: 2, at: 2m, until: 5m, recover: 0s}
  - {kind: xid, node: C02-n01, gpu: 0, code: 13, at: 2m30s}
"""


def _topic(site: str, r: Record) -> str:
    """The topic the agent that reads ``r`` publishes it on (agents/gpu/agent.py, agents/snmp/cli.py)."""
    if r.measurement.startswith("gpu"):
        return gpu_topic(PREFIX, r.tags)
    device = r.tags.get("cdu") or f"{r.tags['rack']}-{r.tags['pdu']}"
    tags = {k: v for k, v in r.tags.items() if k in ("rack", "row")}
    return device_topic(PREFIX, site, SimpleNamespace(tags=tags, name=device))


def test_row_partitioned_engines_give_exactly_the_alerts_of_one_engine_over_the_hall():
    site = named_site("ai-factory-pod")
    hall = Hall(site, seed=3, scenario=parse_scenario(INCIDENTS))
    batches: list[list[tuple[str, Record]]] = []
    while hall.t_s < 360:
        hall.advance(5.0)
        batches.append([(_topic(site.site, r), r) for r in hall.records()])
    rows = [row.name for room in site.rooms for row in room.rows]
    filters = {row: row_topic_filters(site, row, PREFIX) for row in rows}
    # every message matches the filters of exactly one row
    owners = Counter(sum(any(topic_matches_sub(f, t) for f in filters[row]) for row in rows)
                     for batch in batches for t, _ in batch)
    assert owners == Counter({1: sum(len(b) for b in batches)})

    rules = list(load_rules([Path(DEFAULT_RULES_DIR)]))
    end_ns = hall.time_ns
    whole = replay(([r for _, r in b] for b in batches), Engine(rules, site=site, evaluation_interval_s=1.0),
                   end_ns=end_ns).transitions
    parts = []
    for row in rows:
        mine = ([r for t, r in b if any(topic_matches_sub(f, t) for f in filters[row])] for b in batches)
        engine = Engine(rules, site=row_site(site, {row}), evaluation_interval_s=1.0)
        parts += replay(mine, engine, end_ns=end_ns).transitions
    fired = {t.rule for t in whole if t.state == "firing"}
    assert {"LoopFlowLow", "GpuLost"} <= fired, fired  # the incidents did alert
    assert {t.labels.get("row") for t in whole if t.state == "firing"} >= set(rows)  # in every row
    assert sorted(map(transition_key, parts)) == sorted(map(transition_key, whole))


def test_an_engine_that_expects_the_topology_needs_only_its_rows(tmp_path):
    # A rule that pages for devices the site lists but that never reported (``expect: topology``) is why
    # each row engine gets ``row_site``: with the whole site it would page for every other row's PDUs.
    (tmp_path / "expect.yaml").write_text("""\
rules:
  - name: PduNeverReported
    kind: absent
    severity: warning
    measurement: pdu
    by: [rack, pdu]
    after: 60s
    expect: topology
    annotations:
      summary: "{{ $labels.pdu }} of {{ $labels.rack }} silent"
""")
    site = named_site("ai-factory-pod")
    hall = Hall(site, seed=3, scenario=parse_scenario(INCIDENTS))
    batches = []
    while hall.t_s < 180:
        hall.advance(5.0)
        batches.append([(_topic(site.site, r), r) for r in hall.records()])
    rules = list(load_rules([tmp_path]))
    whole = replay(([r for _, r in b] for b in batches), Engine(rules, site=site, evaluation_interval_s=1.0),
                   end_ns=hall.time_ns).transitions
    assert {(t.labels["rack"], t.labels["pdu"]) for t in whole if t.state == "firing"} == {("C01", "pdu-a")}

    def by_row(topology) -> list:
        out = []
        for row in ("A", "B", "C"):
            filters = row_topic_filters(site, row, PREFIX)
            mine = ([r for t, r in b if any(topic_matches_sub(f, t) for f in filters)] for b in batches)
            out += replay(mine, Engine(rules, site=topology(row), evaluation_interval_s=1.0),
                          end_ns=hall.time_ns).transitions
        return sorted(map(transition_key, out))

    assert by_row(lambda row: row_site(site, {row})) == sorted(map(transition_key, whole))
    assert by_row(lambda row: site) != sorted(map(transition_key, whole))  # each row engine would page the others


def test_a_row_site_keeps_only_its_racks_and_loops():
    site = named_site("ai-factory-pod")
    b = row_site(site, {"B"})
    assert [r.name for r in b.racks()] == ["B01", "B02", "B03", "B04"]
    assert [lp.name for lp in b.loops] == ["loop-b"]
    assert row_topic_filters(site, "C") == ["dcim/dc1/C/#", "dcim/dc1/C01/#", "dcim/dc1/C02/#"]
