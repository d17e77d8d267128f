"""Poll many SNMP devices concurrently: detect profiles, walk their columns, parse, report health.

Each device's requests run one after another (slow management cards dislike parallel walks);
devices run side by side, and a semaphore bounds the requests in flight across all of them. A
device that times out yields an ``agent`` health record (up=false, stale=true) and never holds
up the others: its poll is its own task with its own timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from dcim.agents.snmp import ber
from dcim.agents.snmp.profile import Profile, Source, detect_candidates, parse
from dcim.agents.snmp.transport import PysnmpSession, V2cEngine, V2cSession, WalkStats, walk_columns
from dcim import schema
from dcim.errors import ConfigError, DeviceError
from dcim.record import Record

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Device:
    """One device to poll, secrets already resolved (kept out of repr)."""

    name: str
    address: str = "127.0.0.1"
    port: int = 161
    version: str = "2c"
    community: str = field(default="public", repr=False)
    v3_user: str | None = None
    v3_auth_protocol: str = "SHA"
    v3_auth_key: str | None = field(default=None, repr=False)
    v3_priv_protocol: str = "AES"
    v3_priv_key: str | None = field(default=None, repr=False)
    v3_context: str = ""
    profile: str = "auto"
    tags: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 2.0
    retries: int = 1
    max_repetitions: int = 25
    backend: str = "fast"  # "fast" (own v2c codec) or "pysnmp"


@dataclass(slots=True)
class DevicePoll:
    device: str
    ok: bool
    records: list[Record]
    health: Record
    profile: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    varbinds: int = 0
    requests: int = 0
    rows: int = 0
    #: with ``Poller(sources=True)``: the instance OID behind every value (acceptance, audits)
    sources: list[Source] | None = None


@dataclass(slots=True)
class Tried:
    """One candidate profile probed during detection."""

    profile: str
    why: str
    answered: int
    probes: int
    prefix_len: int
    kind: str


@dataclass(slots=True)
class Detection:
    """What detection saw on one device and what it chose (``dcim agent snmp --detect`` prints it)."""

    device: str
    sys_object_id: str | None
    sys_descr: str
    tried: list[Tried] = field(default_factory=list)
    chosen: str | None = None
    requests: int = 0  # SNMP requests detection took (one GET, then the candidates' probes)

    def refusal(self) -> str:
        tried = "; ".join(f"{t.profile} ({t.why}): {t.answered}/{t.probes} tables answer" for t in self.tried)
        return (f"no profile can read this device (sysObjectID {self.sys_object_id or 'none'}, "
                f"sysDescr {self.sys_descr!r}); tried: {tried or 'no candidate'}. "
                "Configure a profile or write one for its MIB")

    def lines(self) -> list[str]:
        out = [f"{self.device}: sysObjectID {self.sys_object_id or 'none'}, sysDescr {self.sys_descr!r}"]
        for t in self.tried:
            mark = "chosen" if t.profile == self.chosen else "      "
            out.append(f"  {mark} {t.profile:<18} {t.answered}/{t.probes} probed tables answer real data  ({t.why})")
        if self.chosen is None:
            out.append("  " + self.refusal())
        return out


def choose(tried: list[Tried], profiles: Mapping[str, Profile]) -> str | None:
    """The detected profile among the probed candidates (None: the device is refused).

    Only candidates answering real data count. A profile named in an answering profile's
    ``detect.supersedes`` drops out. The most answering probes win; on a tie the longer
    sysObjectID prefix, then (stable order) the vendor profile over a standard MIB. A switch
    profile loses to any other, and is out entirely where a power or cooling profile of the
    device's vendor was a candidate: such a device is refused rather than polled as a switch.
    """
    power_claim = any(not t.why.startswith("standard") and t.kind != "switch" for t in tried)
    answering = {t.profile for t in tried if t.answered > 0}
    superseded = {old for name in answering for old in profiles[name].detect.supersedes}
    for t in tried:
        if t.profile in superseded and t.answered > 0 and "superseded" not in t.why:
            t.why += "; superseded by a richer profile that answers"
    ranked = sorted((t for t in tried if t.answered > 0 and t.profile not in superseded
                     and (t.kind != "switch" or not power_claim)),
                    key=lambda t: (t.kind != "switch", t.answered, t.prefix_len), reverse=True)
    return ranked[0].profile if ranked else None


def _real(value: Any, sentinels: frozenset[int]) -> bool:
    """A probe answer that is data: a number that is not one of the column's sentinels, or text."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value not in sentinels
    return isinstance(value, bytes) and bool(value.strip(b"\x00 "))


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text).strip()


DEVICE_TAG = {"pdu": "pdu", "cooling": "cdu", "ups": "ups", "switch": "switch"}

#: varbinds one GETBULK response is planned to carry: pysnmp-based agents (snmpsim) stop at 64,
#: and 64 short varbinds fit one Ethernet-sized datagram
RESPONSE_VARBINDS = 64


def _derive(record: Record) -> None:
    """Fields the schema defines from others, for devices that report only the parts.

    A CDU's MIB (LIEBERT-GP-FLEXIBLE-MIB points, PowerNet-MIB coolingUnit rows) gives supply and return pressure;
    ``coolant_loop.diff_pressure_kpa`` is their difference by definition (dcim/schema.py), and the loop
    dashboard and the low-ΔP rule read it. A device that reports it itself keeps its own value.
    """
    f = record.fields
    if record.measurement != schema.COOLANT_LOOP.name or "diff_pressure_kpa" in f:
        return
    supply, ret = f.get("supply_pressure_kpa"), f.get("return_pressure_kpa")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (supply, ret)):
        f["diff_pressure_kpa"] = round(float(supply) - float(ret), 3)


def plan_batches(columns: list[int], hints: list[int | None], max_repetitions: int,
                 budget: int = RESPONSE_VARBINDS) -> list[tuple[list[int], int]]:
    """Table groups -> GETBULK streams: [(group indices, max-repetitions)].

    Without row counts from a previous poll every table is its own stream at the device's
    max-repetitions. With them, tables sorted by rows share a stream while columns x
    (rows + 1) stays within ``budget``: a PDU's 1-row and 3-row tables then cost one request
    instead of four. The walk is correct either way; this only saves round trips.
    """
    if any(h is None for h in hints):
        return [([i], max_repetitions) for i in range(len(columns))]
    batches: list[tuple[list[int], int]] = []
    cur: list[int] = []
    cur_cols = cur_reps = 0
    for i in sorted(range(len(columns)), key=lambda i: hints[i]):  # type: ignore[arg-type, return-value]
        reps = max(1, min(max_repetitions, hints[i] + 1))  # type: ignore[operator]
        if cur and (cur_cols + columns[i]) * max(cur_reps, reps) > budget:
            batches.append((cur, cur_reps))
            cur, cur_cols, cur_reps = [], 0, 0
        cur.append(i)
        cur_cols += columns[i]
        cur_reps = max(cur_reps, reps)
    if cur:
        batches.append((cur, cur_reps))
    return batches


class Poller:
    """``async with Poller(devices, profiles) as p: polls = await p.poll_all()``."""

    def __init__(self, devices: list[Device], profiles: Mapping[str, Profile], *, max_in_flight: int = 64,
                 registry: CollectorRegistry | None = None, clock_ns: Callable[[], int] = time.time_ns,
                 base_tags: Mapping[str, str] | None = None, v2c_engine: V2cEngine | None = None,
                 host: str | None = None, sources: bool = False) -> None:
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            raise ConfigError(f"device names must be unique: {names}")
        for d in devices:
            if d.profile != "auto" and d.profile not in profiles:
                raise ConfigError(f"device {d.name!r}: unknown profile {d.profile!r} (known: {sorted(profiles)})")
        self.devices = devices
        self.profiles = dict(profiles)
        self.max_in_flight = max_in_flight
        self.clock_ns = clock_ns
        self.base_tags = dict(base_tags or {})
        self.host = host or socket.gethostname()
        self.sources = sources
        self._limit: asyncio.Semaphore | None = None
        self._engine: V2cEngine | None = None
        self._engine_given = v2c_engine
        self._pysnmp_engine: Any = None
        self._sessions: dict[str, Any] = {}
        self._detected: dict[str, str] = {}
        self._detections: dict[str, Detection] = {}
        #: rows each (device, table group) had last time: the next GETBULK asks for one more, so a
        #: 1-row table does not drag max-repetitions rows of the next table along
        self._rows_hint: dict[tuple[str, int], int] = {}
        self._errors: dict[str, int] = {d.name: 0 for d in devices}
        self._logged: set[str] = set()
        self._odd_warned: set[str] = set()
        self._metrics = _Metrics(registry) if registry is not None else None
        #: (queue depth, dropped total) of the publisher the polls go through, for the health
        #: records (as the GPU agent reports its own); None where there is none
        self.queue_stats: Callable[[], tuple[int, int]] | None = None

    async def __aenter__(self) -> Poller:
        self._limit = asyncio.Semaphore(self.max_in_flight)
        # bind the client socket to loopback when every device is local (tests, simulators)
        local = "127.0.0.1" if all(d.address.startswith("127.") for d in self.devices) else "0.0.0.0"  # noqa: S104
        self._engine = await (self._engine_given or V2cEngine(local)).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()
        if self._engine is not None:
            self._engine.close()
        if self._pysnmp_engine is not None:
            try:
                self._pysnmp_engine.close_dispatcher()
            except Exception:  # noqa: BLE001
                pass

    def session(self, d: Device) -> Any:
        s = self._sessions.get(d.name)
        if s is not None:
            return s
        if d.version == "3" or d.backend == "pysnmp":
            if self._pysnmp_engine is None:
                from pysnmp.hlapi.v3arch import asyncio as hl

                self._pysnmp_engine = hl.SnmpEngine()
            if d.version == "3":
                if not d.v3_user:
                    raise ConfigError(f"device {d.name!r}: SNMPv3 needs a user")
                # an engine of its own: pysnmp keeps USM keys per engine and user name, and two
                # devices may well share a user name with different keys
                s = PysnmpSession(d.name, d.address, d.port, d.timeout_s, d.retries, user=d.v3_user,
                                  auth_protocol=d.v3_auth_protocol, auth_key=d.v3_auth_key,
                                  priv_protocol=d.v3_priv_protocol, priv_key=d.v3_priv_key,
                                  context=d.v3_context, limit=self._limit)
            else:
                s = PysnmpSession(d.name, d.address, d.port, d.timeout_s, d.retries, community=d.community,
                                  limit=self._limit, engine=self._pysnmp_engine)
        else:
            assert self._engine is not None, "use 'async with Poller(...)'"
            s = V2cSession(self._engine, d.name, d.address, d.port, d.community, d.timeout_s, d.retries,
                           limit=self._limit)
        self._sessions[d.name] = s
        return s

    async def detect(self, d: Device) -> Profile:
        """The device's profile: configured, or detected once (see :meth:`detection`) and kept."""
        if d.profile != "auto":
            return self.profiles[d.profile]
        name = self._detected.get(d.name)
        if name is not None:
            return self.profiles[name]
        found = await self.detection(d)
        self._detections[d.name] = found
        if found.chosen is None:
            raise DeviceError(found.refusal(), device=d.name)
        self._detected[d.name] = found.chosen
        return self.profiles[found.chosen]

    @property
    def detected(self) -> dict[str, str]:
        """Device name -> profile chosen by auto-detection (done once per device, then kept)."""
        return dict(self._detected)

    @property
    def detections(self) -> dict[str, Detection]:
        """Device name -> the last auto-detection run for it (what was probed and chosen)."""
        return dict(self._detections)

    async def detection(self, d: Device) -> Detection:
        """Detect by capability: sysObjectID narrows the candidates, probes of each candidate's own
        tables decide. The profile answering real (non-sentinel) data on the most of its tables
        wins; on a tie the longer sysObjectID prefix, then the vendor profile over a standard MIB.
        A switch profile (IF-MIB answers on nearly every device) wins only where nothing else reads
        the device and no power or cooling profile claims its sysObjectID."""
        s = self.session(d)
        _, values = await s.get([ber.encode_oid(SYS_OBJECT_ID), ber.encode_oid(SYS_DESCR)])
        sys_oid = values[0] if values and isinstance(values[0], tuple) else None
        descr = values[1] if len(values) > 1 and isinstance(values[1], bytes) else b""
        sys_text = ".".join(map(str, sys_oid)) if sys_oid else None
        found = Detection(d.name, sys_text, _printable(descr.decode("utf-8", "replace")), requests=1)
        cands = detect_candidates(self.profiles.values(), sys_text)
        # every candidate's probe columns in shared GETBULKs: a handful of requests, once per device
        rows, found.requests = await self._probe_rows(s, [c for cand in cands for c, _ in cand.profile.probes()])
        found.requests += 1
        for cand in cands:
            probes = cand.profile.probes()
            answered = sum(any(_real(v, sentinels) for v in rows.get(col, ())) for col, sentinels in probes)
            found.tried.append(Tried(cand.profile.name, cand.why, answered, len(probes), cand.prefix_len,
                                     cand.profile.kind))
        found.chosen = choose(found.tried, self.profiles)
        return found

    @staticmethod
    async def _probe_rows(s: Any, columns: list[str]) -> tuple[dict[str, list[Any]], int]:
        """The first rows (up to 3) of each column, in GETBULKs of 16 columns; and the requests it took."""
        cols = list(dict.fromkeys(columns))
        reps = 3  # a first row of "-1" (not fitted) must not hide a second row that is real
        out: dict[str, list[Any]] = {c: [] for c in cols}
        requests = 0
        for i in range(0, len(cols), 16):
            chunk = cols[i:i + 16]
            prefixes = [ber.encode_oid(c) for c in chunk]
            oids, values = await s.bulk(prefixes, reps)
            requests += 1
            for k, oid in enumerate(oids):
                c = k % len(chunk)
                if oid.startswith(prefixes[c]) and len(oid) > len(prefixes[c]):
                    out[chunk[c]].append(values[k])
        return out, requests

    async def poll_device(self, d: Device) -> DevicePoll:
        start = time.perf_counter()
        stats = WalkStats()
        profile: Profile | None = None
        try:
            profile = await self.detect(d)
            s = self.session(d)
            walk: dict[str, list] = {}
            groups = profile.walk_groups()
            hints = [self._rows_hint.get((d.name, gi)) for gi in range(len(groups))]
            for batch, reps in plan_batches([len(g) for g in groups], hints, d.max_repetitions):
                got = await walk_columns(s.bulk, [c for gi in batch for c in groups[gi]], reps, device=d.name,
                                         stats=stats)
                for gi in batch:
                    self._rows_hint[(d.name, gi)] = max((len(got[c]) for c in groups[gi]), default=0)
                walk.update(got)
            now = self.clock_ns()
            tags = self._tags(d, profile)
            result = parse(profile, walk, tags, now, sources=self.sources)
            for r in result.records:
                _derive(r)
            if not result.records:
                # never "up" with nothing to show: the operator must see that this device is not read
                raise DeviceError(f"profile {profile.name} read no data from the device "
                                  f"({stats.rows} rows in its tables); check the profile or configure another",
                                  device=d.name)
            note = None
            if result.odd_labels:
                note = (f"{len(result.odd_labels)} device label(s) unfit for a tag were replaced by the row index: "
                        + "; ".join(result.odd_labels[:5]))
                if d.name not in self._odd_warned:  # once per device, not once per poll
                    self._odd_warned.add(d.name)
                    log.warning("%s: %s", d.name, note)
                    if self._metrics is not None:
                        self._metrics.odd_labels.labels(d.name).inc(len(result.odd_labels))
            duration = time.perf_counter() - start
            health = self._health(d, now, up=True, duration_s=duration, message=note,
                                  unsupported=",".join(sorted(result.unsupported)))
            poll = DevicePoll(d.name, True, result.records, health, profile.name, None, duration,
                              stats.varbinds, stats.requests, stats.rows, result.sources)
        except Exception as exc:  # noqa: BLE001 - one device's failure must never stop the others' polls
            if not isinstance(exc, DeviceError):
                kind = type(exc).__name__
                if kind not in self._logged:
                    self._logged.add(kind)
                    log.exception("%s: unexpected %s while polling (logged once per kind)", d.name, kind)
                exc = DeviceError(f"{kind}: {exc}", device=d.name)
            self._errors[d.name] += 1
            now = self.clock_ns()
            duration = time.perf_counter() - start
            health = self._health(d, now, up=False, duration_s=duration, message=str(exc))
            poll = DevicePoll(d.name, False, [], health, profile.name if profile else None, str(exc), duration,
                              stats.varbinds, stats.requests, stats.rows)
        if self._metrics is not None:
            self._metrics.observe(poll)
        return poll

    def failed_poll(self, d: Device, message: str) -> DevicePoll:
        """A poll that failed outside the SNMP exchange (e.g. its output could not be encoded):
        a health record that says what went wrong, so the device shows stale instead of vanishing."""
        self._errors[d.name] += 1
        health = self._health(d, self.clock_ns(), up=False, duration_s=0.0, message=message)
        poll = DevicePoll(d.name, False, [], health, self._detected.get(d.name), message)
        if self._metrics is not None:
            self._metrics.observe(poll)
        return poll

    async def poll_all(self) -> list[DevicePoll]:
        return list(await asyncio.gather(*(self.poll_device(d) for d in self.devices)))

    def _tags(self, d: Device, profile: Profile) -> dict[str, str]:
        tags = {**self.base_tags, **d.tags}
        key = DEVICE_TAG[profile.kind]
        tags.setdefault(key, d.name)
        if profile.kind == "cooling":
            tags.setdefault("loop", d.name)
        return tags

    def _health(self, d: Device, now: int, *, up: bool, duration_s: float, message: str | None = None,
                unsupported: str = "") -> Record:
        tags = {k: v for k, v in {**self.base_tags, **d.tags}.items() if k in schema.AGENT.tags}
        tags.update({"component": "snmp", "device": d.name})
        tags.setdefault("host", self.host)  # which poller saw it: stale-device alerts name it
        fields: dict[str, Any] = {"up": up, "stale": not up, "poll_duration_s": round(duration_s, 6),
                                  "errors_total": self._errors[d.name]}
        if self.queue_stats is not None:
            fields["queue_depth"], fields["dropped_total"] = self.queue_stats()
        if message:
            fields["message"] = message
        if unsupported:
            fields["unsupported_fields"] = unsupported
        return Record("agent", tags, fields, now)


class _Metrics:
    """The poller's own /metrics: per device up, stale, duration, errors, last success, varbinds."""

    def __init__(self, registry: CollectorRegistry) -> None:
        lab = ["device"]
        self.up = Gauge("dcim_snmp_device_up", "1 when the device answered the last poll", lab, registry=registry)
        self.stale = Gauge("dcim_snmp_device_stale", "1 when the device's data is stale (last poll failed)", lab,
                           registry=registry)
        self.duration = Gauge("dcim_snmp_poll_duration_seconds", "duration of the device's last poll", lab,
                              registry=registry)
        self.errors = Counter("dcim_snmp_poll_errors", "failed polls per device", lab, registry=registry)
        self.polls = Counter("dcim_snmp_polls", "polls per device", lab, registry=registry)
        self.last_ok = Gauge("dcim_snmp_last_success_timestamp_seconds", "unix time of the last successful poll",
                             lab, registry=registry)
        self.varbinds = Counter("dcim_snmp_varbinds", "varbinds received", lab, registry=registry)
        self.requests = Counter("dcim_snmp_requests", "SNMP requests answered", lab, registry=registry)
        self.odd_labels = Counter("dcim_snmp_odd_labels", "device labels unfit for a tag, replaced by the row index "
                                  "(counted on the first poll that meets them)", lab, registry=registry)

    def observe(self, p: DevicePoll) -> None:
        d = p.device
        self.up.labels(d).set(1 if p.ok else 0)
        self.stale.labels(d).set(0 if p.ok else 1)
        self.duration.labels(d).set(p.duration_s)
        self.polls.labels(d).inc()
        self.varbinds.labels(d).inc(p.varbinds)
        self.requests.labels(d).inc(p.requests)
        if p.ok:
            self.last_ok.labels(d).set(p.health.time_ns / 1e9 if p.health.time_ns else time.time())
        else:
            self.errors.labels(d).inc()
