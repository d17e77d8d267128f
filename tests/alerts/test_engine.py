"""Engine unit tests with hand-made records: every rule kind, for, hysteresis, flapping, stale data, inhibition."""

from __future__ import annotations

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.state import Transition, fingerprint
from dcim.alerts.rulefile import parse_rule
from dcim import schema
from dcim.config import named_site
from dcim.record import Record

NS = 1_000_000_000
GPU0 = {"rack": "A01", "node": "A01-n01", "gpu": "0"}


@pytest.fixture(scope="module")
def site():
    return named_site("h100-hall")


def rule(**kw):
    kw.setdefault("flap", None)
    if "for_" in kw:
        kw["for"] = kw.pop("for_")
    return parse_rule(kw)


def gpu(t_s: float, tags=GPU0, **fields) -> Record:
    return Record("gpu", dict(tags), fields, int(t_s * NS))


def feed(engine: Engine, records) -> list[Transition]:
    out = []
    for r in records:
        out += engine.process([r])
    return out


def states(ts: list[Transition], name: str | None = None) -> list[tuple[int, str, str]]:
    return [(t.time_ns // NS, t.previous, t.state) for t in ts if name is None or t.rule == name]


# --- threshold, for, hysteresis, keep_firing_for --------------------------------------------


def test_threshold_for_pending_then_firing_then_resolved(site):
    r = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, for_="3s",
             annotations={"summary": "GPU {{ $labels.gpu }} on {{ $labels.node }} at {{ $value }} C"})
    e = Engine([r], site=site)
    temps = [70, 86, 87, 88, 89, 90, 80, 80]
    ts = feed(e, [gpu(i, temp_c=float(v)) for i, v in enumerate(temps)]) + e.advance(10 * NS)
    assert states(ts) == [(1, "inactive", "pending"), (4, "pending", "firing"), (6, "firing", "resolved")]
    firing = ts[1]
    assert firing.summary == "GPU 0 on A01-n01 at 89 C"
    assert firing.starts_at_ns == 4 * NS
    assert firing.labels["loop"] == "loop-a" and firing.labels["site"] == "dc1"  # place from the topology


def test_pending_that_clears_before_for_never_fires(site):
    r = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, for_="5s")
    e = Engine([r], site=site)
    ts = feed(e, [gpu(i, temp_c=v) for i, v in enumerate([86.0, 86.0, 80.0, 80.0])]) + e.advance(10 * NS)
    assert states(ts) == [(0, "inactive", "pending"), (2, "pending", "inactive")]


def test_hysteresis_holds_between_thresholds(site):
    r = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, clear=80)
    e = Engine([r], site=site)
    temps = [86, 84, 82, 84, 81, 79, 84, 86]
    ts = feed(e, [gpu(i, temp_c=float(v)) for i, v in enumerate(temps)]) + e.advance(10 * NS)
    # 84 and 82 stay firing (above the clear threshold), 79 resolves, 84 does not re-fire, 86 does.
    assert states(ts) == [(0, "inactive", "firing"), (5, "firing", "resolved"), (7, "resolved", "firing")]


def test_keep_firing_for_boundary_like_prometheus(site):
    r = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85,
             keep_firing_for="5s")
    e = Engine([r], site=site)
    recs = [gpu(0, temp_c=90.0)] + [gpu(i, temp_c=70.0) for i in range(1, 12)]
    ts = feed(e, recs) + e.advance(12 * NS)
    # condition false from t=1: still firing at t=5 (4 s < 5 s), resolved at t=6
    assert states(ts) == [(0, "inactive", "firing"), (6, "firing", "resolved")]


def test_threshold_from_the_gpus_own_limit_with_topology_fallback(site):
    r = rule(name="GpuNearSlowdown", kind="threshold", measurement="gpu", field="temp_c",
             threshold_field="temp_slowdown_c", threshold_default="gpu_model.slowdown_temp_c",
             threshold_offset=-3, clear_delta=2)
    e = Engine([r], site=site)
    other = {"rack": "A01", "node": "A01-n02", "gpu": "1"}
    ts = feed(e, [
        gpu(0, temp_c=80.0, temp_slowdown_c=82.0),  # own limit 82 -> fires above 79
        gpu(0, other, temp_c=84.5),                   # no own limit: H100 default 87 -> 84 -> fires
        gpu(1, temp_c=78.0),                          # 78 > 77 (79 - 2): stays firing
        gpu(1, other, temp_c=83.0),                   # 83 <= 82? no, 83 > 82: stays
        gpu(2, temp_c=76.5),                          # below 77: resolves
        gpu(2, other, temp_c=81.0),                   # <= 82: resolves
    ]) + e.advance(3 * NS)
    assert [(t.labels["node"], t.state, t.threshold if hasattr(t, "threshold") else None) for t in ts] == [
        ("A01-n01", "firing", None), ("A01-n02", "firing", None),
        ("A01-n01", "resolved", None), ("A01-n02", "resolved", None)]


# --- flapping ---------------------------------------------------------------------------------


def _flapping_records():
    return [gpu(i, temp_c=90.0 if i % 4 < 2 else 70.0) for i in range(40)]


def test_flap_suppression_pages_fewer_times(site):
    plain = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85)
    damped = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85,
                  flap={"window": "20s", "max_fires": 2})
    ts_plain = feed(Engine([plain], site=site), _flapping_records())
    ts_damped = feed(Engine([damped], site=site), _flapping_records())
    fires_plain = sum(t.state == "firing" for t in ts_plain)
    fires_damped = sum(t.state == "firing" for t in ts_damped)
    assert fires_plain == 10
    assert fires_damped == 2  # the second firing starts the hold; the sensor never clears for 20 s


def test_flap_hold_ends_after_quiet_window(site):
    damped = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85,
                  flap={"window": "10s", "max_fires": 2})
    e = Engine([damped], site=site)
    recs = [gpu(i, temp_c=v) for i, v in enumerate([90.0, 70.0, 90.0, 70.0] + [70.0] * 15)]
    ts = feed(e, recs)
    assert states(ts) == [(0, "inactive", "firing"), (1, "firing", "resolved"), (2, "resolved", "firing"),
                          (13, "firing", "resolved")]


# --- stale data and absent --------------------------------------------------------------------


def test_silence_holds_a_firing_alert_and_absent_pages(site):
    hot = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85, stale_after="5s")
    gone = rule(name="GpuSilent", kind="absent", measurement="gpu", by=["node", "gpu"], after="10s")
    e = Engine([hot, gone], site=site)
    ts = feed(e, [gpu(i, temp_c=90.0) for i in range(3)])
    ts += e.advance(30 * NS)  # the exporter dies: no data for 28 s
    assert states(ts, "GpuHot") == [(0, "inactive", "firing")]  # no false resolve
    assert states(ts, "GpuSilent") == [(12, "inactive", "firing")]
    silent = [t for t in ts if t.rule == "GpuSilent"][0]
    assert silent.labels["node"] == "A01-n01" and silent.value == 10.0
    ts = e.process([gpu(31, temp_c=70.0)]) + e.advance(33 * NS)
    assert states(ts) == [(31, "firing", "resolved"), (31, "firing", "resolved")]
    assert {t.rule for t in ts} == {"GpuHot", "GpuSilent"}


def test_absent_expects_topology_devices_that_never_report(site):
    gone = rule(name="LoopSilent", kind="absent", measurement="coolant_loop", by=["loop"], after="5s",
                expect="topology")
    e = Engine([gone], site=site)
    ts = feed(e, [Record("coolant_loop", {"loop": "loop-a"}, {"flow_lpm": 200.0}, i * NS) for i in range(8)])
    assert [(t.labels["loop"], t.state) for t in ts] == [("loop-b", "firing")]


# --- rate, aggregate, ratio, imbalance, increase, state ---------------------------------------


def test_rate_of_change_per_minute(site):
    r = rule(name="GpuHeatingFast", kind="rate", measurement="gpu", field="temp_c", window="10s", per="1m",
             threshold=30)
    e = Engine([r], site=site)
    slow = [gpu(i, temp_c=60.0 + 0.25 * i) for i in range(20)]        # 15 °C/min
    ts = feed(e, slow)
    assert ts == []
    fast = [gpu(20 + i, temp_c=65.0 + 1.0 * i) for i in range(15)]    # 60 °C/min
    ts = feed(e, fast)
    assert states(ts)[0][2] == "firing"
    assert ts[0].value > 30


def _phase(t_s, rack, pdu, phase, feed_="A", **fields):
    return Record("pdu_phase", {"rack": rack, "pdu": pdu, "feed": feed_, "phase": phase}, fields, int(t_s * NS))


def test_aggregate_sum_by_rack_and_max_gpu_temp(site):
    power = rule(name="RackPowerHigh", kind="aggregate", measurement="pdu_phase", field="power_w", func="sum",
                 by=["rack"], threshold=20000, annotations={"summary": "rack {{ $labels.rack }} {{ $value }} W"})
    hottest = rule(name="RackHottestGpu", kind="aggregate", measurement="gpu", field="temp_c", func="max",
                   by=["rack"], threshold=75)
    e = Engine([power, hottest], site=site)
    recs = []
    for pdu, feed_ in (("pdu-a", "A"), ("pdu-b", "B")):
        for ph in ("L1", "L2", "L3"):
            recs.append(_phase(0, "A01", pdu, ph, feed_, power_w=3500.0))  # 6 x 3.5 kW = 21 kW
            recs.append(_phase(0, "A02", pdu, ph, feed_, power_w=1000.0))
    recs += [gpu(0, {"rack": "A02", "node": "A02-n01", "gpu": str(g)}, temp_c=70.0 + g) for g in range(8)]
    ts = feed(e, recs) + e.advance(1 * NS)
    got = sorted((t.rule, t.labels["rack"], t.value) for t in ts)
    assert got == [("RackHottestGpu", "A02", 77.0), ("RackPowerHigh", "A01", 21000.0)]
    assert [t.summary for t in ts if t.rule == "RackPowerHigh"] == ["rack A01 21000 W"]


def test_ratio_to_breaker_rating_nec_80_percent(site):
    r = rule(name="PhaseOver80", kind="ratio", measurement="pdu_phase", field="current_a", rating="pdu.breaker_a",
             threshold=80, clear=75)
    e = Engine([r], site=site)
    ts = feed(e, [_phase(0, "A01", "pdu-a", "L1", current_a=45.0),   # 71 % of 63 A
                  _phase(0, "A01", "pdu-a", "L2", current_a=55.0),   # 87 %
                  _phase(1, "A01", "pdu-a", "L2", current_a=49.0),   # 77.8 %: between clear and threshold
                  _phase(2, "A01", "pdu-a", "L2", current_a=46.0)])  # 73 %: clears
    ts += e.advance(3 * NS)
    assert states(ts) == [(0, "inactive", "firing"), (2, "firing", "resolved")]
    assert ts[0].labels["phase"] == "L2"
    assert ts[0].value == pytest.approx(100 * 55 / 63)


def test_phase_imbalance_percent_raritan_formula(site):
    r = rule(name="Imbalance", kind="imbalance", measurement="pdu_phase", field="current_a", by=["rack", "pdu"],
             threshold=20, min_mean=5)
    e = Engine([r], site=site)
    recs = [_phase(0, "A01", "pdu-a", ph, current_a=v) for ph, v in (("L1", 30.0), ("L2", 20.0), ("L3", 10.0))]
    recs += [_phase(0, "A01", "pdu-b", ph, "B", current_a=v) for ph, v in (("L1", 21.0), ("L2", 20.0),
                                                                          ("L3", 19.0))]
    recs += [_phase(0, "A02", "pdu-a", ph, current_a=v) for ph, v in (("L1", 3.0), ("L2", 1.0), ("L3", 1.0))]
    ts = feed(e, recs) + e.advance(1 * NS)
    assert [(t.labels["pdu"], t.labels["rack"], t.value) for t in ts] == [("pdu-a", "A01", pytest.approx(50.0))]


def test_counter_increase_and_reset(site):
    r = rule(name="GpuXid", kind="increase", measurement="gpu", field="xid_total", window="5s")
    e = Engine([r], site=site)
    counts = [3, 3, 4, 4, 4, 4, 4, 4, 4, 1, 1]  # +1 at t=2, restart of the agent at t=9 (1 new XID)
    ts = feed(e, [gpu(i, xid_total=c) for i, c in enumerate(counts)]) + e.advance(20 * NS)
    assert states(ts) == [(2, "inactive", "firing"), (7, "firing", "resolved"),
                          (9, "resolved", "firing"), (14, "firing", "resolved")]


def test_state_rules_bool_and_string(site):
    lost = rule(name="GpuLost", kind="state", measurement="gpu", field="lost", equals=True, severity="critical")
    near = rule(name="PduNearOverload", kind="state", measurement="pdu", field="load_state",
                equals=["near_overload", "overload"])
    e = Engine([lost, near], site=site)
    pdu = {"rack": "A01", "pdu": "pdu-a", "feed": "A"}
    ts = feed(e, [gpu(0, lost=False), Record("pdu", pdu, {"load_state": "normal"}, 0),
                  gpu(1, lost=True), Record("pdu", pdu, {"load_state": "near_overload"}, NS),
                  gpu(2, lost=True), Record("pdu", pdu, {"load_state": "normal"}, 2 * NS)])
    ts += e.advance(3 * NS)
    assert [(t.rule, t.time_ns // NS, t.state) for t in ts] == [
        ("GpuLost", 1, "firing"), ("PduNearOverload", 1, "firing"), ("PduNearOverload", 2, "resolved")]


def test_feed_redundancy_lost_when_both_feeds_exceed_one(site):
    r = rule(name="RedundancyLost", kind="redundancy", threshold=80)
    e = Engine([r], site=site)
    recs = []
    for ph, a, b_ in (("L1", 30.0, 25.0), ("L2", 20.0, 20.0), ("L3", 10.0, 10.0)):
        recs += [_phase(0, "A01", "pdu-a", ph, "A", current_a=a), _phase(0, "A01", "pdu-b", ph, "B", current_a=b_)]
    # A02 has only its A feed reporting: no redundancy to judge
    recs.append(_phase(0, "A02", "pdu-a", "L1", "A", current_a=60.0))
    ts = feed(e, recs) + e.advance(1 * NS)
    assert [(t.labels["rack"], t.labels["phase"], round(t.value, 1)) for t in ts] == [
        ("A01", "L1", round(100 * 55 / 63, 1))]


def _loop(t_s, loop, flow, sup, ret):
    return Record("coolant_loop", {"loop": loop, "cdu": "cdu-" + loop[-1]},
                  {"flow_lpm": flow, "supply_temp_c": sup, "return_temp_c": ret}, int(t_s * NS))


def test_energy_balance_flags_a_stuck_flow_meter(site):
    r = rule(name="EnergyBalance", kind="energy_balance", threshold=15, clear=10, for_="2s")
    e = Engine([r], site=site)
    loop = next(lp for lp in site.loops if lp.name == "loop-a")
    power_w = 4 * 2 * 10_000.0  # 4 racks x 2 PDUs x 10 kW
    k = loop.fluid_density_kg_per_l * loop.fluid_cp_j_per_kg_k / 60.0
    dt_k = power_w / (200.0 * k)  # the ΔT that 200 L/min needs to carry 80 kW

    def pdus(t):
        return [Record("pdu", {"rack": f"A0{i}", "pdu": p}, {"power_w": 10_000.0}, int(t * NS))
                for i in range(1, 5) for p in ("pdu-a", "pdu-b")]

    recs = []
    for t in range(5):
        recs += pdus(t) + [_loop(t, "loop-a", 200.0, 30.0, 30.0 + dt_k)]
    for t in range(5, 12):  # the flow meter sticks at 120 L/min while the heat is unchanged
        recs += pdus(t) + [_loop(t, "loop-a", 120.0, 30.0, 30.0 + dt_k)]
    ts = feed(e, recs) + e.advance(12 * NS)
    assert states(ts) == [(5, "inactive", "pending"), (7, "pending", "firing")]
    assert ts[-1].value == pytest.approx(-40.0)
    assert ts[-1].labels == {"site": "dc1", "room": "hall1", "row": "A", "loop": "loop-a", "cdu": "cdu-a"}


# --- inhibition -------------------------------------------------------------------------------


def _pump_rules(grace="0s"):
    flow = rule(name="CoolantFlowLow", kind="threshold", measurement="coolant_loop", field="flow_lpm", op="<",
                threshold=150, for_="2s", severity="critical", inhibits=["Gpu*"], inhibit_grace=grace)
    hot = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85)
    return [flow, hot]


def test_loop_alert_inhibits_gpu_alerts_beneath_it_only(site):
    e = Engine(_pump_rules(), site=site)
    gpu_a = {"rack": "A01", "node": "A01-n01", "gpu": "0"}
    gpu_b = {"rack": "B01", "node": "B01-n01", "gpu": "0"}
    recs = []
    for t in range(8):
        recs.append(_loop(t, "loop-a", 220.0 if t < 2 else 50.0, 30.0, 40.0))
        hot = t >= 5
        recs.append(gpu(t, gpu_a, temp_c=90.0 if hot else 60.0))
        recs.append(gpu(t, gpu_b, temp_c=90.0 if hot else 60.0))
    ts = feed(e, recs) + e.advance(8 * NS)
    flow = [t for t in ts if t.rule == "CoolantFlowLow"]
    assert states(flow) == [(2, "inactive", "pending"), (4, "pending", "firing")]
    gpus = {t.labels["rack"]: t for t in ts if t.rule == "GpuHot"}
    assert gpus["A01"].inhibited and gpus["A01"].inhibited_by == flow[0].fingerprint
    assert not gpus["B01"].inhibited and gpus["B01"].inhibited_by is None
    active = {(a.rule, a.labels.get("rack")): a.inhibited for a in e.active()}
    assert active == {("CoolantFlowLow", None): False, ("GpuHot", "A01"): True, ("GpuHot", "B01"): False}


def test_pending_source_holds_and_recovery_lifts_inhibition(site):
    e = Engine(_pump_rules(), site=site)
    recs = []
    for t in range(12):
        flow = 50.0 if 1 <= t < 8 else 220.0
        recs.append(_loop(t, "loop-a", flow, 30.0, 40.0))
        recs.append(gpu(t, temp_c=90.0 if t >= 2 else 60.0))
    ts = feed(e, recs) + e.advance(12 * NS)
    g = [(t.time_ns // NS, t.previous, t.state, t.inhibited) for t in ts if t.rule == "GpuHot"]
    # fires at t=2 while the flow alert is still pending: held as inhibited; flow resolves at t=8,
    # the GPU is still hot, so the inhibition lifts with a firing -> firing transition.
    assert g == [(2, "inactive", "firing", True), (8, "firing", "firing", False)]


def test_inhibition_outlives_its_source_by_the_grace(site):
    e = Engine(_pump_rules(grace="3s"), site=site)
    recs = []
    for t in range(16):
        recs.append(_loop(t, "loop-a", 50.0 if 1 <= t < 8 else 220.0, 30.0, 40.0))
        recs.append(gpu(t, temp_c=90.0 if 2 <= t < 10 else 60.0))  # cools down 2 s after the pump recovers
    ts = feed(e, recs) + e.advance(16 * NS)
    g = [(t.time_ns // NS, t.previous, t.state, t.inhibited) for t in ts if t.rule == "GpuHot"]
    assert g == [(2, "inactive", "firing", True), (10, "firing", "resolved", True)]  # never paged


def test_peer_alerts_the_first_one_explains_the_later(site):
    peers = ["Loop*"]
    flow = rule(name="LoopFlowLow", kind="threshold", measurement="coolant_loop", field="flow_lpm", op="<",
                threshold=150, inhibits=peers)
    dt = rule(name="LoopDeltaTHigh", kind="threshold", measurement="coolant_loop", field="return_temp_c",
              minus="supply_temp_c", threshold=12, inhibits=peers)
    e = Engine([dt, flow], site=site)
    recs = [_loop(t, "loop-a", 100.0 if t >= 2 else 220.0, 30.0, 45.0 if t >= 4 else 38.0) for t in range(8)]
    ts = feed(e, recs) + e.advance(8 * NS)
    assert [(t.rule, t.time_ns // NS, t.state, t.inhibited) for t in ts] == [
        ("LoopFlowLow", 2, "firing", False), ("LoopDeltaTHigh", 4, "firing", True)]
    assert ts[1].value == pytest.approx(15.0)


# --- engine properties ------------------------------------------------------------------------


def _mixed_records():
    recs = []
    for t in range(30):
        recs.append(_loop(t + 0.3, "loop-a", 220.0 if t < 10 or t > 20 else 40.0, 30.0, 40.0))
        for g in range(3):
            recs.append(gpu(t + 0.1 * g, {"rack": "A01", "node": "A01-n01", "gpu": str(g)},
                            temp_c=60.0 + (30.0 if 12 <= t <= 24 else 0.0) + g))
    return sorted(recs, key=lambda r: r.time_ns)  # batching changes nothing for a time-ordered stream


def test_deterministic_and_independent_of_batching(site):
    one = Engine(_pump_rules(), site=site)
    a = one.process(_mixed_records()) + one.advance(40 * NS)
    two = Engine(_pump_rules(), site=site)
    b = feed(two, _mixed_records()) + two.advance(40 * NS)
    three = Engine(_pump_rules(), site=site)
    recs = _mixed_records()
    c = three.process(recs[:37]) + three.process(recs[37:61]) + three.process(recs[61:]) + three.advance(40 * NS)
    assert a and a == b == c


def test_evaluation_only_at_interval_boundaries(site):
    r = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85)
    e = Engine([r], site=site, evaluation_interval_s=10)
    assert e.process([gpu(1, temp_c=90.0), gpu(5, temp_c=90.0)]) == []  # boundary 10 not crossed yet
    ts = e.process([gpu(10.5, temp_c=70.0)])
    assert states(ts) == [(10, "inactive", "firing")]  # sample at 10.5 is not part of the t=10 evaluation
    assert states(e.advance(20 * NS)) == [(20, "firing", "resolved")]


def test_transition_record_fits_the_alert_schema(site):
    r = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85,
             labels={"team": "facilities"})
    e = Engine([r], site=site)
    ts = feed(e, [gpu(0, temp_c=90.0)]) + e.advance(1 * NS)
    rec = ts[0].to_record()
    assert rec.measurement == "alert"
    assert schema.validate(rec, allow_extra_tags=False) == []
    assert rec.fields["state"] == "firing" and rec.fields["value"] == 90.0
    assert rec.fields["fingerprint"] == fingerprint("GpuHot", ts[0].labels)
    assert ts[0].labels["team"] == "facilities"


def test_long_gaps_are_skipped_without_changing_a_transition(site):
    rules = _pump_rules(grace="30s") + [
        rule(name="GpuSilent", kind="absent", measurement="gpu", by=["node", "gpu"], after="20s", for_="5s"),
        rule(name="GpuHotKept", kind="threshold", measurement="gpu", field="temp_c", threshold=85,
             keep_firing_for="40s", stale_after="30s", flap={"window": "1m", "max_fires": 2})]
    recs = []
    for start in (0, 4000, 9000):  # two gaps of over an hour
        for t in range(start, start + 60, 2):
            recs.append(_loop(t, "loop-a", 50.0 if t % 40 < 20 else 220.0, 30.0, 40.0))
            recs.append(gpu(t + 1, temp_c=90.0 if t % 30 < 12 else 70.0))
    slow, fast = Engine(rules, site=site), Engine(rules, site=site)
    slow.skip_quiet = False
    a = slow.process(recs) + slow.advance(20_000 * NS)
    b = fast.process(recs) + fast.advance(20_000 * NS)
    assert len(a) > 20 and a == b
    assert {t.rule for t in a} == {"CoolantFlowLow", "GpuHot", "GpuSilent", "GpuHotKept"}


def test_rack_alert_inhibits_node_and_gpu_alerts_in_that_rack_only(site):
    rack_hot = rule(name="RackInletHot", kind="aggregate", measurement="gpu", field="temp_c", func="avg",
                    by=["rack"], threshold=80, inhibits=["Gpu*", "Node*"])
    gpu_hot = rule(name="GpuHot", kind="threshold", measurement="gpu", field="temp_c", threshold=85)
    e = Engine([rack_hot, gpu_hot], site=site)
    recs = []
    for g in range(4):
        recs.append(gpu(0, {"node": "A01-n01", "gpu": str(g)}, temp_c=88.0))   # rack A01 all hot: avg 88
        recs.append(gpu(0, {"node": "A02-n01", "gpu": str(g)}, temp_c=90.0 if g == 0 else 60.0))  # one hot GPU
    ts = feed(e, recs) + e.advance(1 * NS)
    rack = [t for t in ts if t.rule == "RackInletHot"]
    assert [(t.labels["rack"], t.labels["loop"]) for t in rack] == [("A01", "loop-a")]
    marks = {(t.labels["node"], t.labels["gpu"]): t.inhibited_by for t in ts if t.rule == "GpuHot"}
    assert marks == {("A01-n01", str(g)): rack[0].fingerprint for g in range(4)} | {("A02-n01", "0"): None}
