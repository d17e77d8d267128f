"""Secrets (InfluxDB passwords and tokens, SNMP communities and keys) never reach logs, errors or /metrics."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import uuid

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dcim.agents.snmp.poller import Device, Poller
from dcim.agents.snmp.profile import load_profiles
from dcim.collector.sinks import InfluxSink
from dcim.config import InfluxConfig, Secret
from dcim.errors import SinkError

pytestmark = pytest.mark.integration

CANARY = "Canary-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def secured_influx(influxdb_factory):
    srv = influxdb_factory(auth_enabled=True)
    # the first user may be created without credentials; from then on every request needs them
    srv.query(f"CREATE USER admin WITH PASSWORD '{CANARY}' WITH ALL PRIVILEGES")
    srv.username, srv.password = "admin", CANARY
    srv.create_database("sec")
    yield srv
    srv.close()


def test_influx_password_works_and_a_wrong_one_is_reported_without_it(secured_influx, monkeypatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DCIM_TEST_INFLUX_PW", CANARY)
    cfg = InfluxConfig(url=secured_influx.url, api="v1", database="sec", username="admin",
                       password=Secret(env="DCIM_TEST_INFLUX_PW"))
    sink = InfluxSink(cfg)
    asyncio.run(sink.write(b"gpu,node=n1 temp_c=40.5 1767225600000000000\n"))
    assert secured_influx.points("SELECT temp_c FROM gpu", "sec")[0]["temp_c"] == 40.5
    sink.close()

    wrong = "wrong-" + CANARY
    monkeypatch.setenv("DCIM_TEST_INFLUX_PW", wrong)
    bad = InfluxSink(cfg)
    with pytest.raises(SinkError) as info:
        asyncio.run(bad.write(b"gpu,node=n1 temp_c=41.5 1767225600000000001\n"))
    bad.close()
    message = str(info.value)
    assert secured_influx.url in message or "influxdb" in message  # it names the store ...
    for secret in (CANARY, wrong):
        assert secret not in message  # ... never the password
        assert secret not in caplog.text
        assert secret not in repr(cfg) and secret not in str(cfg.model_dump())


def test_snmp_community_and_v3_keys_stay_out_of_errors_logs_and_metrics(snmpsim_factory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    sim = snmpsim_factory(records={"public": "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.318.1.3.4.6\n"},
                          v3_user="ops", v3_auth_key="auth-" + CANARY[:12], v3_priv_key="priv-" + CANARY[:12])
    wrong_community = "comm-" + CANARY
    wrong_auth = "wrongauth-" + CANARY
    devices = [
        Device("pdu-v2", port=sim.port, community=wrong_community, timeout_s=0.5, retries=0, profile="apc_rpdu2"),
        Device("pdu-v3", port=sim.port, version="3", v3_user="ops", v3_auth_key=wrong_auth,
               v3_priv_key="priv-" + CANARY, v3_context="public", timeout_s=0.5, retries=0, profile="apc_rpdu2"),
    ]
    registry = CollectorRegistry()

    async def poll():
        async with Poller(devices, load_profiles(), registry=registry) as poller:
            return await poller.poll_all()

    polls = asyncio.run(poll())
    assert [p.ok for p in polls] == [False, False]
    exposed = generate_latest(registry).decode() + caplog.text + repr(devices)
    for p in polls:
        exposed += (p.error or "") + str(p.health.fields)
    for secret in (wrong_community, wrong_auth, "priv-" + CANARY):
        assert secret not in exposed


def test_snmp_cli_community_from_environment_is_not_echoed(snmpsim_factory) -> None:
    sim = snmpsim_factory(records={"public": "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.318.1.3.4.6\n"})
    secret = "env-" + CANARY
    proc = subprocess.run(
        [sys.executable, "-m", "dcim.app.cli", "-vv", "agent", "snmp", "--target", f"127.0.0.1:{sim.port}",
         "--community-env", "DCIM_TEST_COMMUNITY", "--profile", "apc_rpdu2", "--timeout-s", "0.5",
         "--retries", "0", "--once"],
        capture_output=True, text=True, timeout=60, env={"DCIM_TEST_COMMUNITY": secret, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode != 0  # a wrong community: the device never answers
    assert "127.0.0.1" in proc.stdout + proc.stderr
    assert secret not in proc.stdout + proc.stderr


def test_record_from_influx_authenticates_by_header_and_keeps_the_password_out(secured_influx, tmp_path) -> None:
    """`dcim record --from-influx --user --password-env` reads a password-protected InfluxDB 1.x
    (credentials in an Authorization header: InfluxDB ignores them in a form body); credentials in
    the URL are refused before anything is written, without being repeated."""
    secured_influx.write("gpu,node=n1,gpu=0 temp_c=40.5 1767225600000000000\n", "sec")
    out = tmp_path / "rec.lp.gz"
    env = {"DCIM_TEST_INFLUX_PW": CANARY, "PATH": "/usr/bin:/bin"}
    base = [sys.executable, "-m", "dcim.app.cli", "record", "--db", "sec", "--start", "1767225599", "--end", "1767225601"]
    done = subprocess.run([*base, "--from-influx", secured_influx.url, "--user", "admin",
                           "--password-env", "DCIM_TEST_INFLUX_PW", "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    import gzip

    text = gzip.decompress(out.read_bytes()).decode()
    assert "temp_c=40.5" in text and CANARY not in text and CANARY not in done.stderr

    wrong = subprocess.run([*base, "--from-influx", secured_influx.url, "--user", "admin",
                            "--password-env", "WRONG_PW", "-o", str(tmp_path / "w.lp.gz")],
                           capture_output=True, text=True, env={**env, "WRONG_PW": "wrong-" + CANARY}, timeout=120,
                           check=False)
    assert wrong.returncode != 0 and "401" in wrong.stderr and CANARY not in wrong.stderr

    host = secured_influx.url.split("://", 1)[1]
    for url in (f"http://admin:{CANARY}@{host}", f"{secured_influx.url}/?u=admin&p={CANARY}"):
        refused = subprocess.run([*base, "--from-influx", url, "-o", str(tmp_path / "x.lp.gz")],
                                 capture_output=True, text=True, env=env, timeout=120, check=False)
        said = refused.stderr + refused.stdout
        assert refused.returncode != 0 and ("credential" in said or "password" in said), said
        assert CANARY not in refused.stderr + refused.stdout
        assert not (tmp_path / "x.lp.gz").exists()


def test_credentials_in_any_url_fail_the_configuration_check_without_being_echoed(tmp_path) -> None:
    import yaml

    cases = {
        "mqtt.url": {"mqtt": {"url": f"mqtt://dcim:{CANARY}@127.0.0.1:1883"}},
        "collector.influx.url": {"collector": {"influx": {"url": f"http://127.0.0.1:8086/?u=a&p={CANARY}"}}},
        "alerts.notifiers[0].url": {"alerts": {"notifiers": [{"kind": "alertmanager",
                                                              "url": f"http://am:{CANARY}@127.0.0.1:9093"}]}},
        "alerts.notifiers[0].url ": {"alerts": {"notifiers": [{"kind": "webhook",
                                                               "url": f"https://hook.example/x?token={CANARY}"}]}},
    }
    for where, doc in cases.items():
        p = tmp_path / "site.yaml"
        p.write_text(yaml.safe_dump(doc))
        done = subprocess.run([sys.executable, "-m", "dcim.app.cli", "config", "check", str(p)], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode != 0, where
        assert where.strip() in done.stderr + done.stdout, (where, done.stderr)
        assert CANARY not in done.stderr + done.stdout, where
