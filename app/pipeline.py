"""The whole pipeline behind ``dcim demo``, assembled from the real parts around the simulated hall.

    hall ─┬─ SimNvml per node ─ GpuAgent ──────────┐
          └─ simulated PDUs/CDUs (SNMP, loopback) ─ Poller ─┴─ bus ─ Collector ─ store ─ engine ─ notifiers

Everything runs on the hall's clock: agents and the poller stamp records with simulated time and
the alert engine sees event time only, so an accelerated demo alerts exactly as a live hall would.
The bus is the in-process ``LocalBus`` (no broker needed) or a real MQTT broker with the agents'
``Publisher`` and the collector's own MQTT ingest. The stage order inside one simulated second is
fixed (agents, then the collector's flush), so a run with the local bus is deterministic and its
recording replays to the same alert transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from dcim.agents.gpu.agent import GpuAgent, gpu_topic
from dcim.agents.gpu.cli import node_tags
from dcim.agents.publisher import Publisher
from dcim.agents.snmp.cli import device_topic, devices_from_site
from dcim.agents.snmp.poller import Poller
from dcim.agents.snmp.profile import load_profiles
from dcim.alerts.actions import MemoryScheduler, demo_runner
from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.alerts.live import LiveObserver
from dcim.alerts.notifiers import make_notifier
from dcim.alerts.recording import Header, RecordingReader, write_recording
from dcim.alerts.recording_sources import records_from_influx
from dcim.alerts.replay import ReplayStats, location
from dcim.alerts.report import write_report
from dcim.app.record import records_from_store
from dcim.collector.app import Collector
from dcim.config import CollectorConfig, InfluxConfig, MqttConfig, NotifierConfig, SiteConfig
from dcim.errors import ConfigError
from dcim.lineprotocol.encode import encode
from dcim.record import Record
from dcim.simulators.hall import Hall
from dcim.simulators.nvml import SimNvml, node_gpus
from dcim.simulators.snmp import serve

log = logging.getLogger(__name__)

#: Console-notification lines the views show: (event time ns, text).
Note = tuple[int, str]


@dataclass(slots=True)
class PipelineOptions:
    """Where the data goes and how often the sources poll (in simulated seconds)."""

    out_dir: Path | None = None  # default: ./dcim-demo-<UTC time>
    mqtt_url: str | None = None
    influx_url: str | None = None
    influx_db: str = "dcim"
    alertmanager_url: str | None = None
    gpu_interval_s: float = 10.0
    snmp_interval_s: float = 10.0  # coolant units
    pdu_interval_s: float = 30.0  # PDUs: many rows each, and the simulated agents are pysnmp (slow)
    snmp_timeout_s: float = 2.0  # wall time; a busy machine must not make a slow answer look silent
    evaluation_interval_s: float | None = None  # the alert engine's; default: the site's (1 s)
    #: how often the collector writes a batch (and the engine sees it): fewer fsyncs; the engine's
    #: answer does not depend on it (it evaluates each boundary once the data passes it)
    flush_interval_s: float = 5.0
    topology: str = "embedded"  # what the recording's header names (a site file path or "embedded")
    source: str = "dcim demo"


class LocalBus:
    """The broker's stand-in when there is none: ``publish(topic, payload) -> bool`` into ``collector.handle``."""

    def __init__(self, handle: Callable[[str, bytes], None]) -> None:
        self._handle = handle
        self.published = 0
        self.depth = 0  # what agents read for their queue_depth field
        self.dropped = 0

    def publish(self, topic: str, payload: bytes) -> bool:
        self._handle(topic, payload)
        self.published += 1
        return True

    async def flush(self, timeout_s: float) -> bool:  # noqa: ARG002 - same shape as Publisher.flush
        return True


@dataclass
class AlertBoard:
    """The console notifier of the demo: what the views show of the alerts (notifications of pages, the
    alerts firing now, how many are inhibited beneath them) and the counts for the summary.

    A notifier (``alerts.notifiers.Notifier``): it runs on the dispatcher's worker thread, and the
    views only read what it appends.
    """

    name = "console"

    notes: list[Note] = field(default_factory=list)
    firing: dict[str, Any] = field(default_factory=dict)  # fingerprint -> last firing transition
    inhibited_now: set[str] = field(default_factory=set)
    fired: set[str] = field(default_factory=set)  # fingerprints that fired (not inhibited) at least once
    resolved: set[str] = field(default_factory=set)
    inhibited: set[str] = field(default_factory=set)  # fingerprints that fired while inhibited
    transitions: list[Any] = field(default_factory=list)

    def tick(self, now_s: float) -> None:
        return None

    def notify(self, transitions: Any, now_s: float) -> None:  # noqa: ARG002 - event time is in the transitions

        for t in transitions:
            self.transitions.append(t)
            fp = t.fingerprint
            if t.state == "firing":
                if t.inhibited:
                    self.inhibited.add(fp)
                    self.inhibited_now.add(fp)
                    self.firing.pop(fp, None)
                    continue
                self.inhibited_now.discard(fp)
                if fp not in self.firing:
                    self.fired.add(fp)
                    self.firing[fp] = t
                    self.notes.append((t.time_ns, f"FIRING [{t.severity}] {t.rule} {location(t.labels)}: {t.summary}"))
            elif t.state in ("resolved", "inactive"):
                self.inhibited_now.discard(fp)
                if self.firing.pop(fp, None) is not None:
                    self.resolved.add(fp)
                    self.notes.append((t.time_ns, f"RESOLVED {t.rule} {location(t.labels)}"))

    def summary_lines(self) -> list[str]:
        """Per rule: alerts that paged, alerts held back by inhibition, and resolutions."""
        by_rule: dict[str, list[set[str]]] = {}
        for t in self.transitions:
            row = by_rule.setdefault(t.rule, [set(), set(), set()])
            if t.state == "firing":
                row[1 if t.inhibited else 0].add(t.fingerprint)
            elif t.state == "resolved":
                row[2].add(t.fingerprint)
        lines = [f"  alerts: {len(self.fired)} fired and paged, {len(self.inhibited)} inhibited beneath them, "
                 f"{len(self.resolved)} of the paged resolved, {len(self.firing)} still firing, "
                 f"{len(self.inhibited_now)} inhibited still active"]
        for rule, (paged, held, resolved) in sorted(by_rule.items()):
            if paged or held:
                lines.append(f"    {rule}: {len(paged)} paged, {len(held)} inhibited, {len(resolved)} resolved")
        return lines


@dataclass
class Result:
    """What a finished run leaves behind."""

    out_dir: Path
    store: str
    recording: Path | None = None
    report: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)  # measurement -> records in the store


def default_out_dir(now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return Path(f"dcim-demo-{stamp}")


# --- the simulated SNMP devices, in a process of their own ---------------------------------------


def devices_child(fd: int) -> None:
    """Child process: a replica of the hall, stepped in lockstep with the parent's, served over SNMP.

    The hall is deterministic (seeded, no wall clock), so a replica given the same steps holds the
    same state; the pysnmp responders then use a second CPU instead of the demo's. Started with
    ``python -c`` (not multiprocessing's spawn) so the caller's ``__main__`` is never re-imported.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the demo, which stops us in order
    conn = Connection(fd)
    site, seed, scenario, start_ns = conn.recv()
    asyncio.run(_devices_serve(conn, site, seed, scenario, start_ns))


async def _devices_serve(conn: Any, site: SiteConfig, seed: int, scenario: Any, start_ns: int) -> None:
    hall = Hall(site, seed=seed, scenario=scenario, start_ns=start_ns)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    with serve(hall, "127.0.0.1", 0) as handle:
        conn.send(handle.ports)

        def on_message() -> None:
            try:
                while conn.poll():
                    kind, arg = conn.recv()
                    if kind == "advance":
                        hall.advance(arg)
                    elif kind == "sync":
                        conn.send(hall.time_ns)
                    else:
                        raise EOFError
            except (EOFError, OSError):  # told to stop, or the parent is gone
                if not done.done():
                    done.set_result(None)

        loop.add_reader(conn.fileno(), on_message)
        try:
            await done
        finally:
            loop.remove_reader(conn.fileno())


class SnmpDevices:
    """The hall's PDUs and CDUs served on loopback UDP by a child process (see ``devices_child``)."""

    def __init__(self, hall: Any, site: SiteConfig) -> None:
        mine, theirs = socket.socketpair()
        code = "import sys; from dcim.app.pipeline import devices_child; devices_child(int(sys.argv[1]))"
        self._proc = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno())], pass_fds=[theirs.fileno()])
        theirs.close()
        self._conn = Connection(mine.detach())
        self._conn.send((site, hall.seed, hall.scenario, hall.start_ns))
        self._t_s = 0.0
        self.ports: dict[str, int] = {}
        self.follow(hall)

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def started(self, timeout_s: float = 60.0) -> dict[str, int]:
        """Wait for the devices to listen; their name -> UDP port map."""
        deadline = time.monotonic() + timeout_s
        while not self._conn.poll(0.2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                msg = f"the simulated SNMP devices did not start (exit status {self._proc.poll()})"
                raise RuntimeError(msg)
        self.ports = self._conn.recv()
        return self.ports

    def follow(self, hall: Any) -> None:
        """Step the replica as the hall was stepped since the last call."""
        dt = hall.t_s - self._t_s
        if dt > 0:
            self._conn.send(("advance", dt))
            self._t_s = hall.t_s

    def sync(self, timeout_s: float = 10.0) -> int:
        """Wait until the replica has taken every step sent; returns its time (ns)."""
        self._conn.send(("sync", None))
        if not self._conn.poll(timeout_s):
            msg = "the simulated SNMP devices stopped answering"
            raise RuntimeError(msg)
        return self._conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("stop", None))
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._conn.close()


class Pipeline:
    """``async with Pipeline(hall, site, options) as p:`` then ``await p.step()`` after each hall step."""

    def __init__(self, hall: Any, site: SiteConfig, options: PipelineOptions) -> None:
        self.hall = hall
        self.site = site
        self.opt = options
        self.board = AlertBoard()
        self.out_dir = Path(options.out_dir)
        self.store_path = self.out_dir / "store"
        self._stack = contextlib.AsyncExitStack()
        # a topic tree of its own: on a shared broker the demo's collector takes only the demo's
        # messages, and real agents never see the simulated hall
        self.prefix = f"dcim-demo-{os.getpid()}"
        self._agents: list[tuple[Any, Any, str, int]] = []  # (agent, publisher, topic, phase in ticks)
        self._snmp_pub: Any = None
        self._snmp_task: asyncio.Task | None = None
        self._collector_task: asyncio.Task | None = None
        self._published = 0
        self._tick = 0
        self._snmp_at = 0  # the hall time a running SNMP poll reads (the replica is held there)
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.records_sent: dict[str, int] = {}
        #: wall seconds spent per stage (gpu agents, snmp wait, collector flush), for choosing intervals
        self.timings: dict[str, float] = {"gpu": 0.0, "snmp_wait": 0.0, "collector": 0.0}

    # -- assembly ---------------------------------------------------------------------------

    async def __aenter__(self) -> Pipeline:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self) -> None:
        opt, site, hall = self.opt, self.site, self.hall
        # first, before any thread runs: the SNMP devices' process starts while the rest is built
        self.snmp = SnmpDevices(hall, site)
        self._stack.callback(self.snmp.stop)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        clock_ns = lambda: hall.time_ns  # noqa: E731 - the simulated clock every stage stamps with
        self.rules = list(load_rules([Path(DEFAULT_RULES_DIR)]))
        self.evaluation_interval_s = opt.evaluation_interval_s or site.alerts.evaluation_interval_s
        self.engine = Engine(self.rules, site=site, evaluation_interval_s=self.evaluation_interval_s)
        notifiers: list[Any] = [self.board]
        if opt.alertmanager_url:
            notifiers.append(make_notifier(NotifierConfig(kind="alertmanager", url=opt.alertmanager_url)))
        # the hall's scheduler, in memory: the remediation actions of the rule pack drain and resume
        # its nodes (alerts.actions), and the board shows each change

        self.scheduler = MemoryScheduler(notes=self.board.notes)
        self.actions = demo_runner(self.rules, site, self.scheduler)
        # no ticker: event time moves with the data only, so a run is deterministic; notifiers keep
        # the wall clock, which is theirs for resend timing
        self.observer = LiveObserver(self.engine, notifiers, ticker=False,
                                     actions=self.actions)  # the collector closes it

        if opt.influx_url:
            await _create_database(opt.influx_url, opt.influx_db)
        # collector: embedded store (or InfluxDB v1), spool and dead letters in the run folder
        ccfg = CollectorConfig(
            sink="influx" if opt.influx_url else "embedded",
            influx=InfluxConfig(url=opt.influx_url, database=opt.influx_db) if opt.influx_url else InfluxConfig(),
            embedded_path=self.store_path, spool_path=self.out_dir / "spool",
            dead_letter_path=self.out_dir / "dead-letter.jsonl",
            topics=[f"{self.prefix}/#"], client_id=f"dcim-demo-collector-{os.getpid()}", session_expiry_s=0,
            linger_ms=200,
            # the collector's own spool and dead-letter reports, as deploy/site.yaml has them (every wall second)
            self_report_s=1.0,
        )
        mqtt = MqttConfig(url=opt.mqtt_url) if opt.mqtt_url else None
        try:
            self.collector = Collector(ccfg, mqtt, observers=[self.observer], registry=CollectorRegistry(),
                                       clock=clock_ns)
        except BaseException:
            self.observer.close()
            raise
        if mqtt is None:
            self.bus: Any = LocalBus(self.collector.handle)
            self._stack.callback(self.collector.close)
        else:  # run() closes it when it stops
            self.bus = None
            self._collector_task = asyncio.create_task(self.collector.run(), name="demo-collector")
            self._stack.push_async_callback(self._stop_collector)
            try:
                await asyncio.wait_for(self.collector.connected.wait(), 10.0)
            except TimeoutError:
                msg = f"--mqtt {opt.mqtt_url}: the broker did not accept the collector within 10 s"
                raise ConfigError(msg) from None

        # SNMP: every PDU and CDU on its own loopback port, polled by the real poller
        ports = await asyncio.to_thread(self.snmp.started)
        devices = [d for d in devices_from_site(site, community="public", port_base=1) if d.name in ports]
        for d in devices:
            d.address, d.port, d.timeout_s, d.retries = "127.0.0.1", ports[d.name], opt.snmp_timeout_s, 0
        step_s = site.simulator.step_s
        self._snmp_sched = []  # (device, every so many ticks, phase): polls spread over the interval
        for j, d in enumerate(devices):
            every = max(1, round((opt.pdu_interval_s if "pdu" in d.tags else opt.snmp_interval_s) / step_s))
            self._snmp_sched.append((d, every, j % every))
        self.poller = await self._stack.enter_async_context(
            Poller(devices, load_profiles(), clock_ns=lambda: self._snmp_at, registry=CollectorRegistry()))
        self._snmp_pub = await self._publisher("snmp", f"dcim-demo-snmp-{os.getpid()}",
                                              f"{self.prefix}/{site.site}/_agents/snmp-demo/status")
        self.poller.queue_stats = lambda p=self._snmp_pub: (p.depth, p.dropped)

        # GPU agents: one per node, each on a simulated NVML over that node's GpuState objects
        gpus = hall.state.gpus
        agents: list[Any] = []
        self._stack.push_async_callback(_close_all, agents)
        ticks = max(1, round(opt.gpu_interval_s / site.simulator.step_s))
        for i, node in enumerate(n.name for r in site.racks() for n in r.nodes):
            tags = node_tags(site, node)
            backend = SimNvml(node_gpus(gpus, node), event_poll_s=0.1)
            agent = GpuAgent(backend, tags=tags, registry=CollectorRegistry(), clock_ns=clock_ns)
            agent.start()
            agents.append(agent)
            topic = gpu_topic(self.prefix, tags)
            pub = await self._publisher("gpu", f"dcim-demo-gpu-{node}-{os.getpid()}", f"{topic}/status")
            agent.queue_stats = lambda p=pub: (p.depth, p.dropped)
            self._agents.append((agent, pub, topic, i % ticks))
        self._gpu_ticks = ticks
        self._flush_ticks = max(1, round(opt.flush_interval_s / site.simulator.step_s))

    async def _publisher(self, component: str, client_id: str, status_topic: str) -> Any:
        if self.bus is not None:
            return self.bus

        pub = Publisher(MqttConfig(url=self.opt.mqtt_url, client_id=client_id), client_id=client_id,
                        status_topic=status_topic, queue_max=10_000, registry=CollectorRegistry(),
                        component=component)
        return await self._stack.enter_async_context(pub)

    # -- running ----------------------------------------------------------------------------

    def _send(self, pub: Any, topic: str, records: list[Record]) -> None:
        if not records:
            return
        t = records[0].time_ns
        if t is not None:
            self.first_ns = t if self.first_ns is None else min(self.first_ns, t)
            self.last_ns = t if self.last_ns is None else max(self.last_ns, t)
        for r in records:
            self.records_sent[r.measurement] = self.records_sent.get(r.measurement, 0) + 1
        if pub.publish(topic, encode(records).encode()):
            self._published += 1

    async def step(self) -> None:
        """One simulated step: take the SNMP polls begun last step, poll the GPU agents due, flush."""
        t0 = time.perf_counter()
        await self._take_snmp()
        self.snmp.follow(self.hall)
        t1 = time.perf_counter()
        self.hall.state  # noqa: B018 - refresh the GpuState objects the simulated NVML reads
        k = self._tick
        for agent, pub, topic, phase in self._agents:
            if k % self._gpu_ticks == phase:
                self._send(pub, topic, agent.poll())
        due = [d for d, every, phase in self._snmp_sched if k % every == phase]
        if due:
            # the walks overlap the pacing sleep; the replica does not move until they are taken next step
            self._snmp_at = self.snmp.sync()
            if self._snmp_at != self.hall.time_ns:
                msg = f"the SNMP devices' hall is at {self._snmp_at}, the demo's at {self.hall.time_ns}"
                raise RuntimeError(msg)
            self._snmp_task = asyncio.create_task(self._poll_snmp(due), name="demo-snmp-poll")
        self._tick += 1
        t2 = time.perf_counter()
        if self.bus is not None and k % self._flush_ticks == 0:
            await self.collector.flush()
        t3 = time.perf_counter()
        self.timings["snmp_wait"] += t1 - t0
        self.timings["gpu"] += t2 - t1
        self.timings["collector"] += t3 - t2

    async def _poll_snmp(self, devices: list[Any]) -> list[tuple[Any, Any]]:
        polls = await asyncio.gather(*(self.poller.poll_device(d) for d in devices))
        return list(zip(devices, polls, strict=True))

    async def _take_snmp(self) -> None:
        if self._snmp_task is None:
            return
        polls, self._snmp_task = await self._snmp_task, None
        for d, p in polls:
            self._send(self._snmp_pub, device_topic(self.prefix, self.site.site, d), [*p.records, p.health])

    async def finish(self) -> None:
        """Take the last SNMP poll, deliver everything, and bring the engine to the last sample's time."""
        await self._take_snmp()
        if self.bus is not None:
            await self.collector.flush()
        else:
            await self._drain_mqtt()
        if self.last_ns is not None:
            self.observer.tick(self.last_ns)
        self.observer.flush(30.0)

    async def _drain_mqtt(self, timeout_s: float = 20.0) -> None:
        pubs = {id(p): p for _, p, _, _ in self._agents}
        pubs[id(self._snmp_pub)] = self._snmp_pub
        await asyncio.gather(*(p.flush(timeout_s) for p in pubs.values()))
        reg = self.collector.metrics.registry
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = reg.get_sample_value("dcim_collector_messages_received_total", {"kind": "lineprotocol"}) or 0
            if got >= self._published:
                break
            await asyncio.sleep(0.05)
        else:
            log.warning("collector received fewer messages than were published before the timeout")
        await self.collector.flush()

    async def _stop_collector(self) -> None:
        self.collector.stop()
        if self._collector_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._collector_task, 30)

    async def __aexit__(self, *exc: object) -> None:
        if self._snmp_task is not None:
            self._snmp_task.cancel()
            with contextlib.suppress(BaseException):
                await self._snmp_task
        await self._stack.aclose()

    # -- after the run ------------------------------------------------------------------------

    def write_outputs(self, scenario: str, seed: int) -> Result:
        """The recording of the run (read back from the store it went to) and the incident report."""
        res = Result(self.out_dir, self.opt.influx_url or str(self.store_path))
        if self.first_ns is None or self.last_ns is None:
            return res
        if self.opt.influx_url:
            records = list(records_from_influx(self.opt.influx_url, self.opt.influx_db,
                                               start_ns=self.first_ns, end_ns=self.last_ns + 1))
        else:  # end_ns is exclusive
            records = list(records_from_store(self.store_path, start_ns=self.first_ns, end_ns=self.last_ns + 1))
        for r in records:
            res.counts[r.measurement] = res.counts.get(r.measurement, 0) + 1
        rec_path = self.out_dir / "recording.col.gz"  # the default (columnar) format: fast to replay
        header = Header(source=f"{self.opt.source} scenario={scenario} seed={seed}", start_ns=self.first_ns,
                        end_ns=self.last_ns, topology=self.opt.topology,
                        extra={"evaluation_interval_s": f"{self.evaluation_interval_s:g}"})
        write_recording(rec_path, records, header)
        res.recording = rec_path
        # the report shows the live run's transitions: a replay of the recording gives the same
        # ones (tests/integration/test_demo_pipeline.py; ``dcim replay`` shows it), and re-running
        # the engine here would only add seconds at the end of the demo
        stats = ReplayStats(records=len(records), field_values=sum(len(r.fields) for r in records),
                            first_ns=self.first_ns, last_ns=self.last_ns)
        report = self.out_dir / "report.html"
        write_report(report, header=header, recording=str(rec_path),
                     rules_name="alerts/rules (default pack)", rules=self.rules, stats=stats,
                     transitions=sorted(self.board.transitions, key=lambda t: t.time_ns),
                     batches=lambda: RecordingReader(rec_path).batches(),
                     actions=sorted(self.actions.history or [], key=lambda a: a.time_ns))
        res.report = report
        return res


async def _create_database(url: str, db: str) -> None:
    """``CREATE DATABASE`` (a no-op when it exists), which also says early when InfluxDB is not there."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            resp = await client.post(url.rstrip("/") + "/query", data={"q": f'CREATE DATABASE "{db}"'})
    except httpx.HTTPError as exc:
        msg = f"--influx {url}: {type(exc).__name__}: {exc}"
        raise ConfigError(msg) from exc
    if resp.status_code >= 300:
        log.warning("InfluxDB %s: CREATE DATABASE %s answered %s: %s", url, db, resp.status_code, resp.text[:200])


async def _close_all(agents: list[Any]) -> None:
    """Close the agents side by side: each waits up to its XID timeout for its watcher thread."""
    if not agents:
        return
    with ThreadPoolExecutor(max_workers=len(agents), thread_name_prefix="demo-agent-close") as pool:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, a.close) for a in agents))


def transition_key(t: Any) -> tuple:
    """What makes two transitions the same, for comparing a live run with a replay."""
    return (t.time_ns, t.rule, tuple(sorted(t.labels.items())), t.previous, t.state, t.inhibited)

