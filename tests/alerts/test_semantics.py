"""Prometheus-matching semantics: `for` counts only time with data, `where` honours staleness,
left-open ranges, and severity settling peer alerts."""

from __future__ import annotations

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import parse_rule
from dcim.config import named_site
from dcim.record import Record

NS = 1_000_000_000
GPU0 = {"rack": "A01", "node": "A01-n01", "gpu": "0"}
MIN = 60


@pytest.fixture(scope="module")
def site():
    return named_site("h100-hall")


def rule(**kw):
    kw.setdefault("flap", None)
    if "for_" in kw:
        kw["for"] = kw.pop("for_")
    return parse_rule(kw)


def gpu(t_s: float, **fields) -> Record:
    return Record("gpu", dict(GPU0), fields, int(t_s * NS))


def run(engine: Engine, records, end_s: float):
    out = []
    for r in records:
        out += engine.process([r])
    return out + engine.advance(int(end_s * NS))


def states(ts, name=None):
    return [(t.time_ns // NS, t.previous, t.state) for t in ts if name is None or t.rule == name]


def test_a_gap_longer_than_the_lookback_resets_pending_so_for_never_counts_silence(site):
    # for: 10m; pending at 0, then no sample for 13 minutes: the series left the 5-minute lookback
    # at 5m, Prometheus dropped the pending alert there, and the fresh sample at 13m starts `for` over.
    r = rule(name="Hot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, for_="10m")
    e = Engine([r], site=site, evaluation_interval_s=60)
    recs = [gpu(0, temp_c=90.0)] + [gpu(s * MIN, temp_c=90.0) for s in range(13, 30)]
    ts = run(e, recs, 30 * MIN)
    assert states(ts) == [(0, "inactive", "pending"), (5 * MIN, "pending", "inactive"),
                          (13 * MIN, "inactive", "pending"), (23 * MIN, "pending", "firing")]


def test_a_gap_shorter_than_the_lookback_keeps_pending(site):
    r = rule(name="Hot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, for_="10m")
    e = Engine([r], site=site, evaluation_interval_s=60)
    recs = [gpu(0, temp_c=90.0)] + [gpu(s * MIN, temp_c=90.0) for s in range(4, 12)]
    ts = run(e, recs, 12 * MIN)
    assert states(ts) == [(0, "inactive", "pending"), (10 * MIN, "pending", "firing")]


def test_the_lookback_is_left_open_a_sample_exactly_stale_after_old_is_gone(site):
    r = rule(name="Hot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, for_="10m",
             stale_after="5m")
    e = Engine([r], site=site, evaluation_interval_s=60)
    ts = run(e, [gpu(0, temp_c=90.0)], 6 * MIN)
    # at 4m59 it would still count; at exactly 5m the sample is outside (b - 5m, b]
    assert states(ts) == [(0, "inactive", "pending"), (5 * MIN, "pending", "inactive")]


def test_a_firing_alert_holds_on_no_data(site):
    r = rule(name="Hot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, for_="1m")
    e = Engine([r], site=site, evaluation_interval_s=60)
    ts = run(e, [gpu(0, temp_c=90.0), gpu(MIN, temp_c=90.0)], 30 * MIN)
    assert states(ts) == [(0, "inactive", "pending"), (MIN, "pending", "firing")]
    assert [a.state for a in e.active()] == ["firing"]


def test_where_on_a_stale_field_is_no_data_not_true(site):
    # util < 5 where processes > 0; processes reported once at t=0, then the agent's read fails and
    # it omits the field: 10 minutes on, the old processes sample must not keep the condition true.
    r = rule(name="Idle", kind="threshold", measurement="gpu", field="util_pct", op="<", threshold=5,
             where={"processes": "> 0"}, for_="10m")
    e = Engine([r], site=site, evaluation_interval_s=60)
    recs = [gpu(0, util_pct=1.0, processes=2)] + [gpu(s * MIN, util_pct=1.0) for s in range(1, 31)]
    ts = run(e, recs, 30 * MIN)
    assert states(ts) == [(0, "inactive", "pending"), (5 * MIN, "pending", "inactive")]
    assert not [t for t in ts if t.state == "firing"]


def test_where_with_fresh_fields_fires(site):
    r = rule(name="Idle", kind="threshold", measurement="gpu", field="util_pct", op="<", threshold=5,
             where={"processes": "> 0"}, for_="10m")
    e = Engine([r], site=site, evaluation_interval_s=60)
    recs = [gpu(s * MIN, util_pct=1.0, processes=2) for s in range(0, 12)]
    ts = run(e, recs, 12 * MIN)
    assert states(ts) == [(0, "inactive", "pending"), (10 * MIN, "pending", "firing")]


def test_where_field_never_reported_is_no_data(site):
    r = rule(name="Idle", kind="threshold", measurement="gpu", field="util_pct", op="<", threshold=5,
             where={"processes": "> 0"})
    e = Engine([r], site=site, evaluation_interval_s=60)
    ts = run(e, [gpu(s * MIN, util_pct=1.0) for s in range(5)], 5 * MIN)
    assert ts == []


def test_rate_window_is_left_open(site):
    # samples at 0 and 60 s; a 60 s window at b=60 s is (0, 60]: one sample, no rate.
    r = rule(name="Fast", kind="rate", measurement="gpu", field="temp_c", window="1m", threshold=1)
    e = Engine([r], site=site, evaluation_interval_s=60)
    ts = run(e, [gpu(0, temp_c=50.0), gpu(MIN, temp_c=80.0)], MIN)
    assert ts == []
    e2 = Engine([r], site=site, evaluation_interval_s=60)
    ts2 = run(e2, [gpu(0, temp_c=50.0), gpu(30, temp_c=60.0), gpu(MIN, temp_c=80.0)], MIN)
    assert states(ts2) == [(MIN, "inactive", "firing")]


LOOP = {"loop": "loop-a"}


def loop(t_s: float, **fields) -> Record:
    return Record("coolant_loop", dict(LOOP), fields, int(t_s * NS))


def test_a_critical_peer_after_a_paged_warning_is_heard(site):
    warn = rule(name="LoopPressureLow", kind="threshold", severity="warning", measurement="coolant_loop",
                field="supply_pressure_kpa", op="<", threshold=200, inhibits=["Loop*"])
    crit = rule(name="LoopFlowLow", kind="threshold", severity="critical", measurement="coolant_loop",
                field="flow_lpm", op="<", threshold=100, inhibits=["Loop*"])
    e = Engine([warn, crit], site=site)
    recs = [loop(0, supply_pressure_kpa=150.0, flow_lpm=400.0), loop(5, supply_pressure_kpa=150.0, flow_lpm=50.0),
            loop(6, supply_pressure_kpa=150.0, flow_lpm=50.0)]
    ts = run(e, recs, 6)
    heard = [(t.rule, t.state) for t in ts if t.state == "firing" and not t.inhibited]
    assert heard == [("LoopPressureLow", "firing"), ("LoopFlowLow", "firing")]
    flip = [t for t in ts if t.rule == "LoopPressureLow" and t.inhibited]
    crit_fp = next(t.fingerprint for t in ts if t.rule == "LoopFlowLow")
    assert flip and flip[0].previous == "firing" and flip[0].inhibited_by == crit_fp


def test_equal_severity_peers_settle_by_age(site):
    a = rule(name="LoopPressureLow", kind="threshold", severity="critical", measurement="coolant_loop",
             field="supply_pressure_kpa", op="<", threshold=200, inhibits=["Loop*"])
    b = rule(name="LoopFlowLow", kind="threshold", severity="critical", measurement="coolant_loop",
             field="flow_lpm", op="<", threshold=100, inhibits=["Loop*"])
    e = Engine([a, b], site=site)
    recs = [loop(0, supply_pressure_kpa=150.0, flow_lpm=400.0), loop(5, supply_pressure_kpa=150.0, flow_lpm=50.0)]
    ts = run(e, recs, 6)
    heard = [t.rule for t in ts if t.state == "firing" and not t.inhibited]
    assert heard == ["LoopPressureLow"]


def test_unless_on_a_fresh_field_excludes_and_a_stale_one_does_not(site):
    # util < 5 unless processes == 0, as PromQL's `unless`: a stale processes sample excludes nothing
    r = rule(name="Idle", kind="threshold", measurement="gpu", field="util_pct", op="<", threshold=5,
             unless={"processes": "== 0"}, for_="2m")
    e = Engine([r], site=site, evaluation_interval_s=60)
    recs = [gpu(s * MIN, util_pct=1.0, processes=0) for s in range(0, 4)]  # idle and free: no alert
    recs += [gpu(s * MIN, util_pct=1.0) for s in range(4, 20)]  # processes omitted from 4 min on
    ts = run(e, recs, 20 * MIN)
    # the last processes=0 sample (3 min) leaves the lookback at 8 min: from then on nothing excludes
    assert states(ts) == [(8 * MIN, "inactive", "pending"), (10 * MIN, "pending", "firing")]


def test_unless_is_checked_at_load():
    with pytest.raises(Exception, match="unless.procs"):
        rule(name="Idle", kind="threshold", measurement="gpu", field="util_pct", op="<", threshold=5,
             unless={"procs": "== 0"})
