"""The shipped Mosquitto configuration keeps the collector's backlog: persistence on, queue raised,
each with its reason, and Mosquitto 2.0 starts with it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import servers

CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


def settings() -> dict[str, str]:
    out = {}
    for line in CONF.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            out.setdefault(key, value)
    return out


def comment_before(key: str) -> str:
    lines = CONF.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(key + " "))
    block = []
    for line in reversed(lines[:i]):
        if not line.startswith("#"):
            break
        block.append(line)
    return " ".join(block)


def test_persistence_and_queue_are_raised_with_reasons():
    s = settings()
    assert s["persistence"] == "true"
    assert int(s["max_queued_messages"]) >= 100_000  # default 1000 drops within seconds of a hall
    assert int(s["autosave_interval"]) <= 300
    assert "lost" in comment_before("persistence")
    assert "drops" in comment_before("max_queued_messages")


def test_mosquitto_starts_with_the_shipped_file(tmp_path):
    class Shipped(servers.Mosquitto):
        def write_config(self) -> None:
            text = CONF.read_text()
            text = text.replace("listener 1883 127.0.0.1", f"listener {self.port} 127.0.0.1")
            text = text.replace("/var/lib/mosquitto/", f"{self.data_dir}/")
            text = re.sub(r"^password_file .*$", "", text, flags=re.M)
            text = text.replace("allow_anonymous false", "allow_anonymous true")
            self.config_path.write_text(text + ("\nuser root\n" if os.geteuid() == 0 else ""))

    try:
        broker = Shipped(tmp_path)
    except servers.MissingBinaryError as exc:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    broker.start()
    try:
        assert broker.is_running()
    finally:
        broker.stop()
