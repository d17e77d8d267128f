"""``dcim agent snmp`` end to end against the simulated devices (served from a thread)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dcim.app.cli import cli
from dcim.config import SITES_DIR
from dcim.lineprotocol.decode import decode

#: The H100 hall: 8 racks with two PDUs each and two CDUs, the devices these expectations name.
H100_HALL = str(SITES_DIR / "h100-hall.yaml")


def _run(args: list[str], env: dict | None = None):
    return CliRunner().invoke(cli, ["agent", "snmp", *args], env=env, catch_exceptions=False)


@pytest.mark.devices("A01-pdu-a", "A01-pdu-b", "cdu-a")
def test_once_lp_with_target_rack_and_pdu_tags(snmp_sim_thread) -> None:
    port = snmp_sim_thread.ports["A01-pdu-a"]
    res = _run(["--target", f"127.0.0.1:{port}", "--community", "public", "--profile", "auto", "--once",
                "--format", "lp", "--rack", "A01", "--pdu", "pdu-a"])
    assert res.exit_code == 0, res.output
    recs = decode(res.output)
    kinds = {r.measurement for r in recs}
    assert {"pdu", "pdu_phase", "pdu_bank", "pdu_outlet", "env", "agent"} <= kinds
    assert all(r.tags.get("rack") == "A01" for r in recs)
    assert all(r.tags.get("pdu") == "pdu-a" for r in recs if r.measurement != "agent")
    (health,) = [r for r in recs if r.measurement == "agent"]
    assert health.fields["up"] is True and health.tags["device"] == "pdu-a"


@pytest.mark.devices("cdu-a")
def test_community_from_environment_and_json_format(snmp_sim_thread) -> None:
    port = snmp_sim_thread.ports["cdu-a"]
    res = _run(["--target", f"127.0.0.1:{port}", "--community-env", "SNMP_COMMUNITY", "--once", "--format", "json"],
               env={"SNMP_COMMUNITY": "public"})
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert rows[0]["measurement"] == "coolant_loop" and "supply_temp_c" in rows[0]["fields"]


@pytest.mark.devices("A01-pdu-b")
def test_wrong_community_times_out_exit_1_without_echoing_it(snmp_sim_thread) -> None:
    port = snmp_sim_thread.ports["A01-pdu-b"]
    res = _run(["--target", f"127.0.0.1:{port}", "--community-env", "C", "--once", "--timeout-s", "0.2",
                "--retries", "0", "--profile", "raritan_pdu2"], env={"C": "not-the-community"})
    assert res.exit_code == 1
    assert "no answer" in res.output
    assert "not-the-community" not in res.output


def test_missing_env_variable_is_a_config_error() -> None:
    from dcim.app.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["agent", "snmp", "--target", "127.0.0.1:1", "--community-env", "DCIM_NO_SUCH_VAR_X", "--once"])
    assert exc.value.code == 2


def test_v3_needs_keys_from_the_environment() -> None:
    res = CliRunner().invoke(cli, ["agent", "snmp", "--target", "127.0.0.1:1", "--snmp-version", "3", "--once"])
    assert res.exit_code == 2 and "--v3-user" in res.output


def test_config_with_port_base_polls_every_pdu_and_cdu_of_the_site(snmp_sim_thread, tmp_path) -> None:
    # the simulator serves devices on free ports; a site file pins each one with snmp_port
    import yaml

    from dcim.config import named_site

    site = named_site("h100-hall").model_dump(mode="json")
    for room in site["rooms"]:
        for row in room["rows"]:
            for rack in row["racks"]:
                for pdu in rack["pdus"]:
                    pdu["snmp_port"] = snmp_sim_thread.ports[f"{rack['name']}-{pdu['name']}"]
    for loop in site["loops"]:
        loop["snmp_port"] = snmp_sim_thread.ports[loop["cdu"]]
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    res = _run(["--config", str(path), "--once"])
    assert res.exit_code == 0, res.output[-2000:]
    recs = decode(res.output)
    health = [r for r in recs if r.measurement == "agent"]
    assert len(health) == 18 and all(r.fields["up"] for r in health)
    pdus = {(r.tags["rack"], r.tags["pdu"]) for r in recs if r.measurement == "pdu"}
    assert len(pdus) == 16
    loops = {(r.tags["loop"], r.tags["cdu"]) for r in recs if r.measurement == "coolant_loop"}
    assert loops == {("loop-a", "cdu-a"), ("loop-b", "cdu-b")}
    assert all(r.tags["site"] == "dc1" for r in recs if r.measurement != "agent")


@pytest.mark.devices("B02-pdu-a")
def test_v3_target_with_keys_from_the_environment(snmp_sim_thread) -> None:
    from tests.agents.conftest import V3

    port = snmp_sim_thread.ports["B02-pdu-a"]
    res = _run(["--target", f"127.0.0.1:{port}", "--snmp-version", "3", "--v3-user", V3.user,
                "--v3-auth-env", "A", "--v3-priv-env", "P", "--once", "--profile", "apc_rpdu2"],
               env={"A": V3.auth_key, "P": V3.priv_key})
    assert res.exit_code == 0, res.output
    assert any(r.measurement == "pdu_outlet" for r in decode(res.output))
    bad = _run(["--target", f"127.0.0.1:{port}", "--snmp-version", "3", "--v3-user", V3.user,
                "--v3-auth-env", "A", "--v3-priv-env", "P", "--once", "--profile", "apc_rpdu2", "--timeout-s", "0.5",
                "--retries", "0"], env={"A": "not-the-key-123", "P": V3.priv_key})
    assert bad.exit_code == 1
    assert "authentication failed" in bad.output and "not-the-key-123" not in bad.output


def test_simulator_record_writes_one_walk_per_device(tmp_path) -> None:
    from dcim.agents.snmp import snmprec
    from dcim.agents.snmp.profile import load_profiles, parse
    from dcim.simulators.snmp.__main__ import main as sim_main

    res = CliRunner().invoke(sim_main, ["record", "--out", str(tmp_path), "--steps", "1", "--site", H100_HALL], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in tmp_path.glob("*.snmprec"))
    assert len(files) == 18 and "A01-pdu-b.snmprec" in files and "cdu-b.snmprec" in files
    prof = load_profiles()["raritan_pdu2"]
    walk = snmprec.load_walk(tmp_path / "A01-pdu-b.snmprec", prof.columns())
    assert len([r for r in parse(prof, walk).records if r.measurement == "pdu_outlet"]) == 24


async def test_simulator_serve_command_line(tmp_path) -> None:
    import asyncio
    import os
    import sys

    from dcim.agents.snmp.poller import Device, Poller
    from dcim.agents.snmp.profile import load_profiles

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dcim.simulators.snmp", "serve", "--site", H100_HALL, "--port-base", "0", "--step-s", "0.2",
        "--v3-user", "ops", "--v3-auth-env", "SIM_A", "--v3-priv-env", "SIM_P",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SIM_A": "auth-key-123", "SIM_P": "priv-key-123"})
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        ports = json.loads(line)
        assert len(ports) == 18
        devs = [Device("cdu-b", port=ports["cdu-b"]),
                Device("B04-pdu-b", port=ports["B04-pdu-b"], version="3", v3_user="ops",
                       v3_auth_key="auth-key-123", v3_priv_key="priv-key-123")]
        async with Poller(devs, load_profiles()) as poller:
            cdu, pdu = await poller.poll_all()
        assert cdu.ok and cdu.profile == "apc_cooling"
        assert pdu.ok and pdu.profile == "raritan_pdu2"
    finally:
        proc.terminate()
        await proc.wait()
