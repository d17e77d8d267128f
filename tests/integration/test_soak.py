"""The soak under faults, short: 90 s of the real pipeline with every fault of bench/soak.py in turn.

Broker restart, InfluxDB down 10 s, collector SIGKILL, GPU agent restart, SNMP devices silent,
a burst of malformed messages: every point an agent got a PUBACK for is in InfluxDB, no agent
dropped anything, and the alerts the faults must raise reached Alertmanager.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.soak import SoakConfig, run_soak  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_soak_under_faults_loses_nothing_and_raises_the_alerts(mosquitto_factory, influxdb_factory,
                                                                alertmanager_factory, tmp_path):
    broker = mosquitto_factory(start=False)
    influx = influxdb_factory(start=False)
    am = alertmanager_factory(start=False)
    try:
        result = run_soak(SoakConfig(
            duration_s=90, influx_down_s=10, broker_down_s=3, collector_down_s=2,
            snmp_interval_s=5, stale_after_s=12, snmp_silent_s=25,
            gpu_lost_at_s=8, gpu_lost_for_s=15, malformed=100,
            work_dir=tmp_path / "soak", broker=broker, influx=influx, alertmanager=am,
        ))
    finally:
        for srv in (am, influx, broker):
            srv.close()
    print(json.dumps(result))  # the figures, in the test log (-s or on failure)
    assert result["published"] > 0
    assert result["dropped_by_agents"] == 0
    assert result["published_count_inexact"] == []
    assert result["lost"] == 0, f"published {result['published']}, stored {result['stored']}: {result}"
    assert result["dead_lettered_from_agents"] == 0
    assert result["malformed_sent"] == 100
    assert result["dead_lettered"] >= result["malformed_sent"]
    assert result["collector_restarts"] == 1
    assert [f["fault"] for f in result["faults"]] == [
        "broker_restart", "influxdb_down", "collector_sigkill", "gpu_agent_restart", "snmp_devices_silent",
        "malformed_burst"]
    # alerts_seen ⊇ alerts_expected
    assert result["alerts_missing"] == [], result["alerts_missing"]
    assert result["alerts_seen"] == result["alerts_expected"] > 0
    assert set(result["alerts_expected_names"]) <= set(result["alerts_seen_names"])
