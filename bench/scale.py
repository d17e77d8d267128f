"""Collectors scale out on one machine: N collectors in one MQTT shared-subscription group on a real
Mosquitto 2, writing to one InfluxDB 1.6.7, for N = 1, 2, 4.

For each N, three runs of the same simulated agent stream (bench/ingest.py's messages): steady
(points/s from the first publish until the collectors' /metrics count every point; points per
collector CPU-second), one collector SIGKILLed a third of the way in and restarted under the same
client id (its persistent session gets back what the broker queued for it), and one more collector
joining the group a third of the way in. ``lost`` is published minus the points InfluxDB holds
afterwards (a redelivered point merges with its first copy): it must be 0 in every run.
Also measured in the same run, for docs/scale.md: the bare batched writer's points/s into the same
InfluxDB (the store's limit here), broker messages per Mosquitto CPU-second, InfluxDB points per
influxd CPU-second, collector peak RSS. Prints one JSON line; starts its own servers on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import paho.mqtt.client as mqtt  # noqa: E402
import yaml  # noqa: E402

import servers  # noqa: E402
from ingest import agent_messages, always_field, count_points, cpu_s, peak_rss_mb, raw_writer, written  # noqa: E402

class Collector:
    """One ``dcim collector`` process in the shared group, writing to ``db``."""

    def __init__(self, work: Path, name: str, broker: servers.Mosquitto, influx: servers.InfluxDB, db: str) -> None:
        self.name = name
        self.port = servers.free_tcp_port()
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        self.cfg = d / "collector.yaml"
        self.cfg.write_text(yaml.safe_dump({
            "mqtt": {"url": broker.url},
            # a group of its own per run: the persistent sessions of an earlier run's collectors stay
            # members of their group at the broker (and are sent their share) until they expire
            "collector": {"topics": ["dcim/#"], "shared_group": f"bench-{db}", "client_id": f"bench-{db}-{name}",
                          "sink": "influx",
                          "influx": {"url": influx.url, "api": "v1", "database": db, "timeout_s": 30},
                          "spool_path": str(d / "spool"), "dead_letter_path": str(d / "dead.jsonl"),
                          "metrics": {"port": self.port}},
        }))
        self.log = d / "collector.log"
        self.proc: subprocess.Popen | None = None
        self.cpu_before = 0.0  # CPU seconds of processes of this collector that are gone (killed)
        self.rss_mb = 0.0

    def start(self) -> Collector:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", "from dcim.app.cli import main; main()", "collector",
                                          "--config", str(self.cfg)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)})
        return self

    def wait_connected(self) -> None:
        servers.wait_until(lambda: "dcim_collector_mqtt_connected 1.0" in servers.http_request(
            "GET", f"http://127.0.0.1:{self.port}/metrics", timeout_s=2).text, timeout_s=90)

    def cpu(self) -> float:
        return self.cpu_before + (cpu_s(self.proc.pid) if self.proc and self.proc.poll() is None else 0.0)

    def written(self) -> float:
        try:
            return written(self.port)
        except Exception:  # noqa: BLE001 - killed or restarting: its points are in InfluxDB already
            return 0.0

    def kill(self) -> None:
        assert self.proc is not None
        self.cpu_before += cpu_s(self.proc.pid)
        self.rss_mb = max(self.rss_mb, peak_rss_mb(self.proc.pid))
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.rss_mb = max(self.rss_mb, peak_rss_mb(self.proc.pid))
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def publish(broker: servers.Mosquitto, msgs: list[tuple[str, bytes]], at_third: threading.Event) -> list:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-publisher-{os.getpid()}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    infos = []
    for i, (topic, payload) in enumerate(msgs):
        infos.append(pub.publish(topic, payload, qos=1))
        if i == len(msgs) // 3:
            at_third.set()
    for info in infos:
        info.wait_for_publish(300)
    pub.disconnect()
    pub.loop_stop()
    return infos


def one_run(work: Path, broker: servers.Mosquitto, influx: servers.InfluxDB, msgs: list[tuple[str, bytes]],
            fields: dict[str, str], expected: int, n: int, event: str, run: int) -> dict:
    """N collectors take the stream; ``event``: steady, kill (SIGKILL one, restart it) or join (one more joins)."""
    db = f"scale_{run}"
    influx.create_database(db)
    cols = [Collector(work / db, f"c{i}", broker, influx, db).start() for i in range(n)]
    extra = Collector(work / db, f"c{n}", broker, influx, db) if event == "join" else None
    try:
        for c in cols:
            c.wait_connected()
        started_cpu = sum(c.cpu() for c in cols)  # imports and connecting are not the stream's cost
        broker_cpu0, influx_cpu0 = cpu_s(broker.pid), cpu_s(influx.pid)
        at_third = threading.Event()
        t0 = time.perf_counter()
        sender = threading.Thread(target=publish, args=(broker, msgs, at_third), daemon=True)
        sender.start()
        if event != "steady":
            at_third.wait(300)
            if event == "kill":
                cols[0].kill()
                time.sleep(2.0)  # systemd's RestartSec: the broker queues its share for its session meanwhile
                cols[0].start()
            else:
                cols.append(extra.start())
        # done when InfluxDB holds every point (steady: when the collectors' counters say so, which is
        # cheaper to ask while they ingest); stuck for 30 s: report what was lost
        last, last_change = -1, time.perf_counter()
        while True:
            got = int(sum(c.written() for c in cols)) if event == "steady" else count_points(influx, db, fields)
            if got >= expected:
                break
            if got != last:
                last, last_change = got, time.perf_counter()
            elif time.perf_counter() - last_change > 30:
                break
            time.sleep(0.1 if event == "steady" else 0.5)
        elapsed = time.perf_counter() - t0
        sender.join(120)
        cpu = sum(c.cpu() for c in cols) - started_cpu
        broker_cpu, influx_cpu = cpu_s(broker.pid) - broker_cpu0, cpu_s(influx.pid) - influx_cpu0
    finally:
        for c in cols:
            c.stop()
    stored = count_points(influx, db, fields)
    return {"elapsed_s": elapsed, "points_per_s": expected / elapsed, "collector_cpu_s": cpu,
            "broker_cpu_s": broker_cpu, "influx_cpu_s": influx_cpu, "lost": expected - stored,
            "rss_mb": max(c.rss_mb for c in cols)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--racks", type=int, default=64, help="hall size of the stream (64 racks = 2,048 GPUs)")
    ap.add_argument("--seconds", type=int, default=20, help="seconds of hall telemetry per run")
    ap.add_argument("--collectors", default="1,2,4", help="the N to run")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    msgs, counts = agent_messages(args.racks, args.seconds)
    expected = sum(counts.values())
    fields = always_field(msgs)
    broker = servers.Mosquitto(work / "mosquitto")
    influx = servers.InfluxDB(work / "influxdb")
    broker.start()
    influx.start()
    out: list[dict] = []
    run = 0
    try:
        influx.create_database("raw")
        influx_cpu0 = cpu_s(influx.pid)
        t0 = time.perf_counter()
        store_pps = raw_writer(influx, "raw", msgs)
        store_cpu = cpu_s(influx.pid) - influx_cpu0
        store_wall = time.perf_counter() - t0
        for n in (int(x) for x in args.collectors.split(",")):
            row: dict = {"collectors": n}
            for event in ("steady", "kill", "join"):
                run += 1
                r = one_run(work, broker, influx, msgs, fields, expected, n, event, run)
                if event == "steady":
                    row.update({
                        "points_per_s": round(r["points_per_s"]),
                        "points_per_s_per_core": round(expected / max(r["collector_cpu_s"], 1e-9)),
                        "broker_msgs_per_cpu_s": round(len(msgs) / max(r["broker_cpu_s"], 1e-9)),
                        "influx_points_per_cpu_s": round(expected / max(r["influx_cpu_s"], 1e-9)),
                        "collector_peak_rss_mb": round(r["rss_mb"], 1),
                        "lost": r["lost"],
                    })
                else:
                    row[f"lost_when_{'killed' if event == 'kill' else 'joined'}"] = r["lost"]
                    row[f"points_per_s_{event}"] = round(r["points_per_s"])
            out.append(row)
    finally:
        influx.stop()
        broker.stop()
    print(json.dumps({
        "bench": "scale",
        "points": expected,
        "messages": len(msgs),
        "gpus": args.racks * 32,
        "runs": out,
        "lost": sum(r["lost"] + r["lost_when_killed"] + r["lost_when_joined"] for r in out),
        "store_points_per_s": round(store_pps),
        "store_points_per_cpu_s": round(expected / max(store_cpu, 1e-9)) if store_cpu > 0.05 * store_wall else None,
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
