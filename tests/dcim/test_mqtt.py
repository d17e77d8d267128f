"""The MQTT boundary: configuration to client arguments, TLS, credentials, errors in our words."""

from __future__ import annotations

import ssl

import pytest

from dcim import mqtt
from dcim.config import MqttConfig, Secret
from dcim.errors import ConfigError


def test_client_args_carry_address_credentials_and_tls(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MQ_PW", "pw-1")
    cfg = MqttConfig(url="mqtts://broker.example:8884", username="agent", password=Secret(env="MQ_PW"))
    args = mqtt.client_args(cfg, identifier="me", clean_start=False)
    assert (args["hostname"], args["port"], args["identifier"], args["clean_start"]) == ("broker.example", 8884, "me", False)
    assert (args["username"], args["password"]) == ("agent", "pw-1")
    assert isinstance(args["tls_context"], ssl.SSLContext) and args["tls_context"].verify_mode == ssl.CERT_REQUIRED
    plain = mqtt.client_args(MqttConfig(url="mqtt://127.0.0.1"))
    assert plain["port"] == 1883 and "tls_context" not in plain and "username" not in plain
    with pytest.raises(ConfigError, match="TLS files"):
        mqtt.client_args(MqttConfig(url="mqtt://h", ca_file=tmp_path / "missing.crt"))


def test_address_refuses_other_schemes_and_credentials() -> None:
    assert mqtt.broker_address("mqtt://127.0.0.1:1999") == ("127.0.0.1", 1999, False)
    with pytest.raises(ConfigError, match="scheme"):
        mqtt.broker_address("http://127.0.0.1:1883")
    with pytest.raises(ConfigError, match="user name or password") as info:
        mqtt.broker_address("mqtt://u:hunter2@h")
    assert "hunter2" not in str(info.value)


def test_errors_are_described_without_secrets() -> None:
    assert "refused our credentials" in mqtt.describe(Exception("[code:134] Bad user name or password"))
    assert "TLS failed" in mqtt.describe(ssl.SSLError("certificate verify failed"))


def test_aiomqtt_internals_are_touched_in_one_place_only() -> None:
    """The private aiomqtt 2.x attributes manual acknowledgement needs appear only in dcim/mqtt.py."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    private = re.compile(r"client\._(client|queue|disconnected)\b|manual_ack_set|\._client\._|\bpaho\._sock\b")
    offenders = []
    for folder in ("agents", "collector", "alerts", "simulators", "dcim", "bench"):
        for path in (root / folder).rglob("*.py"):
            if path == root / "dcim" / "mqtt.py":
                continue
            if private.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
