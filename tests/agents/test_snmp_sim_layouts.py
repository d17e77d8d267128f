"""Simulated layouts read back through the profiles give the state they were rendered from."""

from __future__ import annotations

import pytest

from dcim.agents.snmp import snmprec
from dcim.agents.snmp.profile import load_profiles, parse
from dcim.simulators.snmp.layouts import (
    apc_cooling,
    apc_rpdu2,
    cyberpower_epdu2,
    eaton_epdu,
    liebert_flexible,
    raritan_pdu2,
    sentry4,
)
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
    # the device's own tag fills the profiles' templates ("{pdu}{unit}{cord}"); it is left out of the keys
    res = parse(prof, snmprec.walk_columns(snmprec.read(dumps(rows)), prof.columns()), {"pdu": "pdu-x"})
    assert {r.tags.get("pdu", "pdu-x") for r in res.records} == {"pdu-x"}
    return {(r.measurement, tuple(sorted((k, v) for k, v in r.tags.items() if k != "pdu"))): r.fields
            for r in res.records}


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


@pytest.mark.parametrize(("layout", "profile"), [(sentry4, "sentry4"), (eaton_epdu, "eaton_epdu"),
                                                 (cyberpower_epdu2, "cyberpower_epdu2")])
def test_other_vendor_layouts_round_trip(layout, profile: str) -> None:
    state = _pdu()
    got = _read(layout(state), profile)
    dev = got[("pdu", ())]
    assert dev["power_w"] == pytest.approx(state.power_w, abs=0.5)
    assert dev["apparent_power_va"] == pytest.approx(state.apparent_power_va, abs=0.5)
    assert dev["energy_j"] == pytest.approx(state.energy_j, abs=0.05 * 3.6e6)
    for ph in state.phases:
        # Sentry4 reports a line (current only) and a phase ("L1-N": voltage, power...) under the same phase tag
        rows = [f for (m, tags), f in got.items() if m == "pdu_phase" and ("phase", ph.phase) in tags]
        merged = {k: v for f in rows for k, v in f.items()}
        assert merged["current_a"] == pytest.approx(ph.current_a, abs=0.05)
        assert merged["voltage_v"] == pytest.approx(ph.voltage_v, abs=0.05)
        assert merged["power_w"] == pytest.approx(ph.power_w, abs=0.5)
    for o in state.outlets:
        f = got[("pdu_outlet", (("outlet", str(o.number)),))]
        assert f["current_a"] == pytest.approx(o.current_a, abs=0.05)
        assert f["power_w"] == pytest.approx(o.power_w, abs=0.5)
        assert f["energy_j"] == pytest.approx(o.energy_j, abs=0.05 * 3.6e6)


@pytest.mark.parametrize(("layout", "profile"), [(eaton_epdu, "eaton_epdu"), (cyberpower_epdu2, "cyberpower_epdu2")])
def test_other_vendor_load_states(layout, profile: str) -> None:
    state = _pdu()
    got = _read(layout(state), profile)
    states = {ph.phase: got[("pdu_phase", (("phase", ph.phase),))]["load_state"] for ph in state.phases}
    assert states == {"L1": "low", "L2": "normal", "L3": "near_overload"}


def test_eaton_neutral_row_is_not_a_phase() -> None:
    state = _pdu()
    rows = {oid: v for oid, _, v in eaton_epdu(state)}
    # inputCurrentIndex 4, inputCurrentMeasType neutral(2): sum of three 120-degree currents 2, 30, 55 A
    assert rows["1.3.6.1.4.1.534.6.6.7.3.3.1.2.0.1.4"] == 2
    assert rows["1.3.6.1.4.1.534.6.6.7.3.3.1.4.0.1.4"] == pytest.approx(1000 * (2**2 + 30**2 + 55**2 - 60 - 1650 - 110) ** 0.5,
                                                                         abs=1)
    got = _read(eaton_epdu(state), "eaton_epdu")
    assert {tags for m, tags in got if m == "pdu_phase"} == {(("phase", f"L{i}"),) for i in (1, 2, 3)}
