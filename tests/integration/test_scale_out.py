"""Collectors scale out on one machine: ``dcim collector`` processes in one shared-subscription group
on a real Mosquitto 2 lose nothing when one is SIGKILLed mid-stream and comes back under its client
id, or when one more joins mid-stream (bench/scale.py measures the same runs for N = 1, 2, 4)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from scale import agent_messages, always_field, count_points, one_run  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stream():
    msgs, counts = agent_messages(8, 12)  # 256 GPUs with their PDUs and CDUs, 12 s: 600 messages
    return msgs, always_field(msgs), sum(counts.values())


@pytest.mark.parametrize("event", ["kill", "join"])
def test_two_collectors_in_a_shared_group_lose_nothing(mosquitto, influxdb, tmp_path, stream, event):
    msgs, fields, expected = stream
    run = 900_000 + (1 if event == "kill" else 2) + hash(str(tmp_path)) % 1000 * 10
    r = one_run(tmp_path, mosquitto, influxdb, msgs, fields, expected, 2, event, run)
    db = f"scale_{run}"
    assert count_points(influxdb, db, fields) == expected
    assert r["lost"] == 0
    influxdb.drop_database(db)
