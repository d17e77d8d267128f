"""The collector: MQTT in, decode and validate, batch, observers, then the router (sink or spool).

Delivery guarantee (docs/collector.md): a message is acknowledged (PUBACK) only after every point
it carried is durable, that is written to the sink or fsynced into the spool, and every line it
carried that was refused is fsynced into the dead-letter file. Until then the broker keeps it in
our persistent session and sends it again after a reconnect or a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from dcim.collector.deadletter import DeadLetter
from dcim.collector.mapping import Mapping, load_mappings
from dcim.collector.metrics import CollectorMetrics
from dcim.collector.route import Router
from dcim.collector.sinks import Sink, build_sink, make_sink
from dcim.collector.spool import Spool
from dcim.collector.validate import Admission, Reject, Validator
from dcim import mqtt as mqtt_boundary
from dcim.config import CollectorConfig, MqttConfig
from dcim.errors import ConfigError, MappingError
from dcim.record import Record

log = logging.getLogger(__name__)

STATUS_PAYLOADS = frozenset((b"online", b"offline"))
EXCERPT = 4096
#: the broker's $SYS topics the collector reads (Mosquitto, mosquitto(8) "BROKER STATUS") -> broker field
SYS_TOPICS = {
    "$SYS/broker/publish/messages/dropped": "publish_dropped_total",
    "$SYS/broker/store/messages/count": "store_messages",
    "$SYS/broker/store/messages/bytes": "store_bytes",
    "$SYS/broker/clients/connected": "clients_connected",
}


class Observer(Protocol):
    """Sees every validated batch before the sink write; returns records to write with it."""

    def observe(self, records: list[Record]) -> list[Record]: ...


@dataclass(slots=True)
class AckToken:
    generation: int  # which MQTT connection the message came on; a stale one is not acked
    mid: int
    qos: int


class Collector:
    """One collector process's pipeline. Everything it uses is passed in or built from config."""

    def __init__(
        self,
        config: CollectorConfig,
        mqtt: MqttConfig | None = None,
        *,
        sink: Sink | None = None,
        observers: Sequence[Observer] = (),
        mappings: Sequence[Mapping] | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.mqtt_config = mqtt or MqttConfig()
        self.clock = clock
        self.metrics = CollectorMetrics(registry)
        self.validator = Validator(max_future_s=config.max_future_s, max_past_s=config.max_past_s)
        self.admission = Admission(max_series=config.max_series, topic_layouts=config.topic_tags,
                                   check_topic=config.check_topic_tags)
        self.mappings = list(mappings) if mappings is not None else load_mappings(config.mappings)
        self.observers = list(observers)
        self.dead_letter = DeadLetter(config.dead_letter_path, max_bytes=config.dead_letter_max_bytes,
                                      metrics=self.metrics)
        # every sink has its own spool and router; a batch is durable once every sink has it
        if sink is not None or not config.sinks:
            one = sink if sink is not None else make_sink(config.sink, config.influx, config.embedded_path, clock=clock)
            outputs = [(one, config.spool_path)]
        else:
            outputs = [(build_sink(sc, clock=clock), config.spool_path / (sc.name or sc.kind)) for sc in config.sinks]
        self.routers: list[Router] = []
        for out, spool_path in outputs:
            spool = Spool(spool_path, max_bytes=config.spool_max_bytes, segment_bytes=config.spool_segment_bytes,
                          warn_ratio=config.spool_warn_ratio)
            self.routers.append(Router(out, spool, self.dead_letter, self.metrics, retry_max_s=config.retry_max_s,
                                       clock=clock))
        self.router = self.routers[0]
        self.sink = self.router.sink
        self.spool = self.router.spool
        self.client_id = config.client_id or self.mqtt_config.client_id or f"dcim-collector-{socket.gethostname()}"
        try:
            self._broker_host = mqtt_boundary.broker_address(self.mqtt_config.url)[0]
        except ConfigError:
            self._broker_host = "broker"
        self._host = socket.gethostname()
        self._next_report = time.monotonic() + config.self_report_s
        # the batch being filled
        self._lines: list[str] = []
        self._records: list[Record] = []  # the record of each line, decoded once, for the observers
        self._acks: list[AckToken] = []
        self._topics: list[str | None] = []  # the topic of each line of the batch, for dead letters
        self._held_acks: list[AckToken] = []  # durable batches whose dead-letter entries are not yet
        self._first_at = 0.0
        self._has_data = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._flush_lock = asyncio.Lock()
        # the MQTT connection
        self._client: Any = None
        self._generation = 0
        self.connected = asyncio.Event()
        self.stopping = asyncio.Event()
        self.ignored = 0
        self._reading_paused = False
        self._high_water = max(10, config.receive_maximum)
        self._low_water = self._high_water // 4
        # the labelled counters ``handle`` bumps for every message, looked up once
        self._received_by_kind = {kind: self.metrics.messages_received.labels(kind)
                                  for kind in ("lineprotocol", "json", "status")}

    # --- topics -----------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to: the configured ones and each mapping's, shared if asked."""
        filters: list[str] = list(dict.fromkeys(self.config.topics))
        for m in self.mappings:
            # a mapping already inside a configured filter would arrive twice on some brokers
            if not any(covers(t, m.filter) for t in filters):
                filters.append(m.filter)
        if self.config.shared_group:
            filters = [f"$share/{self.config.shared_group}/{t}" for t in filters]
        if self.config.broker_stats:
            filters += list(SYS_TOPICS)  # every collector reads them itself: never a shared subscription
        return filters

    # --- one message ------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, token: AckToken | None = None) -> None:
        """Decode, validate and batch one message; its ack waits for the batch to be durable."""
        now = self.clock()
        try:
            linenos: list[int] = []
            lines, records, rejects, kind = self.decode(topic, payload, now, linenos)
            if lines:
                lines, records, refused = self.admission.admit(lines, records, topic, linenos or None)
                rejects += refused
                self.metrics.series.set(self.admission.series)
        except Exception as exc:  # a bug of ours must cost one message, dead-lettered, not the pipeline
            log.exception("decoding a message on %s failed", topic)
            lines, records, kind = [], [], "lineprotocol"
            rejects = [Reject("parse_error", f"collector error: {type(exc).__name__}: {exc}",
                              payload[:EXCERPT].decode("utf-8", "replace"), size=len(payload))]
        received = self._received_by_kind.get(kind)
        (received if received is not None else self.metrics.messages_received.labels(kind)).inc()
        for r in rejects:
            self.dead_letter.add(r, topic=topic, now_ns=now, size=r.size)
            self.metrics.rejected.labels(r.reason).inc()
        if not self._lines and not self._acks:
            self._first_at = time.monotonic()
        if lines:
            self.metrics.points_received.inc(len(lines))
            self._lines += lines
            if self.observers:  # only they read the records; without them a batch holds its lines alone
                self._records += records
            self._topics += [topic] * len(lines)
        if token is not None:
            self._acks.append(token)
        if self._lines or self._acks:
            self._has_data.set()
        if len(self._lines) >= self.config.batch_size or len(self._acks) >= self._ack_threshold():
            self._full.set()
            self._room.clear()
        self.metrics.unacked.set(len(self._acks))

    def _ack_threshold(self) -> int:
        # flush before the broker's window of unacknowledged messages (receive maximum) is used up
        return max(1, self.config.receive_maximum // 2)

    def decode(self, topic: str, payload: bytes, now_ns: int, linenos: list[int] | None = None
               ) -> tuple[list[str], list[Record], list[Reject], str]:
        """(valid lines, their records, rejects, payload kind) for one message; ``linenos``, when
        given, receives the payload line number of each valid line-protocol line."""
        if len(payload) > self.config.max_payload_bytes:
            excerpt = payload[:EXCERPT].decode("utf-8", "replace")
            return [], [], [Reject("payload_too_large",
                               f"payload of {len(payload)} bytes is over max_payload_bytes "
                               f"{self.config.max_payload_bytes}; first {EXCERPT} bytes kept", excerpt,
                               size=len(payload))], "lineprotocol"
        for mapping in self.mappings:
            caps = mapping.match(topic)
            if caps is None:
                continue
            try:
                records = mapping.apply(caps, payload, now_ns)
            except MappingError as exc:
                return [], [], [Reject(exc.reason, f"mapping {mapping.name}: {exc.detail}",
                                   payload[:EXCERPT].decode("utf-8", "replace"))], "json"
            except Exception as exc:  # noqa: BLE001 - a payload no mapping foresaw must not stop ingest
                return [], [], [Reject("mapping_error", f"mapping {mapping.name}: {type(exc).__name__}: {exc}",
                                   payload[:EXCERPT].decode("utf-8", "replace"))], "json"
            if not records:
                if mapping.spec.unmatched == "reject":
                    return [], [], [Reject("mapping_error", f"mapping {mapping.name}: no field matched",
                                       payload[:EXCERPT].decode("utf-8", "replace"))], "json"
                self.ignored += 1
                return [], [], [], "json"
            lines, records, rejects = self.validator.check_records(records, now_ns)
            return lines, records, rejects, "json"
        stripped = payload.strip()
        if stripped in STATUS_PAYLOADS and topic.endswith("/status"):
            return [], [], [], "status"
        field = SYS_TOPICS.get(topic)
        if field is not None:
            try:
                value = int(stripped)
            except ValueError:
                return [], [], [Reject("parse_error", f"broker counter {topic} is not an integer",
                                   payload[:EXCERPT].decode("utf-8", "replace"))], "status"
            rec = Record("broker", {"host": self._broker_host}, {field: value}, now_ns)
            lines, records, rejects = self.validator.check_records([rec], now_ns)
            return lines, records, rejects, "status"
        if stripped[:1] in (b"{", b"["):
            return [], [], [Reject("no_mapping", "JSON payload on a topic that no mapping matches",
                               payload[:EXCERPT].decode("utf-8", "replace"))], "json"
        lines, records, rejects = self.validator.read(payload, now_ns, linenos)
        return lines, records, rejects, "lineprotocol"

    # --- batches ----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Make the current batch durable, then acknowledge its messages."""
        async with self._flush_lock:
            lines, records, acks, topics = self._lines, self._records, self._acks, self._topics
            self._lines, self._records, self._acks, self._topics = [], [], [], []
            self._has_data.clear()
            self._full.clear()
            self._room.set()
            report, report_records = self._self_report()
            if report:
                lines = lines + report
                records = records + report_records
                topics = topics + [None] * len(report)
            if not lines and not acks and not self._held_acks:
                return
            if self.observers and lines:
                extra = self._observe(records)
                lines = lines + extra
                topics = topics + [None] * len(extra)
            if lines:
                self.metrics.batch_points.observe(len(lines))
            if len(self.routers) == 1:
                await self.router.deliver(lines, topics)
            else:
                await asyncio.gather(*(r.deliver(lines, topics) for r in self.routers))
            # a refused line is acknowledged only once its dead-letter entry is on disk. While the
            # file system refuses (a full disk), later batches are still written but every
            # acknowledgement waits, so the broker keeps the messages; the flusher tries again
            # each second. Nothing here ends the process.
            self._held_acks += acks
            if self.dead_letter.sync():
                held, self._held_acks = self._held_acks, []
                self._ack(held)
            self.metrics.unacked.set(len(self._acks) + len(self._held_acks))

    def _self_report(self) -> tuple[list[str], list[Record]]:
        """Every ``self_report_s``: an agent record about the collector (spool fill, dead letters),
        so the pipeline rules see it in the stream like any agent's health."""
        every = self.config.self_report_s
        now = time.monotonic()
        if not every or now < self._next_report:
            return [], []
        self._next_report = now + every
        spools = [r.spool for r in self.routers]
        used = max((100.0 * s.bytes / s.max_bytes for s in spools), default=0.0)
        rec = Record("agent", {"component": "collector", "host": self._host},
                     {"up": True, "spool_bytes": sum(s.bytes for s in spools), "spool_used_pct": round(used, 3),
                      "dead_letters_total": self.dead_letter.received, "queue_depth": len(self._acks)},
                     self.clock())
        good, records, _ = self.validator.check_records([rec], self.clock())
        return good, records

    def _observe(self, records: list[Record]) -> list[str]:
        extra: list[str] = []
        for obs in self.observers:
            try:
                out = obs.observe(records) or []
            except Exception:  # an observer's bug must not stop the data
                self.metrics.observer_errors.inc()
                log.exception("observer %r failed; the batch is written without its records", obs)
                continue
            good, _, rejects = self.validator.check_records(out, self.clock())
            for r in rejects:
                self.dead_letter.add(r, topic=None, now_ns=self.clock())
                self.metrics.rejected.labels(r.reason).inc()
            extra += good
            self.metrics.observer_points.inc(len(good))
        return extra

    def _ack(self, acks: Iterable[AckToken]) -> None:
        client = self._client
        n = 0
        for t in acks:
            if t.qos == 0:
                continue
            if client is None or t.generation != self._generation:
                continue  # that connection is gone; the broker sends the message again
            mqtt_boundary.ack(client, t.mid, t.qos)
            n += 1
        self.metrics.messages_acked.inc(n)

    async def _flusher(self) -> None:
        linger = self.config.linger_ms / 1000.0
        while True:
            if self._held_acks and not self._has_data.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._has_data.wait(), timeout=1.0)
                if not self._has_data.is_set():
                    await self.flush()  # nothing new: try the held dead-letter entries again
                    continue
            await self._has_data.wait()
            remaining = self._first_at + linger - time.monotonic()
            if remaining > 0 and not self._full.is_set() and not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), timeout=remaining)
            await self.flush()

    # --- MQTT -------------------------------------------------------------------------------

    def _client_args(self) -> dict[str, Any]:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return mqtt_boundary.client_args(self.mqtt_config, identifier=self.client_id,
                                         protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)

    # Mosquitto 2.0 stops honouring our Receive Maximum once the first acknowledgements come back
    # (measured: with 200 asked and 100 acked it sent 3000), and aiomqtt's queue is unbounded, so a
    # slow sink or a big backlog at the broker would fill our memory. Past a high-water mark of
    # received-but-unhandled messages we stop reading the socket (TCP pushes back on the broker)
    # and start again below a low-water mark.

    def _bound_queue(self, client: Any) -> None:
        self._reading_paused = False
        self._high_water = max(10, self.config.receive_maximum)
        self._low_water = self._high_water // 4

        def check() -> None:
            if not self._reading_paused and mqtt_boundary.queue_size(client) >= self._high_water:
                self._pause_reading(client)

        mqtt_boundary.after_each_message(client, check)

    def _pause_reading(self, client: Any) -> None:
        if mqtt_boundary.pause_reading(client):
            self._reading_paused = True
            self.metrics.read_pauses.inc()

    def _resume_reading(self, client: Any) -> None:
        self._reading_paused = False
        mqtt_boundary.resume_reading(client)

    async def _subscribe(self, client: Any, options: Any) -> None:
        """Subscribe (again: a resumed session keeps its subscriptions, a new one has none)."""
        import aiomqtt

        wait = 1.0
        while True:
            try:
                # always QoS 1: QoS 0 has nothing to acknowledge, and with QoS 2 the broker lets
                # go of a message at PUBREC, before it is durable here
                await client.subscribe([(t, options(qos=1)) for t in self.subscriptions()], timeout=60)
            except aiomqtt.MqttError as exc:
                log.warning("subscribing to %s failed (%s); trying again in %.0f s", self.subscriptions(), exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 30.0)
                continue
            self.connected.set()
            log.info("connected to %s as %s; subscribed to %s", self.mqtt_config.url, self.client_id,
                     ", ".join(self.subscriptions()))
            return

    async def _mqtt(self) -> None:
        import aiomqtt
        from paho.mqtt.subscribeoptions import SubscribeOptions

        args = self._client_args()
        backoff = 0.2
        while not self.stopping.is_set():
            client = aiomqtt.Client(**args)
            mqtt_boundary.enable_manual_ack(client)  # PUBACK after durable, not on receipt
            self._bound_queue(client)
            try:
                async with client:
                    self._generation += 1
                    self._client = client
                    self.metrics.mqtt_connected.set(1)
                    self.metrics.mqtt_connects.inc()
                    backoff = 0.2
                    # Subscribe while already taking messages: a resumed session floods its backlog
                    # at once, and the SUBACK queues behind it (waiting for it first, with reading
                    # paused at the high-water mark, would never end).
                    subscribing = asyncio.create_task(self._subscribe(client, SubscribeOptions))
                    try:
                        async for msg in client.messages:
                            if self._reading_paused and mqtt_boundary.queue_size(client) <= self._low_water:
                                self._resume_reading(client)
                            if not self._room.is_set():
                                await self._room.wait()
                            payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                            self.handle(msg.topic.value, payload, AckToken(self._generation, msg.mid, msg.qos))
                            if self.stopping.is_set():
                                break
                    finally:
                        subscribing.cancel()
            except aiomqtt.MqttError as exc:
                if self.stopping.is_set():
                    break
                log.warning("MQTT %s: %s; reconnecting in %.1f s", self.mqtt_config.url, mqtt_boundary.describe(exc),
                            backoff)
            finally:
                self._client = None
                self.connected.clear()
                self.metrics.mqtt_connected.set(0)
            if self.stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, 10.0)

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop()``: ingest, flush, drain. On stop, the last batch is flushed and acked."""
        tasks = [asyncio.create_task(self._flusher(), name="flusher")]
        tasks += [asyncio.create_task(r.drain(self.stopping), name=f"drain {r.sink.name}") for r in self.routers]
        mqtt_task = asyncio.create_task(self._mqtt(), name="mqtt")
        try:
            stop_task = asyncio.create_task(self.stopping.wait())
            done, _ = await asyncio.wait([mqtt_task, stop_task, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop_task and t.exception() is not None:
                    raise t.exception()
        finally:
            self.stopping.set()
            # stop taking messages but keep the connection, so the last batch can be acknowledged
            await self._quiesce(mqtt_task)
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.close()

    async def _quiesce(self, mqtt_task: asyncio.Task) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=30)
        mqtt_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await mqtt_task

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        for obs in self.observers:
            closer = getattr(obs, "close", None)
            if callable(closer):
                with contextlib.suppress(Exception):
                    closer()
        self.dead_letter.close()
        for r in self.routers:
            r.spool.close()
            with contextlib.suppress(Exception):
                r.sink.close()


def covers(outer: str, inner: str) -> bool:
    """True when every topic matching MQTT filter ``inner`` also matches filter ``outer``."""
    a, b = outer.split("/"), inner.split("/")
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(b) or b[i] == "#":
            return False
        if level != "+" and (b[i] == "+" or b[i] != level):
            return False
    return len(a) == len(b)


def make_observers(config: CollectorConfig, site_or_config: Any, registry: CollectorRegistry | None = None
                   ) -> list[Observer]:
    """The alert engine's observer when ``collector.alerts`` is on (imported only then); its action
    counters go into ``registry`` (the collector's /metrics)."""
    if not config.alerts:
        return []
    try:
        from dcim.alerts.live import make_observer  # noqa: PLC0415
    except ImportError as exc:
        msg = (f"collector.alerts is true but the live alert engine cannot be loaded ({exc}); "
               "set collector.alerts: false or install the alerts package")
        raise ConfigError(msg) from exc
    if registry is None:
        return [make_observer(site_or_config)]
    return [make_observer(site_or_config, registry=registry)]

