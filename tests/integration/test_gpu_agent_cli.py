"""``dcim agent gpu`` run mode as a process: polls over MQTT, /metrics, clean stop, and the last will on a kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import urllib.request

import paho.mqtt.client as mqtt
import pytest
import yaml
from servers import free_tcp_port, wait_until

from dcim.lineprotocol.decode import decode

pytestmark = pytest.mark.integration

TOPIC = "dcim/dc1/A02/A02-n03/gpu"


def _subscriber(broker) -> tuple[mqtt.Client, list]:
    got: list = []
    lock = threading.Lock()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(_c, _u, msg) -> None:
        with lock:
            got.append((msg.topic, bytes(msg.payload), msg.retain))

    c.on_message = on_message
    c.connect(broker.host, broker.port, keepalive=10)
    c.subscribe(f"{TOPIC}/#", qos=1)
    c.loop_start()
    return c, got


def _start(tmp_path, broker, metrics_port: int) -> subprocess.Popen:
    cfg = {
        "site": "dc1",
        "rooms": [{"name": "r", "rows": [{"name": "x", "racks": [{"name": "A02", "nodes": 3}]}]}],
        "mqtt": {"url": broker.url, "keepalive_s": 5},
        "gpu_agent": {"interval_s": 0.2, "simulate": True, "metrics": {"port": metrics_port}},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen([sys.executable, "-m", "dcim.app.cli", "agent", "gpu", "--site", str(path), "--node", "A02-n03"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_run_mode_publishes_serves_metrics_and_says_offline(tmp_path, mosquitto) -> None:
    port = free_tcp_port()
    sub, got = _subscriber(mosquitto)
    proc = _start(tmp_path, mosquitto, port)
    try:
        wait_until(lambda: sum(t == TOPIC for t, _, _ in got) >= 2, 30, 0.05, "two polls over MQTT")
        records = list(decode(next(p for t, p, _ in got if t == TOPIC).decode()))
        assert sum(r.measurement == "gpu" for r in records) == 8
        body = wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read(), 10)
        assert b'DCGM_FI_DEV_GPU_TEMP{' in body and b'Hostname="A02-n03"' in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        wait_until(lambda: (f"{TOPIC}/status", b"offline", False) in got, 10, 0.05, "offline status")
        assert [p for t, p, _ in got if t == f"{TOPIC}/status"][0] == b"online"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sub.loop_stop()
        sub.disconnect()


def test_killed_agent_leaves_offline_through_its_last_will(tmp_path, mosquitto) -> None:
    sub, got = _subscriber(mosquitto)
    proc = _start(tmp_path, mosquitto, 0)
    try:
        wait_until(lambda: (f"{TOPIC}/status", b"online", False) in got, 30, 0.05, "online status")
        proc.kill()  # no clean disconnect: only the broker's will can say offline
        proc.wait(5)
        wait_until(lambda: (f"{TOPIC}/status", b"offline", False) in got, 15, 0.05, "last will")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sub.loop_stop()
        sub.disconnect()
