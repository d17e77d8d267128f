"""The poller against the simulated hall served over real SNMP on loopback (no external servers)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dcim.agents.snmp.poller import Device, Poller, plan_batches
from dcim.agents.snmp.profile import load_profiles
from dcim.agents.snmp.transport import V2cEngine
from dcim import schema
from tests.agents.conftest import V3

PROFILES = load_profiles()


def _fields(poll, measurement: str, **tags: str) -> dict:
    (rec,) = [r for r in poll.records if r.measurement == measurement
              and all(r.tags.get(k) == v for k, v in tags.items())]
    return rec.fields


@pytest.mark.devices("A01-pdu-a")
async def test_values_follow_the_hall_physics(snmp_hall, snmp_sim) -> None:
    dev = Device("A01-pdu-a", port=snmp_sim.ports["A01-pdu-a"], tags={"rack": "A01", "pdu": "pdu-a"})
    async with Poller([dev], PROFILES) as poller:
        (first,) = await poller.poll_all()
        snmp_hall.advance(30.0)
        (second,) = await poller.poll_all()
    state = snmp_hall.state.pdus[("A01", "pdu-a")]
    assert first.ok and second.ok
    pdu = _fields(second, "pdu")
    assert abs(pdu["power_w"] - state.power_w) <= 5.0  # 0.01 kW steps
    assert abs(pdu["energy_j"] - state.energy_j) <= 0.05 * 3.6e6  # 0.1 kWh steps
    for ph in state.phases:
        got = _fields(second, "pdu_phase", phase=ph.phase)
        assert abs(got["current_a"] - ph.current_a) <= 0.05
        assert got["voltage_v"] == round(ph.voltage_v)
    for o in state.outlets:
        got = _fields(second, "pdu_outlet", outlet=str(o.number))
        assert abs(got["current_a"] - o.current_a) <= 0.05 and got["on"] is o.on
    # energy is a counter: it grows while the hall draws power
    assert _fields(second, "pdu")["energy_j"] >= _fields(first, "pdu")["energy_j"]
    for r in second.records:
        assert schema.validate(r, allow_extra_tags=False) == [], r


@pytest.mark.devices("A01-pdu-a", "A01-pdu-b", "cdu-a", "cdu-b")
async def test_auto_detects_every_simulated_vendor(snmp_sim) -> None:
    names = ["A01-pdu-a", "A01-pdu-b", "cdu-a", "cdu-b"]
    devs = [Device(n, port=snmp_sim.ports[n]) for n in names]
    async with Poller(devs, PROFILES) as poller:
        polls = await poller.poll_all()
    assert [p.profile for p in polls] == ["apc_rpdu2", "raritan_pdu2", "liebert_flexible", "apc_cooling"]
    assert all(p.ok for p in polls)


@pytest.mark.devices("cdu-a", "cdu-b")
async def test_cooling_units_of_both_vendors_agree_with_the_loop_state(snmp_hall, snmp_sim) -> None:
    devs = [Device("cdu-a", port=snmp_sim.ports["cdu-a"]), Device("cdu-b", port=snmp_sim.ports["cdu-b"])]
    async with Poller(devs, PROFILES) as poller:
        polls = await poller.poll_all()
    for p, loop_name in zip(polls, ["loop-a", "loop-b"], strict=True):
        st = snmp_hall.state.loops[loop_name]
        f = _fields(p, "coolant_loop")
        assert abs(f["supply_temp_c"] - st.supply_temp_c) <= 0.05
        assert abs(f["return_temp_c"] - st.return_temp_c) <= 0.05
        assert abs(f["flow_lpm"] - st.flow_lpm) <= 0.05
        assert abs(f["supply_pressure_kpa"] - st.supply_pressure_kpa) <= 1.0
        assert abs(f["heat_w"] - st.heat_w) <= 10.0
        assert f["leak"] is st.leak


@pytest.mark.devices("A02-pdu-b")
async def test_fast_pysnmp_and_v3_paths_agree(snmp_sim) -> None:
    port = snmp_sim.ports["A02-pdu-b"]
    common = {"port": port, "profile": "raritan_pdu2", "tags": {"pdu": "pdu-b"}}
    devs = [Device("fast", **common), Device("ref", backend="pysnmp", **common),
            Device("v3", version="3", v3_user=V3.user, v3_auth_key=V3.auth_key, v3_priv_key=V3.priv_key, **common)]
    async with Poller(devs, PROFILES, clock_ns=lambda: 42) as poller:
        polls = await poller.poll_all()
    assert all(p.ok for p in polls), [p.error for p in polls]
    norm = [sorted((r.measurement, sorted(r.tags.items()), sorted(r.fields.items())) for r in p.records)
            for p in polls]
    assert norm[0] == norm[1] == norm[2]
    assert len(norm[0]) > 24


@pytest.mark.devices("A03-pdu-a", "A03-pdu-b")
async def test_device_that_stops_answering_goes_stale_then_recovers(snmp_hall, snmp_sim) -> None:
    dev = Device("A03-pdu-a", port=snmp_sim.ports["A03-pdu-a"], profile="apc_rpdu2", timeout_s=1.0, retries=0)
    other = Device("A03-pdu-b", port=snmp_sim.ports["A03-pdu-b"], profile="raritan_pdu2")
    registry = CollectorRegistry()
    async with Poller([dev, other], PROFILES, registry=registry) as poller:
        snmp_hall.state.pdus[("A03", "pdu-a")].answering = False
        down, fine = await poller.poll_all()
        text = generate_latest(registry).decode()
        snmp_hall.state.pdus[("A03", "pdu-a")].answering = True
        up, _ = await poller.poll_all()
    assert not down.ok and down.health.fields["stale"] is True and down.health.fields["up"] is False
    assert fine.ok and fine.records
    assert 'dcim_snmp_device_stale{device="A03-pdu-a"} 1.0' in text
    assert 'dcim_snmp_device_up{device="A03-pdu-b"} 1.0' in text
    assert 'dcim_snmp_poll_errors_total{device="A03-pdu-a"} 1.0' in text
    assert up.ok and up.health.fields["stale"] is False and up.health.fields["errors_total"] == 1


@pytest.mark.devices("B01-pdu-a")
async def test_secrets_never_reach_metrics_health_or_repr(snmp_sim) -> None:
    community = "s3cret-community"
    devs = [Device("a", port=snmp_sim.ports["B01-pdu-a"], community=community, timeout_s=0.2, retries=0),
            Device("b", port=snmp_sim.ports["B01-pdu-a"], version="3", v3_user="ops", v3_auth_key="wrong-" + "x" * 8,
                   v3_priv_key=V3.priv_key, profile="apc_rpdu2", timeout_s=0.5, retries=0)]
    registry = CollectorRegistry()
    async with Poller(devs, PROFILES, registry=registry) as poller:
        polls = await poller.poll_all()
    text = generate_latest(registry).decode() + repr(devs) + "".join(str(p.health) for p in polls)
    assert not any(p.ok for p in polls)
    for secret in (community, "wrong-" + "x" * 8, V3.priv_key):
        assert secret not in text


class CountingEngine(V2cEngine):
    """Counts requests in flight across all devices."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1")
        self.now = 0
        self.peak = 0

    async def request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.001)  # let the others pile up if the bound does not hold
            return await super().request(*args, **kwargs)
        finally:
            self.now -= 1


@pytest.mark.devices("A01-pdu-a", "A02-pdu-a", "A03-pdu-a", "A04-pdu-a", "B01-pdu-b", "B02-pdu-b")
async def test_requests_in_flight_are_bounded(snmp_sim) -> None:
    devs = [Device(n, port=p, profile="apc_rpdu2" if n.endswith("pdu-a") else "raritan_pdu2")
            for n, p in snmp_sim.ports.items() if "pdu" in n]
    engine = CountingEngine()
    async with Poller(devs, PROFILES, max_in_flight=3, v2c_engine=engine) as poller:
        polls = await poller.poll_all()
        again = await poller.poll_all()  # second poll: max-repetitions sized from the first one's rows
    assert [len(p.records) for p in again] == [len(p.records) for p in polls]
    assert sum(p.varbinds for p in again) < sum(p.varbinds for p in polls)
    assert sum(p.requests for p in again) < sum(p.requests for p in polls)  # small tables share a GETBULK
    assert all(p.ok for p in polls)
    assert 1 < engine.peak <= 3


@pytest.mark.devices("A04-pdu-a")
async def test_a_misconfigured_device_fails_alone(snmp_sim) -> None:
    devs = [Device("no-user", port=snmp_sim.ports["A04-pdu-a"], version="3", profile="apc_rpdu2"),
            Device("fine", port=snmp_sim.ports["A04-pdu-a"], profile="apc_rpdu2")]
    async with Poller(devs, PROFILES) as poller:
        bad, good = await poller.poll_all()
    assert good.ok
    assert not bad.ok and "SNMPv3 needs a user" in bad.error and bad.health.fields["stale"] is True


def test_plan_batches_packs_small_tables_and_keeps_big_ones_apart() -> None:
    # the APC rPDU2 groups: device 6 cols x 1 row, phase 7 x 3, bank 3 x 3, metered 4 x 24, switched 2 x 24, probe 3 x 1
    cols, rows = [6, 7, 3, 4, 2, 3], [1, 3, 3, 24, 24, 1]
    assert plan_batches(cols, [None] * 6, 25) == [([i], 25) for i in range(6)]
    plan = plan_batches(cols, rows, 25)
    assert plan == [([0, 5, 1], 4), ([2], 4), ([3], 25), ([4], 25)]
    for batch, reps in plan:
        assert len(batch) == 1 or sum(cols[i] for i in batch) * reps <= 64
    assert sorted(i for b, _ in plan for i in b) == list(range(6))
    assert plan_batches(cols, rows, 2)[-1][1] == 2  # never above the device's max-repetitions
