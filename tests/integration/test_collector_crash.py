"""The collector killed with SIGKILL mid-stream, and started again: nothing is lost. Also with
its points sitting in the disk spool at the moment of the kill, and with the broker restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import servers
import yaml

from dcim.config import CollectorConfig, InfluxConfig
from tests.collector.helpers import (
    Publisher,
    all_records,
    expected_rows,
    gpu_messages,
    influx_count,
    influx_records,
    metric,
    running,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration
TAGS = ("site", "rack", "node", "gpu")
ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"DCIM_TEST_MQTT_PW": "mqtt-pw-8c1f", "DCIM_TEST_INFLUX_PW": "influx-pw-77ad"}


class CollectorProcess:
    """``dcim collector --config FILE`` as a child process that a test can SIGKILL."""

    def __init__(self, config_path: Path, metrics_port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.metrics_port = metrics_port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from dcim.app.cli import main; main()", "collector", "--config", str(self.config_path)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **SECRETS},
        )
        servers.wait_until(lambda: "dcim_collector_mqtt_connected 1.0" in self.metrics(), timeout_s=30,
                           message=f"collector connected (log {self.log_path})")

    def metrics(self) -> str:
        resp = servers.http_request("GET", f"http://127.0.0.1:{self.metrics_port}/metrics", timeout_s=2)
        return resp.text

    def value(self, name: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the collector died on its own"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def write_config(tmp_path: Path, run: str, mqtt_url: str, influx_url: str, db: str, metrics_port: int) -> Path:
    p = tmp_path / "collector.yaml"
    p.write_text(yaml.safe_dump({
        "mqtt": {"url": mqtt_url, "username": "collector", "password": {"env": "DCIM_TEST_MQTT_PW"}},
        "collector": {
            "topics": [f"dcim/{run}/#"], "client_id": f"collector-{run}", "sink": "influx",
            "influx": {"url": influx_url, "api": "v1", "database": db, "timeout_s": 3,
                       "username": "collector", "password": {"env": "DCIM_TEST_INFLUX_PW"}},
            "spool_path": str(tmp_path / "spool"), "dead_letter_path": str(tmp_path / "dead.jsonl"),
            "linger_ms": 200, "retry_max_s": 0.5, "metrics": {"host": "127.0.0.1", "port": metrics_port},
        },
    }))
    return p


def test_sigkill_mid_stream_then_restart_loses_nothing(mosquitto, influxdb_factory, tmp_path):
    influx = influxdb_factory()
    run = uid()
    db = f"c{run}"
    influx.create_database(db)
    port = servers.free_tcp_port()
    col = CollectorProcess(write_config(tmp_path, run, mosquitto.url, influx.url, db, port), port,
                           tmp_path / "collector.log")
    msgs = gpu_messages(f"dcim/{run}", 1500)
    col.start()
    try:
        pub = Publisher(mosquitto.host, mosquitto.port)
        # phase 1: a steady stream, and a kill -9 in the middle of it
        sender = threading.Thread(target=pub.publish, args=(msgs[:1000],), kwargs={"delay_s": 0.002})
        sender.start()
        servers.wait_until(lambda: influx_count(influx, db) >= 1600, timeout_s=60, message="points flowing")
        col.kill()
        sender.join(120)
        col.start()  # same client id: the broker kept our session and the unacknowledged messages
        servers.wait_until(lambda: influx_count(influx, db) >= 8000, timeout_s=90, message="phase 1 complete")

        # phase 2: InfluxDB away, points acknowledged from the spool, then kill -9 with a full spool
        influx.stop()
        pub.publish(msgs[1000:])
        servers.wait_until(lambda: col.value("dcim_collector_spool_points") >= 4000, timeout_s=60,
                           message="500 messages spooled")
        col.kill()
        influx.start()
        col.start()
        servers.wait_until(lambda: influx_count(influx, db) >= 12000, timeout_s=90, message="spool drained")
        pub.close()
        text = col.metrics()
        for name in ("dcim_collector_points_written_total", "dcim_collector_spool_bytes", "dcim_collector_rejected_total",
                     "dcim_collector_batch_latency_seconds_bucket", "dcim_collector_sink_errors_total",
                     "dcim_collector_mqtt_connected 1.0", "dcim_collector_spool_segments"):
            assert name in text, name
    finally:
        col.stop()
    log_text = (tmp_path / "collector.log").read_text()
    assert "spool" in log_text  # the outage was told
    for secret in SECRETS.values():
        assert secret not in log_text and secret not in text
    assert influx_records(influx, db, "gpu", TAGS) == expected_rows(all_records(msgs), TAGS)


async def test_broker_restart_mid_stream_loses_nothing(mosquitto_factory, influxdb, tmp_path):
    broker = mosquitto_factory()  # persistence on: sessions and queued messages survive the restart
    run = uid()
    db = f"c{run}"
    influxdb.create_database(db)
    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", sink="influx",
                          influx=InfluxConfig(url=influxdb.url, database=db), spool_path=tmp_path / "spool",
                          dead_letter_path=tmp_path / "dead.jsonl", linger_ms=100)
    msgs = gpu_messages(f"dcim/{run}", 400)
    async with running(cfg, broker.url) as c:
        pub = Publisher(broker.host, broker.port)
        await asyncio.to_thread(pub.publish, msgs[:200])
        pub.close()
        await asyncio.to_thread(broker.stop)
        await wait_for(lambda: metric(c, "dcim_collector_mqtt_connected") == 0, what="collector sees the broker go")
        await asyncio.to_thread(broker.start)
        await wait_for(lambda: metric(c, "dcim_collector_mqtt_connected") == 1, what="collector reconnected")
        pub = Publisher(broker.host, broker.port)
        await asyncio.to_thread(pub.publish, msgs[200:])
        pub.close()
        await wait_for(lambda: influx_count(influxdb, db) >= 3200, what="every point after the broker restart")
    assert influx_records(influxdb, db, "gpu", TAGS) == expected_rows(all_records(msgs), TAGS)
    assert metric(c, "dcim_collector_mqtt_connects_total") >= 2
