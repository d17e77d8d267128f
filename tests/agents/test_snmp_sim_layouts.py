"""Simulated layouts read back through the profiles give the state they were rendered from."""

from __future__ import annotations

import pytest

from dcim.agents.snmp import snmprec
from dcim.agents.snmp.profile import load_profiles, parse
from dcim.simulators.snmp.layouts import apc_cooling, apc_rpdu2, liebert_flexible, raritan_pdu2
from dcim.simulators.snmp.snmprec import dumps
from dcim.simulators.state import LoopState, OutletState, PduState, PhaseState

PROFILES = load_profiles()


def _pdu() -> PduState:
    # phase currents chosen to land in each load state of a 63 A breaker (low < 5 %, near >= 80 %, over >= 95 %)
    currents = [2.0, 30.0, 55.0]
    phases = [PhaseState(f"L{i + 1}", 229.6, 63.0, a, a * 229.6 * 0.97, a * 229.6, 1.5e9 * (i + 1))
              for i, a in enumerate(currents)]
    outlets = [OutletState(n, "L1", None, 0.123 * n, 28.3 * n, 7.2e6 * n, on=n % 5 != 0) for n in range(1, 25)]
    power = sum(p.power_w for p in phases)
    return PduState("pdu-x", "A01", "A", "apc", 0.97, outlets, phases, power, power / 0.97, power * 1.2, 4.5e9,
                    26.3, 44.0)


def _read(rows, profile: str) -> dict:
    prof = PROFILES[profile]
    res = parse(prof, snmprec.walk_columns(snmprec.read(dumps(rows)), prof.columns()))
    return {(r.measurement, tuple(sorted((k, v) for k, v in r.tags.items()))): r.fields for r in res.records}


@pytest.mark.parametrize(("layout", "profile"), [(apc_rpdu2, "apc_rpdu2"), (raritan_pdu2, "raritan_pdu2")])
def test_pdu_layouts_round_trip(layout, profile: str) -> None:
    state = _pdu()
    got = _read(layout(state), profile)
    dev = got[("pdu", ())]
    assert dev["power_w"] == pytest.approx(state.power_w, abs=5.0)
    assert dev["energy_j"] == pytest.approx(state.energy_j, abs=0.05 * 3.6e6)
    states = {}
    for ph in state.phases:
        f = got[("pdu_phase", (("phase", ph.phase),))]
        assert f["current_a"] == pytest.approx(ph.current_a, abs=0.05)
        assert f["power_w"] == pytest.approx(ph.power_w, abs=5.0)
        states[ph.phase] = f["load_state"]
    assert states["L2"] == "normal" and states["L3"] == "near_overload"
    assert states["L1"] == "low"
    for o in state.outlets:
        f = got[("pdu_outlet", (("outlet", str(o.number)),))]
        assert f["current_a"] == pytest.approx(o.current_a, abs=0.05)
        assert f["energy_j"] == pytest.approx(o.energy_j, abs=0.05 * 3.6e6)
        assert f["on"] is o.on


def test_overload_state_reaches_the_records() -> None:
    state = _pdu()
    state.phases[2].current_a = 61.0
    for layout, profile in ((apc_rpdu2, "apc_rpdu2"), (raritan_pdu2, "raritan_pdu2")):
        got = _read(layout(state), profile)
        assert got[("pdu_phase", (("phase", "L3"),))]["load_state"] == "overload"


@pytest.mark.parametrize(("layout", "profile"), [(liebert_flexible, "liebert_flexible"), (apc_cooling, "apc_cooling")])
def test_cooling_layouts_round_trip(layout, profile: str) -> None:
    loop = LoopState("loop-a", "cdu-a", ["A01"], "liebert", 30.0, 30.37, 41.26, 212.4, 71.5, 312.0, 168.0,
                     heat_w=148_300.0, facility_supply_temp_c=21.7, leak=True)
    (fields,) = _read(layout(loop), profile).values()
    assert fields["supply_temp_c"] == pytest.approx(30.4)
    assert fields["return_temp_c"] == pytest.approx(41.3)
    assert fields["flow_lpm"] == pytest.approx(212.4)
    assert fields["supply_pressure_kpa"] == pytest.approx(312.0)
    assert fields["return_pressure_kpa"] == pytest.approx(168.0)
    assert fields["heat_w"] == pytest.approx(148_300.0)
    assert fields["facility_supply_temp_c"] == pytest.approx(21.7)
    assert fields["leak"] is True
