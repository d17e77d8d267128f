"""Ingest throughput: simulated agent messages -> Mosquitto -> collector -> InfluxDB 1.6.7, against a
bare batched HTTP writer sending the same points straight to the same InfluxDB in the same run.

Prints one JSON line: points_per_s (collector: publish start until its /metrics says every point
is written), raw_points_per_s (the bare writer, run before and after the collector into fresh
databases; the mean), ratio_vs_raw_writer (goal >= 0.7), lost (published minus counted in InfluxDB
afterwards; must be 0), collector_peak_rss_mb (goal < 200), collector_cpu_us_per_point,
cpu_s_during_run (CPU seconds of the collector, InfluxDB, Mosquitto and the publisher while the
collector ingests) and cpu_busy_pct (their sum over the machine's cores and the run's wall time).
Starts its own servers on loopback ports.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
import yaml  # noqa: E402

import servers  # noqa: E402
from dcim.lineprotocol.encode import encode_record  # noqa: E402


def agent_messages(racks: int, steps: int, base_steps: int = 2) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    """One message per device poll (a node's GPUs, a PDU with its phases/outlets/probes, a CDU loop),
    ``steps`` seconds of a hall of ``racks`` racks; expected point count per measurement.

    The simulator runs ``base_steps`` real steps; later seconds repeat them shifted in time (the
    collector's cost does not depend on the values)."""
    from dcim.simulators.hall import Hall
    from dcim.sites import make_site

    hall = Hall(make_site(racks))
    base = []
    for _ in range(base_steps):
        hall.step(1.0)
        base.append(hall.records())
    t_first = base[0][0].time_ns
    site = base[0][0].tags.get("site", "sim")
    msgs: list[tuple[str, bytes]] = []
    counts: dict[str, int] = defaultdict(int)
    for s in range(steps):
        recs = base[s % base_steps]
        shift = (s - s % base_steps) * 10**9
        groups: dict[tuple, list[str]] = defaultdict(list)
        for r in recs:
            t = r.tags
            if r.measurement in ("gpu", "gpu_xid"):
                key = ("gpu", t.get("rack"), t.get("node"))
            elif r.measurement.startswith("pdu") or r.measurement == "env":
                key = ("snmp", t.get("rack"), t.get("pdu"))
            else:
                key = ("snmp", r.measurement, t.get("loop") or t.get("rack"))
            line = encode_record(r)
            if shift:
                head, _, ts = line.rpartition(" ")
                line = f"{head} {int(ts) + shift}"
            groups[key].append(line)
            counts[r.measurement] += 1
        for (kind, a, b), lines in groups.items():
            # the agents' topic layout <prefix>/<site>/<rack>/<device>/<kind>: the collector checks
            # a line's device tags against it
            msgs.append((f"dcim/{site}/{a}/{b}/{kind}", "\n".join(lines).encode()))
    assert t_first is not None
    return msgs, dict(counts)


def count_points(influx: servers.InfluxDB, db: str, fields: dict[str, str]) -> int:
    total = 0
    for meas, fld in fields.items():
        rows = influx.points(f'SELECT count("{fld}") FROM "{meas}"', db)
        total += int(rows[0]["count"]) if rows else 0
    return total


def always_field(msgs: list[tuple[str, bytes]]) -> dict[str, str]:
    """For each measurement a field every one of its points carries (to count points)."""
    from dcim.lineprotocol.decode import decode

    seen: dict[str, set[str]] = {}
    for _, payload in msgs[:5000]:
        for r in decode(payload):
            names = set(r.fields)
            seen[r.measurement] = seen[r.measurement] & names if r.measurement in seen else names
    return {m: sorted(f)[0] for m, f in seen.items()}


def raw_writer(influx: servers.InfluxDB, db: str, msgs: list[tuple[str, bytes]], batch: int = 5000) -> float:
    """The limit: the same lines in batches of ``batch`` over one keep-alive HTTP connection."""
    lines = [line for _, p in msgs for line in p.decode().split("\n")]
    bodies = [("\n".join(lines[i : i + batch]) + "\n").encode() for i in range(0, len(lines), batch)]
    conn = http.client.HTTPConnection(influx.host, influx.port, timeout=60)
    t0 = time.perf_counter()
    for body in bodies:
        conn.request("POST", f"/write?db={db}&precision=ns", body)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise RuntimeError(f"raw writer got HTTP {resp.status}")
    dt = time.perf_counter() - t0
    conn.close()
    return len(lines) / dt


def written(port: int) -> float:
    text = servers.http_request("GET", f"http://127.0.0.1:{port}/metrics", timeout_s=5).text
    for line in text.splitlines():
        if line.startswith("dcim_collector_points_written_total{"):
            return float(line.split()[-1])
    return 0.0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--racks", type=int, default=128, help="hall size (128 racks = 4,096 GPUs)")
    ap.add_argument("--seconds", type=int, default=30, help="seconds of hall telemetry to push")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    msgs, counts = agent_messages(args.racks, args.seconds)
    expected = sum(counts.values())
    fields = always_field(msgs)

    broker = servers.Mosquitto(work / "mosquitto")
    influx = servers.InfluxDB(work / "influxdb")
    broker.start()
    influx.start()
    proc = None
    try:
        for db in ("raw", "raw_after", "collector"):
            influx.create_database(db)
        raw_before = raw_writer(influx, "raw", msgs)

        port = servers.free_tcp_port()
        cfg = work / "collector.yaml"
        cfg.write_text(yaml.safe_dump({
            "mqtt": {"url": broker.url},
            "collector": {"topics": ["dcim/#"], "client_id": "bench-collector", "sink": "influx",
                          "influx": {"url": influx.url, "api": "v1", "database": "collector", "timeout_s": 30},
                          "spool_path": str(work / "spool"), "dead_letter_path": str(work / "dead.jsonl"),
                          "metrics": {"port": port}},
        }))
        log = open(work / "collector.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-c", "from dcim.app.cli import main; main()", "collector",
                                 "--config", str(cfg)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        servers.wait_until(
            lambda: "dcim_collector_mqtt_connected 1.0" in servers.http_request(
                "GET", f"http://127.0.0.1:{port}/metrics", timeout_s=2).text, timeout_s=60)

        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
        pub.max_inflight_messages_set(1000)
        pub.max_queued_messages_set(0)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        # every process's CPU during the run: on a small machine they share the cores, and the
        # collector's share is what the raw writer does not pay
        def cpu_now() -> dict[str, float]:
            return {"collector": cpu_s(proc.pid), "influxdb": cpu_s(influx.pid), "broker": cpu_s(broker.pid),
                    "publisher": time.process_time()}

        cpu_start = cpu_now()
        t0 = time.perf_counter()
        infos = [pub.publish(topic, payload, qos=1) for topic, payload in msgs]
        done = threading.Event()

        def wait_published() -> None:
            for info in infos:
                info.wait_for_publish(120)
            done.set()

        threading.Thread(target=wait_published, daemon=True).start()
        # done when the collector says every point is written (its /metrics is cheap to ask;
        # counting in InfluxDB while it ingests would slow down the very thing measured)
        last, last_change = -1.0, time.perf_counter()
        while True:
            n = written(port)
            if n >= expected:
                break
            if n != last:
                last, last_change = n, time.perf_counter()
            elif time.perf_counter() - last_change > 30:
                break  # stuck: report what was lost
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        used = {k: v - cpu_start[k] for k, v in cpu_now().items()}
        done.wait(30)
        pub.disconnect()
        pub.loop_stop()
        rss = peak_rss_mb(proc.pid)
        pps = written(port) / elapsed
        got = count_points(influx, "collector", fields)
        # the limit again, after: on a shared machine the load drifts, so the mean of both is the limit
        raw_after = raw_writer(influx, "raw_after", msgs)
        raw_pps = (raw_before + raw_after) / 2
        print(json.dumps({
            "bench": "ingest",
            "points": expected,
            "messages": len(msgs),
            "gpus": args.racks * 32,
            "points_per_s": round(pps),
            "raw_points_per_s": round(raw_pps),
            "raw_points_per_s_before_after": [round(raw_before), round(raw_after)],
            "ratio_vs_raw_writer": round(pps / raw_pps, 3),
            "lost": expected - got,
            "collector_peak_rss_mb": round(rss, 1),
            "collector_cpu_us_per_point": round(used["collector"] / max(got, 1) * 1e6, 1),
            "cpu_s_during_run": {k: round(v, 1) for k, v in used.items()},
            "cpu_busy_pct": round(100 * sum(used.values()) / (elapsed * (os.cpu_count() or 1)), 1),
            "load_avg_1m": round(os.getloadavg()[0], 1),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        influx.stop()
        broker.stop()


if __name__ == "__main__":
    main()
