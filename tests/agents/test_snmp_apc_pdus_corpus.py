"""APC rack PDU profiles on real walks (LibreNMS's recorded walks in ../shared): exact records of
each APC PDU family, including what LibreNMS does not read (cPDU apparent power and energy)."""

from __future__ import annotations

import pytest

from dcim.agents.snmp import snmprec
from dcim.agents.snmp.profile import load_profiles, parse
from tests.agents import librenms_corpus as corpus

PROFILES = load_profiles()


def _records(stem: str, profile: str) -> dict:
    corpus.require_corpus()
    prof = PROFILES[profile]
    walk = snmprec.load_walk(corpus.CORPUS / "snmprec" / f"{stem}.snmprec", prof.columns())
    res = parse(prof, walk, {"pdu": "p"})
    return {(r.measurement, tuple(sorted((k, v) for k, v in r.tags.items() if k != "pdu"))): r.fields
            for r in res.records}, res.unsupported


def test_cpdu_unit_outlets_and_switch_states() -> None:
    recs, _ = _records("apc-cpdu", "apc_cpdu")
    # 258 W of 301 VA: the unit's own power factor column says 0.85
    assert recs[("pdu", ())] == {"power_w": 258.0, "apparent_power_va": 301.0, "peak_power_w": 657.0,
                                 "energy_j": 7918 * 360000.0, "power_factor": 0.85, "load_state": "normal"}
    assert recs[("pdu_outlet", (("outlet", "2"),))] == {"current_a": 0.28, "power_w": 57.0, "power_factor": 0.87,
                                                        "on": True}
    assert len([k for k in recs if k[0] == "pdu_outlet"]) == 40


def test_easy_epdu_phases() -> None:
    recs, _ = _records("apc-epdu_epdu1116s", "apc_epdu")
    assert recs[("pdu_phase", (("phase", "L1"),))] == {"voltage_v": 0.0, "current_a": 0.0, "power_w": 0.0,
                                                       "energy_j": 332241 * 3600.0}
    assert set(recs) == {("pdu_phase", (("phase", f"L{i}"),)) for i in (1, 2, 3)}


@pytest.mark.parametrize(("stem", "power_w", "phase_a", "banks"), [
    ("apc_ap8853", 1140.0, 4.9, {"1": 0.0, "2": 4.7}),   # phase current and banks only in the legacy table
    ("apc_ap7900b", 312.0, 2.7, {}),                     # rPDU2 power -1: rPDUIdentDevicePowerWatts
    ("apc_ap8959eu3", 270.0, 1.3, {}),
])
def test_rpdu2_with_legacy_fallback(stem: str, power_w: float, phase_a: float, banks: dict) -> None:
    recs, unsupported = _records(stem, "apc_rpdu2")
    assert recs[("pdu", ())]["power_w"] == power_w
    assert recs[("pdu_phase", (("phase", "L1"),))]["current_a"] == phase_a
    assert {k[1][0][1]: v["current_a"] for k, v in recs.items() if k[0] == "pdu_bank"} == banks
    assert "pdu.power_w" not in unsupported  # the fallback filled it
    assert all("None" not in dict(k[1]).values() for k in recs)
