"""Differential test against an independent SNMP stack: snmp_exporter (gosnmp) reads the same device raw."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.agents.snmp.poller import Device, Poller
from dcim.agents.snmp.profile import load_profiles

pytestmark = pytest.mark.integration

WALK = Path(__file__).parents[1] / "agents" / "snmp_walks" / "apc_ap8886_sim.snmprec"
PHASE_CURRENT = "1.3.6.1.4.1.318.1.1.26.6.3.1.5"  # rPDU2PhaseStatusCurrent, tenths of A
OUTLET_ENERGY = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.11"  # rPDU2OutletMeteredStatusEnergy, tenths of kWh


async def test_our_si_values_are_snmp_exporters_raw_values_scaled(snmpsim_factory, snmp_exporter_factory) -> None:
    sim = snmpsim_factory(records={"public": WALK.read_text()})
    metrics = [{"name": name, "oid": oid, "type": "gauge", "indexes": [{"labelname": "idx", "type": "gauge"}]}
               for name, oid in (("phase_current", PHASE_CURRENT), ("outlet_energy", OUTLET_ENERGY))]
    exporter = snmp_exporter_factory(config={"apc": {"walk": [PHASE_CURRENT, OUTLET_ENERGY], "metrics": metrics,
                                                     "version": 2, "auth": {"community": "public"}}})
    raw = {(name, labels["idx"]): value
           for name, labels, value in exporter.samples(f"127.0.0.1:{sim.port}", "apc")}
    async with Poller([Device("pdu-a", port=sim.port, profile="apc_rpdu2")], load_profiles()) as poller:
        (poll,) = await poller.poll_all()
    assert poll.ok
    phases = {r.tags["phase"]: r.fields["current_a"] for r in poll.records if r.measurement == "pdu_phase"}
    outlets = {r.tags["outlet"]: r.fields["energy_j"] for r in poll.records if r.measurement == "pdu_outlet"}
    assert len(phases) == 3 and len(outlets) == 24
    for i in (1, 2, 3):
        assert phases[f"L{i}"] == pytest.approx(raw[("phase_current", str(i))] / 10)  # exporter: raw tenths
    for n, energy_j in outlets.items():
        assert energy_j == pytest.approx(raw[("outlet_energy", n)] * 0.1 * 3.6e6)
