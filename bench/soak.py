"""Soak under faults: the real pipeline runs for a while and loses nothing while its parts fail in turn.

Mosquitto, InfluxDB 1.6 and Alertmanager (the harness's server classes), the collector with the
InfluxDB v1 sink and the live alert engine, the GPU agent on the simulated NVML backend and the
SNMP agent polling the simulated hall's PDUs and CDUs, each a real process on loopback. After a
steady period each, it injects in turn: a broker restart, InfluxDB down, the collector killed
with SIGKILL and started again, a GPU agent restart, the SNMP devices hung (SIGSTOP), and a burst
of malformed messages straight to the broker. Then it stops the agents and counts.

    .venv/bin/python bench/soak.py                          # 10 minutes, InfluxDB down 60 s
    .venv/bin/python bench/soak.py --duration 3m --influx-down-s 30

One JSON line: published (points inside messages the broker acknowledged to the agents, summed
over agent restarts), stored (distinct points in InfluxDB), lost = published - stored (must be
0), dropped_by_agents (must be 0), alerts_expected / alerts_seen (counts, names, and the missing
ones), malformed_sent, dead_lettered, collector_restarts, each fault's time, and the machine.
See docs/soak.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402

import servers  # noqa: E402
from dcim.alerts.rulefile import DEFAULT_RULES_DIR  # noqa: E402
from dcim.config import DEFAULT_SITE, load_site  # noqa: E402
from dcim.simulators.scenarios import parse_duration  # noqa: E402

#: Measurements that the collector itself adds (alert transitions), not the agents.
OBSERVER_MEASUREMENTS = frozenset({"alert"})
MALFORMED_PREFIX = "dcim/soak-malformed"
#: The publisher's exact totals, logged when an agent stops (agents/publisher.py).
STOP_LINE = re.compile(r"(\w+): stopped; the broker acknowledged (\d+) messages \((\d+) points\); "
                       r"(\d+) dropped, (\d+) unacknowledged")


@dataclass
class SoakConfig:
    duration_s: float = 600.0
    influx_down_s: float = 60.0
    #: how long the SNMP devices stay silent; default: long enough for the stale rules to fire
    snmp_silent_s: float | None = None
    #: ``after`` of the SNMP stale rules (PduTelemetryStale, CoolantTelemetryStale); None: the pack's
    stale_after_s: float | None = None
    snmp_interval_s: float = 10.0
    gpu_interval_s: float = 1.0
    broker_down_s: float = 5.0
    collector_down_s: float = 3.0
    malformed: int = 200
    node: str = "A01-n01"
    lost_gpu: int = 3
    #: the simulated GPU falls off the bus this long after each GPU agent start, for gpu_lost_for_s
    gpu_lost_at_s: float = 20.0
    gpu_lost_for_s: float = 30.0
    drain_timeout_s: float = 180.0
    work_dir: Path | None = None
    keep: bool = False
    seed: int = 42
    #: the live alert engine in the collector (off only to look at the data path alone)
    alerts: bool = True
    log: Any = field(default=None, repr=False)
    #: servers to use instead of starting our own (tests pass the harness fixtures' objects); the
    #: caller closes them
    broker: Any = field(default=None, repr=False)
    influx: Any = field(default=None, repr=False)
    alertmanager: Any = field(default=None, repr=False)


# --- small helpers ------------------------------------------------------------------------------


def _say(cfg: SoakConfig, t0: float, text: str) -> None:
    line = f"[soak {time.monotonic() - t0:7.1f} s] {text}"
    if cfg.log is not None:
        cfg.log(line)
    else:
        print(line, file=sys.stderr, flush=True)


def _metrics(port: int) -> dict[str, float]:
    """A /metrics page as {name{labels}: value}; {} when it does not answer."""
    try:
        text = servers.http_request("GET", f"http://127.0.0.1:{port}/metrics", timeout_s=3).text
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


def _metric(values: dict[str, float], name: str) -> float:
    """Sum of a metric over its label sets."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def _free_udp_range(n: int) -> int:
    """A base port with ``n`` consecutive free loopback UDP ports after it."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    msg = f"no {n} consecutive free UDP ports"
    raise RuntimeError(msg)


class Proc:
    """One of our own components as a child process (its own session, log appended per start)."""

    def __init__(self, name: str, cmd: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.log_dir = log_dir
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = log_dir / f"{name}.log"

    def start(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}.{self.starts}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL after timeout_s); the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def stop_totals(self) -> dict[str, int] | None:
        """The publisher's exact totals from the log of the latest start (None if it did not stop cleanly)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return None
        found = STOP_LINE.findall(text)
        if not found:
            return None
        _, msgs, points, dropped, unacked = found[-1]
        return {"messages": int(msgs), "points": int(points), "dropped": int(dropped), "unacked": int(unacked)}


def _ports_line(log_path: Path) -> dict[str, int] | None:
    """The simulator's name -> port map, once it has printed it."""
    with contextlib.suppress(FileNotFoundError):
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    return json.loads(line)
    return None


def _dcim(*args: str) -> list[str]:
    return [sys.executable, "-c", "from dcim.app.cli import main; main()", *args]


# --- counting ------------------------------------------------------------------------------------


def _series_where(tags: dict[str, str]) -> str:
    parts = []
    for k, v in sorted(tags.items()):
        key = k.replace('"', '\\"')
        val = v.replace("\\", "\\\\").replace("'", "\\'")
        parts.append(f"\"{key}\"='{val}'")
    return " AND ".join(parts)


def count_stored(influx: servers.InfluxDB, db: str) -> dict[str, int]:
    """Distinct points per measurement (series + timestamp; a redelivered point overwrote itself).

    ``count(*)`` gives per series and field the points holding that field. Where a series' fields
    all have the same count, that is its point count; otherwise (a lost GPU's record carries only
    ``lost``) the series' rows are read and counted.
    """
    out: dict[str, int] = {}
    res = influx.query("SHOW MEASUREMENTS", db)
    names = [v[0] for r in res.get("results", []) for s in r.get("series", []) for v in s.get("values", [])]
    for m in names:
        if m in OBSERVER_MEASUREMENTS:
            continue
        total = 0
        q = influx.query(f'SELECT count(*) FROM "{m}" GROUP BY *', db)
        for r in q.get("results", []):
            if "error" in r:
                raise servers.HarnessError(f"InfluxQL error counting {m}: {r['error']}")
            for s in r.get("series", []):
                counts = [int(c) for c in s["values"][0][1:] if c]
                if counts and min(counts) == max(counts):
                    total += counts[0]
                    continue
                rows = influx.query(f'SELECT * FROM "{m}" WHERE {_series_where(s.get("tags", {}))}', db,
                                    epoch="ns")
                times = {v[0] for rr in rows.get("results", []) for ss in rr.get("series", [])
                         for v in ss.get("values", [])}
                total += len(times)
        out[m] = total
    return out


# --- alerts --------------------------------------------------------------------------------------


class AlertWatcher:
    """Polls Alertmanager's /api/v2/alerts every second and remembers every alert seen."""

    def __init__(self, am: servers.Alertmanager, interval_s: float = 1.0) -> None:
        self.am = am
        self.interval_s = interval_s
        self.seen: dict[tuple[str, frozenset], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poll(self) -> None:
        with contextlib.suppress(Exception):
            for a in self.am.alerts():
                labels = dict(a.get("labels", {}))
                key = (labels.pop("alertname", "?"), frozenset(labels.items()))
                self.seen.setdefault(key, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.poll()

    def has(self, name: str, labels: dict[str, str]) -> bool:
        return any(n == name and all((k, v) in ls for k, v in labels.items()) for n, ls in self.seen)


def _alert_key(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


# --- malformed input -----------------------------------------------------------------------------


def malformed_messages(n: int, now_ns: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """``n`` messages that the collector must refuse whole: not one valid line among them."""
    kinds = [
        ("random", lambda i: b"\xff" + rng.randbytes(rng.randrange(8, 400))),
        ("lineprotocol", lambda i: rng.choice([
            b"gpu,node=soak temp_c= 1",
            b"gpu,node=soak temp_c=1.0 not-a-time",
            b"gpu,node=soak",
            b'gpu,node=soak message="unterminated',
            b"gpu,node=soak,=x temp_c=1.0",
            b"gpu temp_c=1.0 %d extra" % now_ns,
        ])),
        ("json", lambda i: rng.choice([b'{"gpu": ', b'{"temp_c": [1, 2', b"[{}", b'{"a": 1}'])),
        ("unknown_measurement", lambda i: b"soak_unknown_thing,rack=A01 value=%d %d" % (i, now_ns)),
        ("unknown_field", lambda i: b"gpu,node=soak,gpu=0 soak_no_such_field_c=%d.5 %d" % (i, now_ns)),
    ]
    out = []
    for i in range(n):
        kind, make = kinds[i % len(kinds)]
        out.append((f"{MALFORMED_PREFIX}/{kind}/{i}", make(i)))
    return out


def publish_malformed(url: str, msgs: list[tuple[str, bytes]]) -> int:
    import paho.mqtt.client as mqtt

    host, _, port = url.removeprefix("mqtt://").rpartition(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-malformed-{os.getpid()}")
    client.connect(host, int(port))
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in msgs]
        for info in infos:
            info.wait_for_publish(60)
        return sum(1 for info in infos if info.is_published())
    finally:
        client.disconnect()
        client.loop_stop()


# --- configuration written for the run ------------------------------------------------------------


def _write_rules(dest: Path, stale_after_s: float | None) -> Path:
    """The default rule pack; the SNMP stale rules' ``after`` shortened for a short soak."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(DEFAULT_RULES_DIR.iterdir()):
        if p.suffix not in (".yaml", ".yml") or not p.is_file():
            continue
        if stale_after_s is None:
            shutil.copy(p, dest / p.name)
            continue
        data = yaml.safe_load(p.read_text())
        for rule in data.get("rules") or []:
            if rule.get("name") in ("PduTelemetryStale", "CoolantTelemetryStale"):
                rule["after"] = f"{stale_after_s:g}s"
        (dest / p.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _stale_after(rules_dir: Path) -> float:
    after = 0.0
    for p in rules_dir.iterdir():
        for rule in (yaml.safe_load(p.read_text()) or {}).get("rules") or []:
            if rule.get("name") in ("PduTelemetryStale", "CoolantTelemetryStale"):
                after = max(after, parse_duration(rule["after"]))
    return after


# --- the soak -------------------------------------------------------------------------------------


def run_soak(cfg: SoakConfig) -> dict[str, Any]:  # noqa: PLR0915 - one timeline, read top to bottom
    """Run the soak; the result dict that main() prints as one JSON line."""
    owns_dir = cfg.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="dcim-soak-")) if owns_dir else Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    rng = random.Random(cfg.seed)
    t_boot = time.monotonic()
    say = lambda text: _say(cfg, t_boot, text)  # noqa: E731

    owned = []
    broker = cfg.broker
    if broker is None:
        broker = servers.Mosquitto(work / "mosquitto")
        owned.append(broker)
    influx = cfg.influx
    if influx is None:
        influx = servers.InfluxDB(work / "influxdb")
        owned.append(influx)
    am = cfg.alertmanager
    if am is None:
        am = servers.Alertmanager(work / "alertmanager")
        owned.append(am)
    procs: list[Proc] = []
    watcher: AlertWatcher | None = None
    try:
        for srv in (broker, influx, am):
            srv.start()
        db = "soak"
        influx.create_database(db)

        rules_dir = _write_rules(work / "rules", cfg.stale_after_s)
        stale_after_s = _stale_after(rules_dir)
        snmp_silent_s = cfg.snmp_silent_s or (stale_after_s + 2 * cfg.snmp_interval_s + 10)
        site_data = yaml.safe_load(DEFAULT_SITE.read_text())
        site_data.update({
            "mqtt": {"url": broker.url, "qos": 1, "keepalive_s": 10},
            "gpu_agent": {"interval_s": cfg.gpu_interval_s, "simulate": True, "queue_max": 100_000,
                          "metrics": {"host": "127.0.0.1", "port": 0}},
            "snmp_agent": {"interval_s": cfg.snmp_interval_s, "queue_max": 100_000,
                           "metrics": {"host": "127.0.0.1", "port": 0}},
            "collector": {
                "topics": ["dcim/#"], "client_id": "soak-collector", "sink": "influx",
                "influx": {"url": influx.url, "api": "v1", "database": db, "timeout_s": 5},
                "spool_path": str(work / "collector" / "spool"),
                "dead_letter_path": str(work / "collector" / "dead-letter.jsonl"),
                "linger_ms": 500, "retry_max_s": 5,
                "metrics": {"host": "127.0.0.1", "port": servers.free_tcp_port()},
                "alerts": cfg.alerts,
            },
            "alerts": {
                "rules": [str(rules_dir)],
                "notifiers": [{"kind": "alertmanager", "url": am.url, "resend_interval_s": 5}],
                "evaluation_interval_s": 1.0,
            },
        })
        site_path = work / "site.yaml"
        site_path.write_text(yaml.safe_dump(site_data, sort_keys=False))
        site = load_site(site_path)
        collector_port = site.collector.metrics.port

        scenario_path = work / "soak-scenario.yaml"
        scenario_path.write_text(yaml.safe_dump({
            "name": "soak-gpu-lost",
            "description": f"GPU {cfg.lost_gpu} of {cfg.node} falls off the bus {cfg.gpu_lost_at_s:g} s after "
                           f"each agent start and comes back {cfg.gpu_lost_for_s:g} s later.",
            "duration": f"{max(cfg.duration_s, 60):g}s",
            "faults": [{"kind": "gpu_lost", "node": cfg.node, "gpu": cfg.lost_gpu, "at": f"{cfg.gpu_lost_at_s:g}s",
                        "until": f"{cfg.gpu_lost_at_s + cfg.gpu_lost_for_s:g}s", "recover": "0s",
                        "note": "soak: GPU lost"}],
        }, sort_keys=False))

        n_devices = sum(len(r.pdus) for r in site.racks()) + len(site.loops)
        gpu_port = servers.free_tcp_port()
        snmp_port = servers.free_tcp_port()
        collector = Proc("collector", _dcim("-v", "collector", "--config", str(site_path)), logs)
        gpu = Proc("gpu-agent", _dcim("-v", "agent", "gpu", "--simulate", "--config", str(site_path), "--site",
                                      str(site_path), "--node", cfg.node, "--scenario", str(scenario_path),
                                      "--metrics-port", str(gpu_port)), logs)
        procs += [collector, gpu]

        # the simulated SNMP devices: one UDP port each, consecutive from a free base
        for _attempt in range(5):
            base = _free_udp_range(n_devices)
            snmpsim = Proc("snmp-sim", [sys.executable, "-m", "dcim.simulators.snmp", "serve", "--site", str(site_path),
                                        "--port-base", str(base), "--seed", str(cfg.seed)], logs)
            snmpsim.start()
            servers.wait_until(lambda: not snmpsim.running() or _ports_line(snmpsim.log_path),
                               timeout_s=60, message="simulated SNMP devices listening")
            if snmpsim.running() and _ports_line(snmpsim.log_path):
                break
            snmpsim.stop()
        else:
            msg = f"the SNMP simulator did not start:\n{snmpsim.log_tail()}"
            raise RuntimeError(msg)
        procs.append(snmpsim)
        snmp = Proc("snmp-agent", _dcim("-v", "agent", "snmp", "--config", str(site_path), "--port-base", str(base),
                                        "--interval-s", f"{cfg.snmp_interval_s:g}", "--metrics-port", str(snmp_port)),
                    logs)
        procs.append(snmp)

        def start_collector() -> None:
            collector.start()
            servers.wait_until(lambda: _metric(_metrics(collector_port), "dcim_collector_mqtt_connected") >= 1
                               or not collector.running(), timeout_s=60, message="collector connected")
            if not collector.running():
                msg = f"the collector exited at start:\n{collector.log_tail()}"
                raise RuntimeError(msg)

        def start_agent(p: Proc, port: int) -> None:
            p.start()
            servers.wait_until(lambda: _metric(_metrics(port), "dcim_agent_mqtt_connected") >= 1 or not p.running(),
                               timeout_s=60, message=f"{p.name} connected")
            if not p.running():
                msg = f"{p.name} exited at start:\n{p.log_tail()}"
                raise RuntimeError(msg)

        published = Counter()  # component -> points acknowledged, summed over the agent's runs
        dropped = Counter()
        inexact: list[str] = []
        last_seen: dict[str, dict[str, float]] = {}

        def scrape(p: Proc, port: int) -> None:
            values = _metrics(port)
            if values:
                last_seen[p.name] = values

        def stop_agent(p: Proc, port: int, *, frozen: bool = False) -> None:
            """SIGTERM; the publisher's exact totals from its stop line, else its last /metrics scrape.

            ``frozen``: the broker is down, so nothing more can be acknowledged after the scrape and
            the scrape is exact too (an agent that dies on SIGTERM without its stop line).
            """
            scrape(p, port)
            p.stop()
            totals = p.stop_totals()
            if totals is not None:
                published[p.name] += totals["points"]
                dropped[p.name] += totals["dropped"]
            else:
                values = last_seen.get(p.name, {})
                published[p.name] += int(_metric(values, "dcim_agent_published_points_total"))
                dropped[p.name] += int(_metric(values, "dcim_agent_dropped_total"))
                if not frozen:
                    inexact.append(p.name)
                say(f"{p.name}: no stop line in its log; counted its last /metrics scrape"
                    + (" (exact: the broker was down)" if frozen else " (may miss the acks of its last second)"))
            last_seen.pop(p.name, None)

        start_collector()
        start_agent(gpu, gpu_port)
        start_agent(snmp, snmp_port)
        watcher = AlertWatcher(am)
        watcher.start()
        say(f"pipeline up in {work} (SNMP devices {n_devices} from UDP {base}; stale after {stale_after_s:g} s)")

        # --- the timeline -----------------------------------------------------------------------
        faults: list[dict[str, Any]] = []
        collector_restarts = 0
        malformed_sent = 0
        fault_s = (cfg.broker_down_s + cfg.influx_down_s + cfg.collector_down_s + 5 + snmp_silent_s + 2)
        steady_s = max(5.0, (cfg.duration_s - fault_s) / 7)
        t0 = time.monotonic()

        def steady() -> None:
            nonlocal collector_restarts
            end = time.monotonic() + steady_s
            while time.monotonic() < end:
                for p, port in ((gpu, gpu_port), (snmp, snmp_port)):
                    scrape(p, port)
                    if not p.running():
                        msg = f"{p.name} died:\n{p.log_tail()}"
                        raise RuntimeError(msg)
                if not collector.running():  # a crash that we did not cause: count it, start it as systemd would
                    say(f"collector exited by itself (status {collector.proc.returncode}); starting it again")
                    faults.append({"fault": "collector_crashed_by_itself", "at_s": round(time.monotonic() - t0, 1)})
                    collector_restarts += 1
                    start_collector()
                if snmpsim.running() is False:
                    msg = f"the SNMP simulator died:\n{snmpsim.log_tail()}"
                    raise RuntimeError(msg)
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))

        def fault(name: str) -> dict[str, Any]:
            entry = {"fault": name, "at_s": round(time.monotonic() - t0, 1)}
            faults.append(entry)
            say(f"fault: {name}")
            return entry

        def done(entry: dict[str, Any]) -> None:
            entry["took_s"] = max(0.0, round(time.monotonic() - t0 - entry["at_s"], 1))

        steady()
        e = fault("broker_restart")
        broker.stop()
        time.sleep(cfg.broker_down_s)
        broker.start()
        done(e)

        steady()
        e = fault("influxdb_down")
        influx.stop()
        time.sleep(cfg.influx_down_s)
        influx.start()
        done(e)

        steady()
        e = fault("collector_sigkill")
        collector.kill()
        time.sleep(cfg.collector_down_s)
        start_collector()
        collector_restarts += 1
        done(e)

        steady()
        e = fault("gpu_agent_restart")
        stop_agent(gpu, gpu_port)
        start_agent(gpu, gpu_port)
        done(e)

        steady()
        e = fault("snmp_devices_silent")
        snmpsim.signal(signal.SIGSTOP)
        time.sleep(snmp_silent_s)
        snmpsim.signal(signal.SIGCONT)
        done(e)

        steady()
        e = fault("malformed_burst")
        burst = malformed_messages(cfg.malformed, time.time_ns(), rng)
        malformed_sent = publish_malformed(broker.url, burst)
        done(e)
        e["messages"] = malformed_sent

        steady()
        duration_s = time.monotonic() - t0

        # --- stop the sources, let the collector drain, count ---------------------------------------
        # The broker goes first, so the agents' counts of acknowledged points freeze whatever
        # their stop handling; the broker keeps (and persists) what the collector has not taken yet.
        say("stopping: the broker, then the agents; then the broker again for the collector to drain")
        broker.stop()
        time.sleep(1.0)  # a PUBACK the broker wrote just before it exited reaches the agent's counter first
        stop_agent(gpu, gpu_port, frozen=True)
        stop_agent(snmp, snmp_port, frozen=True)
        broker.start()
        total_published = sum(published.values())
        deadline = time.monotonic() + cfg.drain_timeout_s
        stored_by_m: dict[str, int] = {}
        stable = 0
        last_total = -1
        while time.monotonic() < deadline:
            cm = _metrics(collector_port)
            stored_by_m = count_stored(influx, db)
            total = sum(stored_by_m.values())
            idle = (_metric(cm, "dcim_collector_spool_points") == 0 and _metric(cm, "dcim_collector_unacked_messages") == 0)
            stable = stable + 1 if (total == last_total and idle) else 0
            last_total = total
            if (total >= total_published and idle) or stable >= 5:
                break
            time.sleep(2)
        stored = sum(stored_by_m.values())
        watcher.stop()

        # --- alerts: what the faults must have raised ------------------------------------------------
        expected: list[tuple[str, dict[str, str]]] = []
        for rack in site.racks():
            for pdu in rack.pdus:
                expected.append(("PduTelemetryStale", {"rack": rack.name, "pdu": pdu.name}))
        for loop in site.loops:
            expected.append(("CoolantTelemetryStale", {"loop": loop.name}))
        expected.append(("GpuLost", {"node": cfg.node, "gpu": str(cfg.lost_gpu)}))
        if not cfg.alerts:
            expected = []
        missing = [_alert_key(n, ls) for n, ls in expected if not watcher.has(n, ls)]
        seen_names = Counter(n for n, _ in watcher.seen)

        dead = _dead_letters(Path(site.collector.dead_letter_path))
        cm = _metrics(collector_port)
        collector.stop()
        result = {
            "bench": "soak",
            "duration_s": round(duration_s, 1),
            "published": total_published,
            "stored": stored,
            "lost": total_published - stored,
            "dropped_by_agents": sum(dropped.values()),
            "published_by_agent": dict(published),
            "published_count_inexact": inexact,
            "stored_by_measurement": dict(sorted(stored_by_m.items())),
            "alerts_expected": len(expected),
            "alerts_seen": len(expected) - len(missing),
            "alerts_expected_names": sorted({n for n, _ in expected}),
            "alerts_seen_names": dict(sorted(seen_names.items())),
            "alerts_missing": missing,
            "malformed_sent": malformed_sent,
            "dead_lettered": dead["total"],
            "dead_lettered_from_agents": dead["from_agents"],
            "collector_restarts": collector_restarts,
            "collector_spool_points_at_end": _metric(cm, "dcim_collector_spool_points"),
            "faults": faults,
            "influx_down_s": cfg.influx_down_s,
            "snmp_silent_s": snmp_silent_s,
            "stale_after_s": stale_after_s,
            "steady_s": round(steady_s, 1),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "work_dir": str(work) if (cfg.keep or not owns_dir) else None,
        }
        return result
    finally:
        if watcher is not None:
            watcher._stop.set()  # noqa: SLF001
        for p in reversed(procs):
            with contextlib.suppress(Exception):
                p.stop(timeout_s=15)
        for srv in reversed(owned):
            with contextlib.suppress(Exception):
                srv.close()
        if owns_dir and not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)


def _dead_letters(path: Path) -> dict[str, int]:
    total = from_agents = 0
    for p in (path.with_name(path.name + ".1"), path):
        if not p.exists():
            continue
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            total += 1
            with contextlib.suppress(ValueError):
                topic = json.loads(line).get("topic") or ""
                if not topic.startswith(MALFORMED_PREFIX + "/"):
                    from_agents += 1
    return {"total": total, "from_agents": from_agents}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", default="10m", help="total time of the soak (e.g. 10m, 90s)")
    ap.add_argument("--influx-down-s", type=float, default=60.0)
    ap.add_argument("--snmp-silent-s", type=float, default=None,
                    help="how long the SNMP devices stay silent (default: stale-after + 2 polls + 10 s)")
    ap.add_argument("--stale-after-s", type=float, default=None,
                    help="after of the SNMP stale rules (default: the rule pack's)")
    ap.add_argument("--snmp-interval-s", type=float, default=10.0)
    ap.add_argument("--malformed", type=int, default=200)
    ap.add_argument("--work-dir", type=Path, default=None, help="keep everything (configs, logs, data) here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--no-alerts", action="store_true", help="run the collector without the alert engine")
    args = ap.parse_args(argv)
    cfg = SoakConfig(duration_s=parse_duration(args.duration), influx_down_s=args.influx_down_s,
                     snmp_silent_s=args.snmp_silent_s, stale_after_s=args.stale_after_s,
                     snmp_interval_s=args.snmp_interval_s, malformed=args.malformed, work_dir=args.work_dir,
                     keep=args.keep, alerts=not args.no_alerts)
    result = run_soak(cfg)
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["dropped_by_agents"] == 0 and not result["alerts_missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
