"""The deployment files stay true: the hall config validates, its profiles exist, the units run real commands."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcim.agents.snmp.profile import load_profiles
from dcim.app.cli import cli
from dcim.config import load_site

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_hall_config_validates_and_names_real_profiles() -> None:
    site = load_site(DEPLOY / "site.yaml")
    assert site.collector.sink == "influx" and site.collector.influx.api == "v2"
    assert site.collector.influx.token is not None and site.collector.influx.token.env == "DCIM_INFLUX_TOKEN"
    assert site.mqtt.password is not None and site.mqtt.password.env
    profiles = load_profiles()
    for dev in site.snmp_agent.devices:
        assert dev.profile == "auto" or dev.profile in profiles, dev.profile
        assert dev.community is not None or dev.v3 is not None


def test_env_examples_hold_no_values() -> None:
    for f in (DEPLOY / "env").glob("*.example"):
        for line in f.read_text().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                assert name.startswith("DCIM_") and value == "", f"{f.name}: {line}"


@pytest.mark.parametrize("unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=lambda p: p.name)
def test_systemd_unit_runs_a_real_dcim_command(unit: Path) -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read(unit)
    argv = shlex.split(cp["Service"]["ExecStart"])
    assert argv[0].endswith("/dcim")
    # the subcommand and every option it is given exist: ask for --help with the same words
    first_opt = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    command, options = argv[1:first_opt], [a for a in argv[first_opt:] if a.startswith("--")]
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for opt in options:
        assert opt in result.output
    assert cp["Service"]["User"] == "dcim"
    assert cp["Service"]["EnvironmentFile"].startswith("/etc/dcim/")


def test_alertmanager_config_is_accepted_by_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is missing (Debian package prometheus-alertmanager; scripts/install.sh --test)")
    out = subprocess.run([amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_alertmanager_config_carries_the_engines_inhibition() -> None:
    import yaml

    from dcim.alerts.notifiers import alertmanager_config

    shipped = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    wanted = alertmanager_config("oncall")
    assert shipped["inhibit_rules"] == wanted["inhibit_rules"]
    assert shipped["route"]["group_by"] == wanted["route"]["group_by"]
    assert {r["name"] for r in wanted["receivers"]} <= {r["name"] for r in shipped["receivers"]}
