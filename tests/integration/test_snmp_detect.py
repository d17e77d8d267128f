"""Detection by capability and odd device strings, against a real snmpsim: the richest answering
profile wins, unreadable devices are refused by name, odd labels never break a poll or the agent."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from dcim.agents.snmp import cli as snmp_cli
from dcim.agents.snmp.poller import Device, Poller
from dcim.agents.snmp.profile import load_profiles
from dcim.config import MqttConfig
from dcim.lineprotocol.decode import decode

pytestmark = pytest.mark.integration

PROFILES = load_profiles()
APC = "1.3.6.1.4.1.318.1.1"


def _rec(rows: list[tuple[str, str, str]]) -> str:
    """snmprec text, sorted by OID as snmpsim needs for GETNEXT."""
    rows = sorted(rows, key=lambda r: tuple(int(x) for x in r[0].split(".")))
    return "".join(f"{o}|{t}|{v}\n" for o, t, v in rows)


def _hex(text: str) -> str:
    return text.encode().hex()


SYS = "1.3.6.1.2.1.1"
# an rPDU2 unit that also answers the legacy rPDU load table (as real rPDU2 firmware does), with
# sensor names an operator can type into the web UI: empty, a newline, a trailing backslash
RPDU2 = _rec([
    (f"{SYS}.1.0", "4", "APC Web/SNMP Management Card (MN:AP8853)"),
    (f"{SYS}.2.0", "6", "1.3.6.1.4.1.318.1.3.4.6"),
    (f"{APC}.12.2.3.1.1.2.1", "66", "49"),
    (f"{APC}.12.2.3.1.1.4.1", "2", "1"),
    (f"{APC}.12.2.3.1.1.5.1", "2", "0"),
    (f"{APC}.26.4.3.1.4.1", "2", "2"),
    (f"{APC}.26.4.3.1.5.1", "2", "114"),
    (f"{APC}.26.4.3.1.9.1", "2", "35128"),
    (f"{APC}.26.6.3.1.3.1", "2", "1"),
    (f"{APC}.26.6.3.1.5.1", "2", "48"),
    (f"{APC}.26.6.3.1.6.1", "2", "242"),
    (f"{APC}.26.10.2.2.1.3.1", "4x", _hex("")),
    (f"{APC}.26.10.2.2.1.3.2", "4x", _hex("inlet\nrack 7")),
    (f"{APC}.26.10.2.2.1.3.3", "4x", _hex("rack7\\")),
    (f"{APC}.26.10.2.2.1.3.4", "4", "Exhaust"),
    *[(f"{APC}.26.10.2.2.1.8.{i}", "2", str(200 + i)) for i in range(1, 5)],
])
# a legacy-only AP7900B-like unit: no bank column, no rPDU2 tables
LEGACY = _rec([
    (f"{SYS}.1.0", "4", "APC Web/SNMP Management Card (MN:AP7900)"),
    (f"{SYS}.2.0", "6", "1.3.6.1.4.1.318.1.3.4.5"),
    (f"{APC}.12.1.16.0", "2", "312"),
    (f"{APC}.12.2.3.1.1.2.1", "66", "28"),
    (f"{APC}.12.2.3.1.1.4.1", "2", "1"),
])
# an APC device no profile reads (only IF-MIB): refused, never "up" as a switch
UNREADABLE = _rec([
    (f"{SYS}.1.0", "4", "apcpdu"),
    (f"{SYS}.2.0", "6", "1.3.6.1.4.1.318.1.1.32.1"),
    ("1.3.6.1.2.1.2.2.1.2.1", "4", "eth0"),
    ("1.3.6.1.2.1.2.2.1.8.1", "2", "1"),
    ("1.3.6.1.2.1.31.1.1.1.1.1", "4", "eth0"),
    ("1.3.6.1.2.1.31.1.1.1.6.1", "70", "1000"),
])
# a UPS whose card reports its vendor's sysObjectID: UPS-MIB found by probing
UPS = _rec([
    (f"{SYS}.1.0", "4", "UPS card of a vendor no profile knows"),
    (f"{SYS}.2.0", "6", "1.3.6.1.4.1.99999.2.5"),
    ("1.3.6.1.2.1.33.1.2.1.0", "2", "2"),
    ("1.3.6.1.2.1.33.1.2.4.0", "2", "100"),
    ("1.3.6.1.2.1.33.1.4.4.1.2.1", "2", "230"),
])


# a switch of a vendor no profile knows: IF-MIB and ENTITY-SENSOR-MIB, found by probing
SWITCH = _rec([
    (f"{SYS}.1.0", "4", "ToR switch"),
    (f"{SYS}.2.0", "6", "1.3.6.1.4.1.99998.1"),
    ("1.3.6.1.2.1.2.2.1.8.1", "2", "1"),
    ("1.3.6.1.2.1.31.1.1.1.1.1", "4", "swp1"),
    ("1.3.6.1.2.1.31.1.1.1.6.1", "70", "123456789"),
    ("1.3.6.1.2.1.47.1.1.1.1.7.5", "4", "ASIC"),
    *[(f"1.3.6.1.2.1.99.1.1.1.{c}.5", "2", v) for c, v in ((1, "8"), (2, "9"), (3, "1"), (4, "412"), (5, "1"))],
])


@pytest.fixture(scope="module")
def sim(snmpsim_factory):
    return snmpsim_factory(records={"rpdu2": RPDU2, "legacy": LEGACY, "unreadable": UNREADABLE, "ups": UPS,
                                    "switch": SWITCH})


async def _poll(sim, *communities: str):
    devs = [Device(c, port=sim.port, community=c) for c in communities]
    async with Poller(devs, PROFILES) as poller:
        return await poller.poll_all()


async def test_rpdu2_wins_over_legacy_when_it_answers_and_legacy_alone_is_legacy(sim) -> None:
    new, old = await _poll(sim, "rpdu2", "legacy")
    assert (new.profile, old.profile) == ("apc_rpdu2", "apc_rpdu"), (new.error, old.error)
    recs = {(r.measurement, tuple(sorted((k, v) for k, v in r.tags.items() if k != "pdu"))): r.fields
            for r in new.records}
    assert recs[("pdu", ())]["power_w"] == 1140.0  # rPDU2DeviceStatusPower 0.01 kW
    assert recs[("pdu_phase", (("phase", "L1"),))]["current_a"] == 4.8  # the rPDU2 row, not legacy 4.9
    legacy = {(r.measurement, tuple(sorted(r.tags.items()))): r.fields for r in old.records}
    assert legacy[("pdu_phase", (("pdu", "legacy"), ("phase", "L1")))] == {"current_a": 2.8}
    # no bank column on this firmware: no pdu_bank point, and never a "None" tag
    assert not any(r.measurement == "pdu_bank" for r in old.records)
    assert all("None" not in r.tags.values() for p in (new, old) for r in p.records)


async def test_unreadable_device_is_refused_naming_sys_object_id_and_descr(sim) -> None:
    (p,) = await _poll(sim, "unreadable")
    assert not p.ok and p.records == []
    assert "1.3.6.1.4.1.318.1.1.32.1" in p.error and "'apcpdu'" in p.error
    assert "if_mib" in p.error  # what was tried is listed
    assert p.health.fields["up"] is False and "no profile can read" in p.health.fields["message"]


async def test_standard_ups_mib_found_whatever_the_sys_object_id(sim) -> None:
    (p,) = await _poll(sim, "ups")
    assert p.ok and p.profile == "ups_mib", p.error


async def test_standard_if_mib_and_entity_sensor_found_on_an_unknown_switch(sim) -> None:
    (p,) = await _poll(sim, "switch")
    assert p.ok and p.profile == "if_mib", p.error
    got = {(r.measurement, r.tags.get("ifname") or r.tags.get("sensor")): r.fields for r in p.records}
    assert got[("netif", "swp1")]["rx_bytes_total"] == 123456789
    assert got[("env", "ASIC")] == {"temp_c": 41.2}
    assert all(r.tags["switch"] == "switch" for r in p.records)


async def test_odd_labels_become_the_row_index_and_the_poll_goes_out(sim) -> None:
    registry = CollectorRegistry()
    async with Poller([Device("rpdu2", port=sim.port, community="rpdu2")], PROFILES, registry=registry) as poller:
        (p,) = await poller.poll_all()
        await poller.poll_all()
    # counted once per device, not once per poll
    assert registry.get_sample_value("dcim_snmp_odd_labels_total", {"device": "rpdu2"}) == 3
    sensors = {r.tags["sensor"]: r.fields["temp_c"] for r in p.records if r.measurement == "env"}
    assert sensors == {"1": 20.1, "2": 20.2, "3": 20.3, "Exhaust": 20.4}
    assert "3 device label(s) unfit for a tag" in p.health.fields["message"]
    # every point encodes (line protocol cannot carry an empty tag, a newline or a trailing backslash)
    points = decode(snmp_cli._payload(p))
    assert len(points) == len(p.records) + 1


def test_once_lp_prints_every_point_despite_odd_labels(sim) -> None:
    res = CliRunner().invoke(snmp_cli.snmp_cmd, ["--target", f"127.0.0.1:{sim.port}", "--community", "rpdu2",
                                                 "--once", "--format", "lp"])
    assert res.exit_code == 0, res.output
    assert "env,pdu=127.0.0.1,sensor=1 temp_c=20.1" in res.output
    assert "sensor=Exhaust" in res.output


def test_detect_prints_choice_and_reasons_and_refuses_unreadable(sim) -> None:
    ok = CliRunner().invoke(snmp_cli.snmp_cmd, ["--target", f"127.0.0.1:{sim.port}", "--community", "rpdu2",
                                                "--detect"])
    assert ok.exit_code == 0, ok.output
    assert "sysObjectID 1.3.6.1.4.1.318.1.3.4.6" in ok.output
    chosen = [line for line in ok.output.splitlines() if "chosen" in line]
    assert len(chosen) == 1 and "apc_rpdu2" in chosen[0]
    assert "superseded" in ok.output  # the legacy profile answered too, and says why it lost
    bad = CliRunner().invoke(snmp_cli.snmp_cmd, ["--target", f"127.0.0.1:{sim.port}", "--community", "unreadable",
                                                 "--detect", "--format", "json"])
    assert bad.exit_code == 1
    det = json.loads(bad.output.splitlines()[0])
    assert det["chosen"] is None and det["sys_object_id"] == "1.3.6.1.4.1.318.1.1.32.1"


async def test_one_device_failing_in_any_way_never_stops_the_others(mosquitto, sim, monkeypatch) -> None:
    real = snmp_cli._payload
    calls = {"n": 0}

    def flaky(poll):  # noqa: ANN001, ANN202 - the first rpdu2 poll fails to encode, as an unforeseen bug would
        if poll.device == "rpdu2" and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("boom")
        return real(poll)

    monkeypatch.setattr(snmp_cli, "_payload", flaky)
    devices = [Device("rpdu2", port=sim.port, community="rpdu2", tags={"rack": "A01"}),
               Device("ups", port=sim.port, community="ups", tags={"rack": "A02"}),
               # a configured tag line protocol cannot carry: not even its health record encodes
               Device("odd", port=sim.port, community="ups", tags={"rack": "A03\\"})]
    host, port = mosquitto.url.removeprefix("mqtt://").split(":")
    got: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(host, int(port), identifier="snmp-isolation-test") as client:
        await client.subscribe("dcim/dc1/+/+/snmp", qos=1)

        async def collect() -> None:
            async for msg in client.messages:
                got.append((str(msg.topic), bytes(msg.payload)))
                if len(got) == 6:
                    return

        collector = asyncio.create_task(collect())
        await snmp_cli.run(devices, PROFILES, site_tag="dc1", mqtt=MqttConfig(url=mosquitto.url), interval_s=0.3,
                           metrics_host="127.0.0.1", metrics_port=0, queue_max=100, max_in_flight=8, polls_max=3,
                           registry=CollectorRegistry())
        await asyncio.wait_for(collector, 10)
    by_dev: dict[str, list] = {}
    for topic, payload in got:
        by_dev.setdefault(topic.split("/")[3], []).append(decode(payload))
    assert len(by_dev["ups"]) == 3 and len(by_dev["rpdu2"]) == 3  # the failing device kept its loop too
    assert "odd" not in by_dev  # nothing it could send, and run() still ended normally
    first = by_dev["rpdu2"][0]
    assert [p.measurement for p in first] == ["agent"]
    assert first[0].fields["up"] is False and "RuntimeError: boom" in first[0].fields["message"]
    assert any(p.measurement == "pdu" for p in by_dev["rpdu2"][1])


async def test_detection_runs_once_per_device_in_a_few_shared_requests(sim) -> None:
    devs = [Device("rpdu2", port=sim.port, community="rpdu2"), Device("gone", port=sim.port, community="unreadable")]
    async with Poller(devs, PROFILES) as poller:
        first = await poller.poll_all()
        second = await poller.poll_all()
        det = poller.detections["rpdu2"]
    assert poller.detected == {"rpdu2": "apc_rpdu2"}
    # one GET, then every candidate's probe columns in shared GETBULKs of 16 columns
    probes = {c for t in det.tried for c, _ in PROFILES[t.profile].probes()}
    assert len(det.tried) >= 5 and det.requests == 1 + -(-len(probes) // 16)
    assert second[0].ok and second[0].requests < first[0].requests  # the second poll only walks
    assert not second[1].ok and "no profile can read" in second[1].error  # a refused device is tried again
