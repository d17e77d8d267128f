"""Physics sanity of the hall model: power bounds, thermal response, energy, electrical and coolant balances."""

from __future__ import annotations

import numpy as np
import pytest

from tests.simulators.helpers import hall_for, run_to, site
from dcim.simulators.hall import Hall
from dcim.simulators.throttle import SW_POWER_CAP


def test_power_stays_between_idle_and_limit_through_an_incident():
    hall = hall_for("pump-degradation")
    for _ in range(420):
        hall.advance(1.0)
        alive = ~hall.lost
        assert np.all(hall.power[alive] >= hall.idle_w[alive] - 1e-9)
        assert np.all(hall.power[alive] <= hall.power_limit[alive] + 1e-9)


def test_temperature_rises_with_power():
    # node A01-n01 idles, the rest of A01 trains: same coolant, different power
    hall = hall_for(text="""
name: t
description: one node idle
faults:
  - {kind: workload, node: A01-n01, profile: idle, at: 0s}
""")
    run_to(hall, 120)
    idle = hall.gpu_node == hall.node_of_name["A01-n01"]
    busy = hall.gpu_node == hall.node_of_name["A01-n02"]
    assert hall.power[idle].mean() < hall.power[busy].mean() - 300
    assert hall.temp[idle].max() < hall.temp[busy].min() - 10


def test_temperature_rises_with_supply_temperature():
    temps = {}
    for setpoint in (25.0, 35.0):
        cfg = site()
        for loop in cfg.loops:
            loop.setpoint_c = setpoint
        hall = Hall(cfg, seed=7)
        run_to(hall, 60)
        temps[setpoint] = hall.temp.mean()
    # the whole die-to-coolant chain moves with the supply: ~1 K per K
    assert temps[35.0] - temps[25.0] == pytest.approx(10.0, abs=1.5)


def test_energy_counters_are_monotonic_and_integrate_power():
    hall = hall_for("phase-overload")
    prev = (hall.gpu_energy.copy(), hall.outlet_energy.copy(), hall.phase_energy.copy(), hall.pdu_energy.copy())
    for _ in range(300):
        hall.advance(1.0)
        cur = (hall.gpu_energy, hall.outlet_energy, hall.phase_energy, hall.pdu_energy)
        for a, b in zip(prev, cur):
            assert np.all(b >= a)
        assert np.allclose(hall.gpu_energy - prev[0], hall.power * 1.0)
        assert np.allclose(hall.pdu_energy - prev[3], hall.pdu_power * 1.0)
        prev = tuple(c.copy() for c in cur)


def test_phase_currents_sum_their_outlets_and_current_is_p_over_v_pf():
    hall = hall_for("phase-overload")
    run_to(hall, 240)  # during the surge, with an unbalanced extra load on L1
    state = hall.state
    checked = 0
    for pdu in state.pdus.values():
        for ph in pdu.phases:
            outlets = [o for o in pdu.outlets if o.phase == ph.phase]
            assert sum(o.current_a for o in outlets) == pytest.approx(ph.current_a, rel=1e-3)
            assert sum(o.power_w for o in outlets) == pytest.approx(ph.power_w, rel=1e-9)
            assert ph.current_a == pytest.approx(ph.power_w / (ph.voltage_v * pdu.power_factor), rel=1e-9)
            checked += 1
        for o in pdu.outlets:
            v = pdu.phases[["L1", "L2", "L3"].index(o.phase)].voltage_v
            assert o.current_a == pytest.approx(o.power_w / (v * pdu.power_factor), rel=1e-2)
        assert pdu.power_w == pytest.approx(sum(ph.power_w for ph in pdu.phases))
    assert checked == 16 * 3


def test_outlets_follow_the_topology_one_phase_per_supply():
    state = hall_for().state
    pdu = state.pdus[("A01", "pdu-a")]
    by_num = {o.number: o for o in pdu.outlets}
    for n in range(1, 5):
        node = f"A01-n{n:02d}"
        assert [by_num[k].node for k in (n, n + 8, n + 16)] == [node] * 3
        assert [by_num[k].phase for k in (n, n + 8, n + 16)] == ["L1", "L2", "L3"]
    # nodes' power (GPUs + base) plus rack overhead is what the rack's PDUs deliver
    hall = hall_for()
    run_to(hall, 5)
    rack = hall.rack_of_name["A01"]
    nodes = hall.node_rack == rack
    pdus = hall.pdu_rack == rack
    assert hall.pdu_power[pdus].sum() == pytest.approx(hall.node_power[nodes].sum() + 600.0)


def test_return_temperature_is_supply_plus_heat_over_flow_cp_density():
    hall = hall_for()
    run_to(hall, 90)
    for li, loop in enumerate(hall.loop_cfgs):
        flow_l_s = hall.loop_flow[li] / 60.0
        expected = hall.loop_supply[li] + hall.loop_heat[li] / (flow_l_s * loop.fluid_density_kg_per_l * loop.fluid_cp_j_per_kg_k)
        # the return lags by a few seconds; the heat moves little between steps at steady load
        assert hall.loop_return[li] == pytest.approx(expected, abs=0.5)
        # heat to liquid: every GPU watt plus 70 % of the nodes' base power, nothing of the overhead
        gpus = hall.gpu_loop == li
        nodes = hall.node_loop == li
        base = hall.node_power[nodes].sum() - hall.power[gpus].sum()
        assert hall.loop_heat[li] == pytest.approx(hall.power[gpus].sum() + 0.7 * base)


def test_reported_heat_is_what_the_cdu_computes_from_its_sensors():
    hall = hall_for()
    run_to(hall, 30)
    loops = [r for r in hall.records() if r.measurement == "coolant_loop"]
    assert len(loops) == 2
    for r in loops:
        f = r.fields
        expected = f["flow_lpm"] / 60.0 * 1.02 * 3900.0 * (f["return_temp_c"] - f["supply_temp_c"])
        assert f["heat_w"] == pytest.approx(expected, rel=0.01, abs=200)
        assert f["diff_pressure_kpa"] == pytest.approx(f["supply_pressure_kpa"] - f["return_pressure_kpa"], abs=0.02)


def test_training_at_the_power_cap_sets_the_power_cap_bit_and_lowers_clocks():
    hall = hall_for()
    run_to(hall, 30)
    capped = (hall.mask & SW_POWER_CAP) != 0
    assert capped.sum() > hall.n_gpus // 2
    assert np.all(hall.power[capped] == pytest.approx(hall.power_limit[capped]))
    assert np.all(hall.sm_clock[capped] < hall.max_clock[capped])


def test_a_power_limit_set_on_the_state_object_is_honoured():
    hall = hall_for()
    gpu = hall.state.gpus[("A01-n01", 0)]
    gpu.power_limit_w = 400.0  # what a simulated nvmlDeviceSetPowerManagementLimit does
    state = hall.step(1.0)
    for _ in range(5):
        state = hall.step(1.0)
    g = state.gpus[("A01-n01", 0)]
    assert g.power_limit_w == 400.0
    assert g.power_w <= 400.0 + 1e-9
    assert g.clock_event_mask & SW_POWER_CAP


def test_state_objects_follow_the_arrays():
    hall = hall_for()
    state = hall.step(1.0)
    g = state.gpus[("B02-n03", 4)]
    i = hall.gpu_of[("B02-n03", 4)]
    assert g.power_w == hall.power[i] and g.temp_c == hall.temp[i] and g.energy_j == hall.gpu_energy[i]
    assert state.time_ns == hall.start_ns + 1_000_000_000
    loop = state.loops["loop-b"]
    assert loop.flow_lpm == pytest.approx(220.0, abs=3)
    assert state.pdus[("B02", "pdu-a")].answering


def test_answering_and_lost_set_by_hand_override_the_scenario_until_set_back():
    hall = hall_for()
    state = hall.state
    state.pdus[("A03", "pdu-a")].answering = False
    state.loops["loop-b"].answering = False
    state.gpus[("A01-n01", 3)].lost = True
    for _ in range(3):
        state = hall.step(1.0)
    assert not state.pdus[("A03", "pdu-a")].answering and not state.loops["loop-b"].answering
    assert state.gpus[("A01-n01", 3)].lost
    text = hall.lines()
    assert "rack=A03" in text and not any(ln.startswith("pdu,") and "pdu=pdu-a,rack=A03" in ln for ln in text.splitlines())
    state.pdus[("A03", "pdu-a")].answering = True
    state.gpus[("A01-n01", 3)].lost = False
    state = hall.step(1.0)
    state = hall.step(1.0)
    assert state.pdus[("A03", "pdu-a")].answering and not state.gpus[("A01-n01", 3)].lost
    assert not state.loops["loop-b"].answering


def test_nvlink_counters_grow_with_utilization_only():
    hall = hall_for(text="""
name: t
description: one node idle
faults:
  - {kind: workload, node: A01-n01, profile: idle, at: 0s}
""")
    before = hall.state
    tx0 = {k: g.nvlink_tx_bytes_total for k, g in before.gpus.items()}
    state = hall.step(10.0)
    busy = state.gpus[("A01-n02", 0)]
    idle = state.gpus[("A01-n01", 0)]
    assert busy.nvlink_tx_bytes_total - tx0[("A01-n02", 0)] > 10 * 100e9
    assert idle.nvlink_tx_bytes_total == tx0[("A01-n01", 0)]
    assert busy.nvlink_rx_bytes_total == busy.nvlink_tx_bytes_total


def test_a_hall_without_loops_and_with_single_phase_pdus_runs_air_cooled():
    from dcim.config import SiteConfig
    from dcim.lineprotocol.encode import encode

    site = SiteConfig.model_validate({
        "site": "s",
        "defaults": {"nodes_per_rack": 2, "pdus": [{"name": "p1", "phases": 1, "outlets": 8}]},
        "rooms": [{"name": "r", "rows": [{"name": "A", "racks": [{"name": "A01"}]}]}],
    })
    hall = Hall(site)
    for _ in range(30):
        state = hall.step(1.0)
    pdu = state.pdus[("A01", "p1")]
    assert [p.phase for p in pdu.phases] == ["L1"]
    assert pdu.phases[0].power_w == pytest.approx(pdu.power_w)
    # air: GPUs sit at ambient + 10 + R x P
    assert all(g.temp_c > site.simulator.ambient_c + 10 for g in state.gpus.values())
    assert hall.lines() == encode(hall.records())
    assert not [r for r in hall.records() if r.measurement == "coolant_loop"]
