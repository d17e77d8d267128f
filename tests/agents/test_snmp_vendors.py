"""Every vendor a site may name: the SNMP agent auto-detects the simulated unit as the vendor table's
profile and reads it back to the hall's values, over real SNMP on loopback; the simulated ServerTech
and Eaton units serve the columns, indexes and types of real units' walks."""

from __future__ import annotations

import pytest

from dcim import schema
from dcim.agents.snmp.poller import Device, Poller
from dcim.agents.snmp.profile import detect_candidates, load_profiles
from dcim.config import named_site
from dcim.simulators.hall import Hall
from dcim.simulators.snmp import layouts, serve
from dcim.simulators.snmp.layouts import SYS_OBJECT_ID
from dcim.simulators.snmp.snmprec import dumps
from dcim.simulators.state import PduState
from dcim.vendors import COOLING_VENDORS, PDU_VENDORS
from tests.agents.librenms_corpus import CORPUS, require_corpus

PROFILES = load_profiles()
J_PER_KWH = 3.6e6


def test_each_vendor_names_a_shipped_profile_of_its_kind() -> None:
    for v in PDU_VENDORS.values():
        assert PROFILES[v.profile].kind == "pdu", v
    for v in COOLING_VENDORS.values():
        assert PROFILES[v.profile].kind == "cooling", v


@pytest.mark.parametrize("vendor", list(PDU_VENDORS))
def test_the_simulated_sys_object_id_leads_detection_to_the_vendors_profile(vendor: str) -> None:
    cands = detect_candidates(PROFILES.values(), SYS_OBJECT_ID[vendor])
    assert cands and cands[0].prefix_len > 0
    best = max(c.prefix_len for c in cands)
    assert PDU_VENDORS[vendor].profile in [c.profile.name for c in cands if c.prefix_len == best]


def _hall() -> tuple[Hall, dict[str, tuple[str, str, str]]]:
    """The sample hall with its first PDUs, one per vendor; device name -> (rack, pdu, vendor)."""
    site = named_site("h100-hall")
    pdus = [(r.name, p) for r in site.racks() for p in r.pdus][: len(PDU_VENDORS)]
    for (_, p), vendor in zip(pdus, PDU_VENDORS, strict=True):
        p.vendor = vendor
    hall = Hall(site, seed=5)
    for _ in range(20):
        hall.advance(1.0)  # energy counters off zero, loads spread
    return hall, {f"{rack}-{p.name}": (rack, p.name, p.vendor) for rack, p in pdus}


#: what each vendor's unit resolves, as (current A, power W, voltage V, energy J): APC reports
#: device power in 0.01 kW and phase voltage in whole volts; every vendor meters energy in 0.1 kWh or Wh
RESOLUTION = {
    "apc": (0.1, 10.0, 1.0, 0.1 * J_PER_KWH),
    "raritan": (0.01, 1.0, 0.1, 3600.0),
    "servertech": (0.01, 1.0, 0.1, 0.1 * J_PER_KWH),
    "eaton": (0.001, 1.0, 0.001, 3600.0),
    "cyberpower": (0.1, 1.0, 0.1, 0.1 * J_PER_KWH),
}


def _near(got: float, want: float, step: float) -> bool:
    return abs(got - want) <= step / 2 + 1e-6


def _check(poll, st: PduState, vendor: str) -> None:  # noqa: ANN001
    amp, watt, volt, joule = RESOLUTION[vendor]
    recs = [r for r in poll.records if r.tags.get("pdu") == st.name]
    (pdu,) = [r.fields for r in recs if r.measurement == "pdu"]
    assert _near(pdu["power_w"], st.power_w, watt), (vendor, pdu, st.power_w)
    assert _near(pdu["energy_j"], st.energy_j, joule), (vendor, pdu, st.energy_j)
    for ph in st.phases:
        rows = [r.fields for r in recs if r.measurement == "pdu_phase" and r.tags["phase"] == ph.phase]
        seen: set[str] = set()
        for f in rows:
            if "current_a" in f:
                assert _near(f["current_a"], ph.current_a, amp), (vendor, ph.phase, f, ph.current_a)
            if "voltage_v" in f:
                assert _near(f["voltage_v"], ph.voltage_v, volt), (vendor, ph.phase, f, ph.voltage_v)
            if "power_w" in f:
                assert _near(f["power_w"], ph.power_w, 1.0 if vendor != "apc" else 10.0), (vendor, f, ph.power_w)
            seen |= set(f)
        assert {"current_a", "voltage_v"} <= seen, (vendor, ph.phase, rows)
    outlets = {r.tags["outlet"]: r.fields for r in recs if r.measurement == "pdu_outlet"}
    assert len(outlets) == len(st.outlets), vendor
    for o in st.outlets:
        f = outlets[str(o.number)]
        assert _near(f["current_a"], o.current_a, amp), (vendor, o.number, f, o.current_a)
        assert _near(f["power_w"], o.power_w, 1.0), (vendor, o.number, f, o.power_w)
        assert _near(f["energy_j"], o.energy_j, joule), (vendor, o.number, f, o.energy_j)
    for r in recs:
        assert schema.validate(r, allow_extra_tags=False) == [], (vendor, r)


async def test_every_vendor_is_auto_detected_and_reads_the_halls_values() -> None:
    hall, chosen = _hall()
    assert sorted(v for _, _, v in chosen.values()) == sorted(PDU_VENDORS)
    handle = serve(hall, devices=list(chosen))
    try:
        devs = [Device(name, port=handle.ports[name], tags={"rack": rack, "pdu": pdu})
                for name, (rack, pdu, _) in chosen.items()]
        async with Poller(devs, PROFILES) as poller:
            polls = await poller.poll_all()
    finally:
        handle.stop()
    for poll, (rack, pdu, vendor) in zip(polls, chosen.values(), strict=True):
        assert poll.ok, (vendor, poll.error)
        assert poll.profile == PDU_VENDORS[vendor].profile, (vendor, poll.profile)
        _check(poll, hall.state.pdus[(rack, pdu)], vendor)


@pytest.mark.parametrize("vendor", ["eaton", "cyberpower"])
async def test_the_device_load_state_follows_the_hall(vendor: str) -> None:
    hall, chosen = _hall()
    name = next(n for n, (_, _, v) in chosen.items() if v == vendor)
    rack, pdu, _ = chosen[name]
    st = hall.state.pdus[(rack, pdu)]
    st.phases[0].current_a = 0.97 * st.phases[0].breaker_a  # past the hall's overload fraction
    handle = serve(hall, devices=[name])
    try:
        async with Poller([Device(name, port=handle.ports[name], tags={"pdu": pdu})], PROFILES) as poller:
            (poll,) = await poller.poll_all()
    finally:
        handle.stop()
    states = {r.tags["phase"]: r.fields["load_state"] for r in poll.records
              if r.measurement == "pdu_phase" and "load_state" in r.fields}
    assert states["L1"] == "overload"
    assert set(states) == {"L1", "L2", "L3"}
    assert layouts.THRESHOLDS[2] < 0.97


# --- the simulated units against real walks (LibreNMS's recorded walks in ../shared) -------------------


def _columns(text: str, root: str) -> dict[str, tuple[int, str]]:
    """Column OID -> (index length, snmprec type tag) of every instance under ``root``."""
    out: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        oid, tag, _ = line.split("|", 2)
        if not oid.startswith(root):
            continue
        arcs = oid[len(root):].split(".")
        # under both vendors' roots a table column is <group>.<table>.<entry 1>.<column>.<index...>
        # and a scalar <group>.<subgroup>.<object>.0
        n = 4 if len(arcs) > 4 and arcs[2] == "1" else len(arcs) - 1
        out.setdefault(root + ".".join(arcs[:n]), (len(arcs) - n, tag.rstrip("x")))
    return out


#: vendor -> (real walk, MIB subtree, columns the simulated unit serves that the walk lacks, and why)
REAL = {
    "servertech": ("sentry4", "1.3.6.1.4.1.1718.4.1.", {
        # LibreNMS reads no outlet table, only some phase columns and the branches' states, so its
        # walks hold none of these (Sentry4-MIB st4OutletConfigTable / st4OutletMonitorTable,
        # st4PhaseApparentPower / st4PhasePowerFactor / st4PhaseEnergy, st4BranchCurrent)
        "1.3.6.1.4.1.1718.4.1.8.2.1.2", "1.3.6.1.4.1.1718.4.1.8.2.1.3", "1.3.6.1.4.1.1718.4.1.8.3.1.1",
        "1.3.6.1.4.1.1718.4.1.8.3.1.3", "1.3.6.1.4.1.1718.4.1.8.3.1.7", "1.3.6.1.4.1.1718.4.1.8.3.1.14",
        "1.3.6.1.4.1.1718.4.1.5.3.1.9", "1.3.6.1.4.1.1718.4.1.5.3.1.10", "1.3.6.1.4.1.1718.4.1.5.3.1.13",
        "1.3.6.1.4.1.1718.4.1.7.3.1.3",
    }),
    "eaton": ("eatonpdu_2", "1.3.6.1.4.1.534.6.6.7.", set()),
}


@pytest.mark.parametrize("vendor", list(REAL))
def test_the_simulated_unit_serves_the_real_units_columns_and_types(vendor: str) -> None:
    require_corpus()
    stem, root, not_in_walk = REAL[vendor]
    real = _columns((CORPUS / "snmprec" / f"{stem}.snmprec").read_text(), root)
    hall, chosen = _hall()
    rack, pdu, _ = next(c for c in chosen.values() if c[2] == vendor)
    sim = _columns(dumps(layouts.PDU_LAYOUTS[vendor](hall.state.pdus[(rack, pdu)])), root)
    assert len(sim) > 20
    assert {c for c in sim if c not in real} == not_in_walk
    for col, shape in sim.items():
        if col in real:
            # same index parts (unit.cord.line, strapping.input.phase ...) and the same SNMP type
            assert shape == real[col], (vendor, col, shape, real[col])
    # and the real walk's sysObjectID is the one the simulated unit reports
    sys_oid = next(line.split("|")[2] for line in (CORPUS / "snmprec" / f"{stem}.snmprec").read_text().splitlines()
                   if line.startswith("1.3.6.1.2.1.1.2.0|"))
    assert sys_oid == SYS_OBJECT_ID[vendor]
