"""Each shipped scenario does what its description says an operator should see."""

from __future__ import annotations

import numpy as np
import pytest

from dcim.config import named_site
from dcim.simulators.throttle import HW_SLOWDOWN, SW_THERMAL
from dcim.simulators.scenarios import list_scenarios, load_scenario, scenario_names
from tests.simulators.helpers import hall_for, run_to

THERMAL = SW_THERMAL | HW_SLOWDOWN


def _records(hall, measurement, **tags):
    return [r for r in hall.records([measurement]) if all(r.tags.get(k) == v for k, v in tags.items())]


def test_every_shipped_scenario_loads_fits_the_default_site_and_ends_in_time():
    names = scenario_names()
    assert {"normal", "pump-degradation", "setpoint-drift", "phase-overload", "gpu-lost", "stuck-sensor",
            "noisy-sensor", "device-not-answering", "leak"} <= set(names)
    site = named_site("h100-hall")
    for name, desc in list_scenarios():
        sc = load_scenario(name)
        sc.check_site(site)
        assert len(desc) > 60, f"{name}: the description should say what an operator sees"
        assert sc.duration <= 600
        for f in sc.faults:
            end = f.end_s()
            assert f.at < sc.duration
            if end is not None:
                assert end < sc.duration, f"{name}: a fault that recovers must do so before the end"


def test_normal_has_no_events_no_thermal_throttling_and_no_overload():
    hall = hall_for("normal")
    events = hall.take_events()
    for _ in range(300):
        hall.advance(1.0)
        events += hall.take_events()
        assert not np.any(hall.mask & THERMAL)
    assert events == []
    assert all(r.fields["load_state"] == "normal" for r in _records(hall, "pdu_phase"))


def test_pump_degradation_heats_row_a_throttles_and_recovers():
    hall = hall_for("pump-degradation")
    row_a = hall.gpu_loop == hall.loop_of_name["loop-a"]
    run_to(hall, 50)
    before_temp = hall.temp[row_a].max()
    before = _records(hall, "coolant_loop", loop="loop-a")[0].fields
    assert not np.any(hall.mask & THERMAL)
    run_to(hall, 240)
    during = _records(hall, "coolant_loop", loop="loop-a")[0].fields
    assert during["flow_lpm"] < 0.35 * before["flow_lpm"]
    assert during["diff_pressure_kpa"] < 0.2 * before["diff_pressure_kpa"]
    assert during["return_temp_c"] > before["return_temp_c"] + 8
    assert hall.temp[row_a].max() > before_temp + 15
    thermal = (hall.mask & SW_THERMAL) != 0
    assert thermal[row_a].sum() > 0.5 * row_a.sum()
    assert not thermal[~row_a].any()
    gpu = _records(hall, "gpu", node="A01-n01", gpu="0")[0].fields
    assert gpu["throttle_sw_thermal"] is True and gpu["clock_event_mask"] & SW_THERMAL
    assert gpu["sm_clock_mhz"] < 1900
    run_to(hall, 600)
    after = _records(hall, "coolant_loop", loop="loop-a")[0].fields
    assert after["flow_lpm"] == pytest.approx(before["flow_lpm"], rel=0.03)
    assert not np.any(hall.mask & THERMAL)
    assert hall.temp[row_a].max() < before_temp + 2


def test_setpoint_drift_moves_supply_away_from_an_unchanged_setpoint_then_back():
    hall = hall_for("setpoint-drift")
    row_b = hall.gpu_loop == hall.loop_of_name["loop-b"]
    run_to(hall, 55)
    t0 = hall.temp[row_b].mean()
    run_to(hall, 360)
    f = _records(hall, "coolant_loop", loop="loop-b")[0].fields
    assert f["setpoint_c"] == 30.0
    assert f["supply_temp_c"] > 36.0
    assert hall.temp[row_b].mean() > t0 + 4
    other = _records(hall, "coolant_loop", loop="loop-a")[0].fields
    assert other["supply_temp_c"] == pytest.approx(30.0, abs=0.5)
    run_to(hall, 600)
    f = _records(hall, "coolant_loop", loop="loop-b")[0].fields
    assert f["supply_temp_c"] == pytest.approx(30.0, abs=1.0)


def test_phase_overload_moves_a02_onto_pdu_a_and_overloads_l1():
    hall = hall_for("phase-overload")
    run_to(hall, 20)
    assert {r.fields["load_state"] for r in _records(hall, "pdu_phase", rack="A02")} == {"normal"}
    run_to(hall, 270)
    b = _records(hall, "pdu", rack="A02", pdu="pdu-b")[0].fields
    assert b["power_w"] == 0.0
    phases = {r.tags["phase"]: r.fields for r in _records(hall, "pdu_phase", rack="A02", pdu="pdu-a")}
    assert phases["L1"]["current_a"] > 0.8 * 63
    assert phases["L1"]["load_state"] in ("near_overload", "overload")
    assert phases["L1"]["current_a"] > phases["L2"]["current_a"] + 10  # unbalanced
    run_to(hall, 600)
    phases = _records(hall, "pdu_phase", rack="A02")
    assert {r.fields["load_state"] for r in phases} == {"normal"}
    assert _records(hall, "pdu", rack="A02", pdu="pdu-b")[0].fields["power_w"] > 5000


def test_gpu_lost_raises_xid_79_writes_lost_only_crashes_the_node_job_and_returns():
    hall = hall_for("gpu-lost")
    run_to(hall, 119)
    gpu = hall.state.gpus[("A03-n02", 3)]
    assert not gpu.lost and gpu.xid_events == []
    state = hall.step(1.0)
    assert gpu.lost is True
    assert [code for code, _ in gpu.xid_events] == [79]
    assert gpu.xid_events[0][1] == pytest.approx(hall.start_ns / 1e9 + 120)
    assert any("XID 79" in text for _, text in state.events)
    run_to(hall, 150)
    recs = _records(hall, "gpu", node="A03-n02", gpu="3")
    assert len(recs) == 1 and recs[0].fields == {"lost": True}
    xid = _records(hall, "gpu_xid", node="A03-n02", gpu="3")
    assert [(r.tags["xid"], r.fields["count_total"]) for r in xid] == [("79", 1)]
    siblings = [r.fields for r in _records(hall, "gpu", node="A03-n02") if r.tags["gpu"] != "3"]
    assert len(siblings) == 7 and all(f["util_pct"] < 5 for f in siblings)
    run_to(hall, 480)
    assert not hall.state.gpus[("A03-n02", 3)].lost
    recs = _records(hall, "gpu", node="A03-n02", gpu="3")
    assert recs[0].fields["lost"] is False and recs[0].fields["util_pct"] > 50


def test_stuck_flow_meter_freezes_while_pump_speed_changes_and_heat_diverges():
    hall = hall_for("stuck-sensor")
    flows, pumps = [], []
    run_to(hall, 60)
    for _ in range(300):
        hall.advance(1.0)
        f = _records(hall, "coolant_loop", loop="loop-a")[0].fields
        flows.append(f["flow_lpm"])
        pumps.append(f["pump_speed_pct"])
    assert len(set(flows)) == 1
    assert max(pumps) == pytest.approx(90.0) and min(pumps) == pytest.approx(70.0)
    f = _records(hall, "coolant_loop", loop="loop-a")[0].fields
    li = hall.loop_of_name["loop-a"]
    assert hall.loop_flow[li] > flows[0] * 1.2  # the real flow went up
    assert f["heat_w"] < 0.85 * hall.loop_heat[li]  # heat from the stuck meter undercounts
    run_to(hall, 560)
    f = _records(hall, "coolant_loop", loop="loop-a")[0].fields
    assert f["flow_lpm"] == pytest.approx(hall.loop_flow[li], rel=0.02)


def test_noisy_sensor_scatters_one_reading_only():
    # the same seed without the fault: the physics (and every other sensor) must read the same
    noisy, clean = hall_for("noisy-sensor"), hall_for("normal")
    quiet, scattered = [], []
    for t in range(1, 480):
        noisy.advance(1.0)
        clean.advance(1.0)
        a = _records(noisy, "coolant_loop", loop="loop-b")[0].fields
        b = _records(clean, "coolant_loop", loop="loop-b")[0].fields
        assert a["return_temp_c"] == b["return_temp_c"] and a["flow_lpm"] == b["flow_lpm"]
        (scattered if 120 <= t < 420 else quiet).append(a["supply_temp_c"] - b["supply_temp_c"])
    assert max(abs(d) for d in quiet) == 0.0
    assert np.std(scattered) > 2.0
    assert abs(np.mean(scattered)) < 0.6
    assert np.array_equal(noisy.temp, clean.temp)


def test_devices_that_stop_answering_lose_their_records_then_return():
    hall = hall_for("device-not-answering")
    run_to(hall, 170)
    assert not hall.state.pdus[("B02", "pdu-b")].answering
    for m in ("pdu", "pdu_phase", "pdu_outlet", "env"):
        assert _records(hall, m, rack="B02", pdu="pdu-b") == []
        assert _records(hall, m, rack="B02", pdu="pdu-a") != []
    assert _records(hall, "coolant_loop", loop="loop-a") != []
    run_to(hall, 240)
    assert _records(hall, "coolant_loop", loop="loop-a") == []
    assert not hall.state.loops["loop-a"].answering
    run_to(hall, 400)
    assert hall.state.pdus[("B02", "pdu-b")].answering and hall.state.loops["loop-a"].answering
    assert len(_records(hall, "pdu_outlet", rack="B02", pdu="pdu-b")) == 24
    assert _records(hall, "coolant_loop", loop="loop-a") != []


def test_leak_trips_the_detector_and_sags_pressure_until_isolated():
    hall = hall_for("leak")
    run_to(hall, 170)
    before = _records(hall, "coolant_loop", loop="loop-b")[0].fields
    assert before["leak"] is False
    run_to(hall, 320)
    during = _records(hall, "coolant_loop", loop="loop-b")[0].fields
    assert during["leak"] is True
    assert during["return_pressure_kpa"] < before["return_pressure_kpa"] - 20
    assert _records(hall, "coolant_loop", loop="loop-a")[0].fields["leak"] is False
    run_to(hall, 530)
    after = _records(hall, "coolant_loop", loop="loop-b")[0].fields
    assert after["leak"] is False
    assert after["return_pressure_kpa"] == pytest.approx(before["return_pressure_kpa"], abs=3)


def test_ecc_errors_count_up_and_raise_xids():
    hall = hall_for("ecc-errors")
    run_to(hall, 180)
    f = _records(hall, "gpu", node="B01-n03", gpu="2")[0].fields
    assert 30 <= f["ecc_sbe_volatile_total"] <= 50  # 20 per minute for 2 minutes
    assert f["ecc_dbe_volatile_total"] == 0
    run_to(hall, 420)
    f = _records(hall, "gpu", node="B01-n03", gpu="2")[0].fields
    assert f["ecc_dbe_volatile_total"] == 1
    xids = {(r.tags["node"], r.tags["gpu"], r.tags["xid"]) for r in _records(hall, "gpu_xid")}
    assert xids == {("B01-n03", "2", "48"), ("B01-n01", "0", "13")}
    assert [c for c, _ in hall.state.gpus[("B01-n01", 0)].xid_events] == [13]
    other = _records(hall, "gpu", node="B01-n03", gpu="3")[0].fields
    assert other["ecc_sbe_volatile_total"] == 0
