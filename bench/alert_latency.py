"""Alert latency: a threshold crossing published on MQTT until a local webhook hears about it.

(a) ours: MQTT -> collector (linger 0) -> live alert engine -> signed webhook;
(b) Prometheus 2.42 scraping an exporter that serves the same MQTT samples (1 s scrape and
    evaluation interval) -> Alertmanager 0.25 (group_wait 0, one group per alert) -> webhook.
Both run in the same process and see the same crossings. Prints one JSON line; asserts nothing.

    .venv/bin/python bench/alert_latency.py [--crossings 100] [--interval-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import paho.mqtt.client as mqtt  # noqa: E402
from prometheus_client import CollectorRegistry, Gauge, start_http_server  # noqa: E402
from pydantic import SecretStr  # noqa: E402

import servers  # noqa: E402  (tests/servers.py: real servers on loopback, no pytest)
from dcim.alerts.engine import Engine  # noqa: E402
from dcim.alerts.live import LiveObserver  # noqa: E402
from dcim.alerts.notifiers import WebhookNotifier  # noqa: E402
from dcim.alerts.rulefile import parse_rule  # noqa: E402
from dcim.collector.app import Collector  # noqa: E402
from dcim.config import CollectorConfig, MqttConfig, default_site  # noqa: E402
from dcim.lineprotocol.encode import encode_record  # noqa: E402
from dcim.lineprotocol.decode import decode  # noqa: E402
from dcim.record import Record  # noqa: E402

THRESHOLD_C = 85.0
SECRET = "bench-hmac-key"


class Receiver:
    """Loopback webhook: first arrival time per (path, node, gpu)."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str, str], float] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                now = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.end_headers()
                for a in json.loads(body).get("alerts", []):
                    if a.get("status") != "firing":
                        continue
                    key = (self.path, a["labels"].get("node", ""), a["labels"].get("gpu", ""))
                    with outer.lock:
                        outer.first.setdefault(key, now)

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Exporter:
    """Serves gpu_temp_c{node,gpu} for Prometheus from the same MQTT stream."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge("gpu_temp_c", "GPU temperature", ["node", "gpu"], registry=self.registry)
        self.httpd, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-exporter")
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        for r in decode(msg.payload.decode()):
            self.gauge.labels(r.tags["node"], r.tags["gpu"]).set(r.fields["temp_c"])

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.httpd.shutdown()


class CollectorThread:
    """The real collector with the live alert engine as its observer, in its own event loop."""

    def __init__(self, mqtt_url: str, topic: str, observer: LiveObserver, work: Path) -> None:
        cfg = CollectorConfig(topics=[topic], client_id="bench-collector", sink="embedded",
                              embedded_path=work / "store", spool_path=work / "spool",
                              dead_letter_path=work / "dead.jsonl", linger_ms=0)
        self.collector: Collector | None = None
        self.cfg, self.url, self.observer = cfg, mqtt_url, observer
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        self.ready.wait(30)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.collector = Collector(self.cfg, MqttConfig(url=self.url), observers=[self.observer])
        task = asyncio.create_task(self.collector.run())
        await self.collector.connected.wait()
        self.ready.set()
        await task

    def close(self) -> None:
        if self.loop is not None and self.collector is not None:
            self.loop.call_soon_threadsafe(self.collector.stop)
        self.thread.join(30)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crossings", type=int, default=100)
    ap.add_argument("--interval-ms", type=float, default=300.0, help="mean time between crossings")
    ap.add_argument("--evaluation-interval-ms", type=float, default=50.0, help="our engine's interval")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="dcim-bench-alerts-"))
    topic = "dcim/bench/alerts"
    n = args.crossings
    series = [(f"bench-n{i // 8:02d}", str(i % 8)) for i in range(n)]

    receiver = Receiver()
    stack = contextlib.ExitStack()
    mosq = servers.Mosquitto(work / "mosquitto")
    stack.callback(mosq.close)
    mosq.start()
    exporter = Exporter(mosq.host, mosq.port, topic)
    stack.callback(exporter.close)
    am = servers.Alertmanager(work / "alertmanager", config={
        "route": {"receiver": "hook", "group_by": ["..."], "group_wait": "0s", "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": receiver.url + "/prometheus"}]}],
    })
    stack.callback(am.close)
    am.start()
    rule = {"groups": [{"name": "bench", "rules": [
        {"alert": "GpuHot", "expr": f"gpu_temp_c > {THRESHOLD_C}", "labels": {"severity": "critical"}}]}]}
    prom = servers.Prometheus(work / "prometheus", targets=[exporter.address], rule_files={"bench.yml": rule},
                              alertmanagers=[am.address], self_scrape=False, scrape_interval_s=1.0,
                              evaluation_interval_s=1.0)
    stack.callback(prom.close)
    prom.start()

    site = default_site()
    engine = Engine([parse_rule({"name": "GpuHot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                                 "threshold": THRESHOLD_C, "severity": "critical"})],
                    site=site, evaluation_interval_s=args.evaluation_interval_ms / 1000)
    hook = WebhookNotifier(receiver.url + "/ours", secret=SecretStr(SECRET), retries=2, backoff_s=0.05)
    observer = LiveObserver(engine, [hook])
    stack.callback(observer.close)
    coll = CollectorThread(mosq.url, topic, observer, work)
    stack.callback(coll.close)

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    pub.connect(mosq.host, mosq.port)
    pub.loop_start()

    def send(node: str, gpu: str, temp: float) -> float:
        t = time.time()
        rec = Record("gpu", {"rack": "A01", "node": node, "gpu": gpu}, {"temp_c": temp}, time.time_ns())
        pub.publish(topic, encode_record(rec).encode(), qos=1)
        return t

    try:
        for node, gpu in series:  # every series exists, cool, before the crossings start
            send(node, gpu, 60.0)
        servers.wait_until(lambda: prom.targets_status() and prom.targets_status()[0]["health"] == "up", 30)
        servers.wait_until(lambda: len(prom.query("gpu_temp_c")) == n, 30, message="all series scraped")
        time.sleep(1.5)
        sent: dict[tuple[str, str], float] = {}
        for node, gpu in series:
            time.sleep(rng.expovariate(1000.0 / args.interval_ms))
            sent[(node, gpu)] = send(node, gpu, 95.0)

        def all_in() -> bool:
            return all(("/ours", *k) in receiver.first and ("/prometheus", *k) in receiver.first for k in sent)

        with contextlib.suppress(TimeoutError):
            servers.wait_until(all_in, 30, message="every crossing notified by both")
    finally:
        pub.loop_stop()
        pub.disconnect()
        stack.close()

    ours = [(receiver.first[("/ours", *k)] - t) * 1000 for k, t in sent.items() if ("/ours", *k) in receiver.first]
    prom_ms = [(receiver.first[("/prometheus", *k)] - t) * 1000 for k, t in sent.items()
               if ("/prometheus", *k) in receiver.first]
    out = {
        "bench": "alert_latency",
        "crossings": n,
        "notified_ours": len(ours),
        "notified_prometheus": len(prom_ms),
        "p50_ms": round(statistics.median(ours), 1) if ours else None,
        "p99_ms": round(percentile(ours, 0.99), 1) if ours else None,
        "max_ms": round(max(ours), 1) if ours else None,
        "prometheus_p50_ms": round(statistics.median(prom_ms), 1) if prom_ms else None,
        "prometheus_p99_ms": round(percentile(prom_ms, 0.99), 1) if prom_ms else None,
        "p99_ratio_prometheus_over_ours": (round(percentile(prom_ms, 0.99) / percentile(ours, 0.99), 1)
                                           if ours and prom_ms else None),
        "goal_p99_ms": 250,
        "goal_ratio": 5,
        "evaluation_interval_ms": args.evaluation_interval_ms,
        "prometheus": {"scrape_interval_s": 1, "evaluation_interval_s": 1, "alertmanager_group_wait_s": 0},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
