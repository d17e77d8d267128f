"""Every vendor's simulated unit, recorded as a walk and served by a real snmpsim (another SNMP agent
than the simulator's own): auto-detected as the vendor table's profile and read to the same records."""

from __future__ import annotations

import pytest

from dcim.agents.snmp import snmprec
from dcim.agents.snmp.poller import Device, Poller
from dcim.agents.snmp.profile import load_profiles, parse
from dcim.config import named_site
from dcim.simulators.hall import Hall
from dcim.simulators.snmp import layouts
from dcim.simulators.snmp.snmprec import dumps
from dcim.vendors import PDU_VENDORS

pytestmark = pytest.mark.integration

PROFILES = load_profiles()


def _norm(records: list) -> list:
    return sorted((r.measurement, sorted(r.tags.items()), sorted(r.fields.items())) for r in records)


@pytest.fixture(scope="module")
def walks() -> dict[str, str]:
    """Vendor -> the .snmprec of a sample-hall PDU served in that vendor's layout, after 30 s of load."""
    site = named_site("h100-hall")
    hall = Hall(site, seed=11)
    for _ in range(30):
        hall.advance(1.0)
    state = hall.state.pdus[("A01", "pdu-a")]
    return {v: dumps(layouts.PDU_LAYOUTS[v](state, 123456)) for v in PDU_VENDORS}


@pytest.mark.parametrize("backend", ["fast", "pysnmp"])
async def test_each_vendor_served_by_snmpsim_is_detected_and_read(snmpsim_factory, walks, backend: str) -> None:
    sim = snmpsim_factory(records={v: text for v, text in walks.items()})
    devs = [Device(v, port=sim.port, community=v, backend=backend, tags={"pdu": "pdu-a"}) for v in walks]
    async with Poller(devs, PROFILES) as poller:
        polls = await poller.poll_all()
    for poll, vendor in zip(polls, walks, strict=True):
        assert poll.ok, (vendor, poll.error)
        profile = PDU_VENDORS[vendor].profile
        assert poll.profile == profile, (vendor, poll.profile)
        prof = PROFILES[profile]
        want = parse(prof, snmprec.walk_columns(snmprec.read(walks[vendor]), prof.columns()), {"pdu": "pdu-a"})
        assert _norm(poll.records) == _norm(want.records), vendor
        assert {r.measurement for r in poll.records} >= {"pdu", "pdu_phase", "pdu_outlet"}, vendor
