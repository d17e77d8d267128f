"""The SNMP poller against a real snmpsim: v2c, v3 authPriv, wrong keys, silent and slow devices, tables that change."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dcim.agents.snmp import snmprec
from dcim.agents.snmp.poller import Device, Poller
from dcim.agents.snmp.profile import load_profiles, parse

pytestmark = pytest.mark.integration

WALKS = Path(__file__).parents[1] / "agents" / "snmp_walks"
PROFILES = load_profiles()
AUTH_KEY = "auth-key-" + "x" * 8
PRIV_KEY = "priv-key-" + "y" * 8


def _norm(records: list) -> list:
    return sorted((r.measurement, sorted(r.tags.items()), sorted(r.fields.items())) for r in records)


def _expected(walk_file: str, profile: str, tags: dict) -> list:
    prof = PROFILES[profile]
    return _norm(parse(prof, snmprec.load_walk(WALKS / walk_file, prof.columns()), tags).records)


@pytest.fixture(scope="module")
def apc_sim(snmpsim_factory):
    return snmpsim_factory(records={"public": (WALKS / "apc_ap8886_sim.snmprec").read_text(),
                                    "raritan": (WALKS / "raritan_px3_sim.snmprec").read_text()},
                           v3_user="ops", v3_auth_key=AUTH_KEY, v3_priv_key=PRIV_KEY)


@pytest.mark.parametrize("backend", ["fast", "pysnmp"])
async def test_v2c_live_walk_equals_recorded_walk(apc_sim, backend: str) -> None:
    devs = [Device("pdu-a", port=apc_sim.port, community="public", backend=backend, max_repetitions=10),
            Device("pdu-b", port=apc_sim.port, community="raritan", backend=backend)]
    async with Poller(devs, PROFILES) as poller:
        a, b = await poller.poll_all()
    assert a.ok and b.ok, (a.error, b.error)
    assert (a.profile, b.profile) == ("apc_rpdu2", "raritan_pdu2")  # auto-detected by sysObjectID (+ probe)
    assert _norm(a.records) == _expected("apc_ap8886_sim.snmprec", "apc_rpdu2", {"pdu": "pdu-a"})
    assert _norm(b.records) == _expected("raritan_px3_sim.snmprec", "raritan_pdu2", {"pdu": "pdu-b"})
    assert a.requests > 1  # 24 outlets at max-repetitions 10 need several GETBULKs


async def test_v3_authpriv(apc_sim) -> None:
    dev = Device("pdu-a", port=apc_sim.port, version="3", v3_user="ops", v3_auth_key=AUTH_KEY,
                 v3_priv_key=PRIV_KEY, v3_context="public", profile="apc_rpdu2")
    async with Poller([dev], PROFILES) as poller:
        (p,) = await poller.poll_all()
    assert p.ok, p.error
    assert _norm(p.records) == _expected("apc_ap8886_sim.snmprec", "apc_rpdu2", {"pdu": "pdu-a"})


async def test_v3_auto_detection_over_pysnmp(apc_sim) -> None:
    dev = Device("pdu-a", port=apc_sim.port, version="3", v3_user="ops", v3_auth_key=AUTH_KEY,
                 v3_priv_key=PRIV_KEY, v3_context="raritan", profile="auto")
    async with Poller([dev], PROFILES) as poller:
        (p,) = await poller.poll_all()
        det = poller.detections["pdu-a"]
    assert p.ok and p.profile == "raritan_pdu2", p.error
    assert det.sys_object_id.startswith("1.3.6.1.4.1.13742.6") and det.requests <= 4
    assert _norm(p.records) == _expected("raritan_px3_sim.snmprec", "raritan_pdu2", {"pdu": "pdu-a"})


async def test_v3_wrong_key_is_a_clear_error_naming_the_device(apc_sim) -> None:
    wrong = "wrong-key-" + "z" * 8
    dev = Device("rack7-pdu-a", port=apc_sim.port, version="3", v3_user="ops", v3_auth_key=wrong,
                 v3_priv_key=PRIV_KEY, v3_context="public", profile="apc_rpdu2", timeout_s=1.0, retries=0)
    async with Poller([dev], PROFILES) as poller:
        (p,) = await poller.poll_all()
    assert not p.ok
    assert p.error.startswith("rack7-pdu-a:")
    assert "authentication" in p.error.lower()
    assert wrong not in p.error and PRIV_KEY not in p.error
    assert p.health.fields["up"] is False and p.health.fields["stale"] is True


async def test_silent_device_is_stale_and_does_not_hold_up_the_others(apc_sim, free_udp_port: int) -> None:
    devs = [Device("ghost", port=free_udp_port, profile="apc_rpdu2", timeout_s=0.3, retries=1),
            Device("pdu-a", port=apc_sim.port, profile="apc_rpdu2")]
    async with Poller(devs, PROFILES, max_in_flight=4) as poller:
        ghost, good = await poller.poll_all()
        again, _ = await poller.poll_all()
    assert good.ok and len(good.records) == 32
    assert not ghost.ok and ghost.records == []
    assert "no answer" in ghost.error and ghost.error.startswith("ghost:")
    assert ghost.health.measurement == "agent"
    assert ghost.health.tags["device"] == "ghost" and ghost.health.fields["stale"] is True
    assert again.health.fields["errors_total"] == 2


def _delayed(text: str, oid: str, wait_ms: int) -> str:
    """One record behind snmpsim's delay variation module: a card that is slow to answer."""
    out = []
    for line in text.splitlines():
        o, tag, value = line.split("|", 2)
        out.append(f"{o}|{tag}:delay|value={value},wait={wait_ms}" if o == oid else line)
    return "\n".join(out) + "\n"


async def test_slow_device_answers_within_a_long_timeout_and_is_stale_with_a_short_one(snmpsim_factory) -> None:
    text = (WALKS / "ups_rfc1628.snmprec").read_text()
    slow = snmpsim_factory(records={"public": _delayed(text, "1.3.6.1.2.1.33.1.2.4.0", 600)})
    short = Device("ups-short", port=slow.port, profile="ups_mib", timeout_s=0.2, retries=0)
    patient = Device("ups-patient", port=slow.port, profile="ups_mib", timeout_s=5.0, retries=0)
    async with Poller([short], PROFILES) as poller:
        (p_short,) = await poller.poll_all()
    async with Poller([patient], PROFILES) as poller:
        (p_patient,) = await poller.poll_all()
    assert not p_short.ok and "no answer" in p_short.error
    assert p_patient.ok, p_patient.error
    assert _norm(p_patient.records) == _expected("ups_rfc1628.snmprec", "ups_mib", {"ups": "ups-patient"})


async def test_table_that_changes_size_between_polls(snmpsim_factory) -> None:
    full = (WALKS / "apc_ap8886_sim.snmprec").read_text()
    sim = snmpsim_factory(records={"public": full})
    dev = Device("pdu-a", port=sim.port, profile="apc_rpdu2")
    async with Poller([dev], PROFILES) as poller:
        (first,) = await poller.poll_all()
        # the card now reports only outlets 1..8 (e.g. a module swapped for a smaller one)
        keep = [ln for ln in full.splitlines()
                if not ln.startswith(("1.3.6.1.4.1.318.1.1.26.9.4.3.1.", "1.3.6.1.4.1.318.1.1.26.9.2.3.1."))
                or int(ln.split("|")[0].rsplit(".", 1)[1]) <= 8]
        path = sim.data_dir / "public.snmprec"
        path.write_text("\n".join(keep) + "\n")
        later = time.time() + 120  # snmpsim re-indexes when the file is newer than its index
        os.utime(path, (later, later))
        (second,) = await poller.poll_all()
    outlets = lambda p: sorted(int(r.tags["outlet"]) for r in p.records if r.measurement == "pdu_outlet")  # noqa: E731
    assert first.ok and second.ok, (first.error, second.error)
    assert outlets(first) == list(range(1, 25))
    assert outlets(second) == list(range(1, 9))
