"""The agents' MQTT publisher: a bounded in-order queue drained to the broker with QoS acknowledgement.

One background task owns the connection. A message leaves the queue only after the broker
acknowledged it (aiomqtt's ``publish`` awaits the PUBACK at QoS 1), so a broker restart loses
nothing that was queued; a message whose PUBACK was lost in a disconnect is sent again, which
the pipeline tolerates (a point is keyed by series and time, a duplicate overwrites itself).

Drop policy when the queue is full: **drop the oldest**. A poll is a snapshot of the device; after
a long outage the samples closest to "now" are what alerting and dashboards need first, and the
loss becomes one contiguous gap at the start of the outage instead of a hole right before
recovery. ``publish`` still answers False so the caller knows data was lost, and the drop counts.

``publish`` is not thread-safe: call it from the event loop that runs ``async with publisher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import aiomqtt
from prometheus_client import CollectorRegistry, Counter, Gauge

from dcim.config import MqttConfig
from dcim.errors import ConfigError
from dcim.mqtt import broker_address, describe, tls_context

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"


def count_lines(payload: bytes) -> int:
    """Points in a line-protocol payload: its non-empty lines that are not comments."""
    return sum(1 for line in payload.split(b"\n") if line.strip() and not line.lstrip().startswith(b"#"))


class Publisher:
    """``async with Publisher(...) as p: p.publish(topic, payload)``; see the module docstring."""

    def __init__(
        self,
        mqtt: MqttConfig,
        *,
        client_id: str,
        status_topic: str,
        queue_max: int,
        registry: CollectorRegistry,
        component: str,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        if queue_max < 1:
            msg = "queue_max must be at least 1"
            raise ConfigError(msg)
        self._cfg = mqtt
        # Resolved now so a missing secret is a clear error at start, not a dead background task.
        self._password = mqtt.password.resolve() if mqtt.password is not None else None
        self._host, self._port, tls_scheme = broker_address(mqtt.url)
        self._tls = tls_scheme or mqtt.ca_file is not None or mqtt.cert_file is not None
        self.client_id = client_id
        self.status_topic = status_topic
        self.queue_max = queue_max
        self.component = component
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._queue: deque[tuple[str, bytes]] = deque()
        self._inflight: tuple[str, bytes] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._connected = False
        self._last_error: str | None = None
        self.published = 0
        self.published_points = 0  # line-protocol lines inside acknowledged messages
        self.dropped = 0
        labels = ("component",)
        self._m_depth = Gauge("dcim_agent_queue_depth", "Messages waiting for the MQTT broker",
                              labels, registry=registry).labels(component)
        self._m_dropped = Counter("dcim_agent_dropped", "Messages dropped because the queue was full",
                                  labels, registry=registry).labels(component)
        self._m_published = Counter("dcim_agent_published", "Messages the MQTT broker acknowledged",
                                    labels, registry=registry).labels(component)
        self._m_published_points = Counter("dcim_agent_published_points",
                                           "Points (line-protocol lines) inside messages the MQTT broker acknowledged",
                                           labels, registry=registry).labels(component)
        self._m_connected = Gauge("dcim_agent_mqtt_connected", "1 while connected to the MQTT broker",
                                  labels, registry=registry).labels(component)

    # -- the caller's side -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Messages not yet acknowledged by the broker (queued plus in flight)."""
        return len(self._queue) + (self._inflight is not None)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue one message without blocking; False when the queue was full and the oldest was dropped."""
        ok = True
        if self.depth >= self.queue_max:
            if self._queue:
                self._queue.popleft()
            else:  # queue_max == 1 and the only message is in flight: refuse the new one instead
                self._count_drop()
                return False
            self._count_drop()
            ok = False
        self._queue.append((topic, payload))
        self._idle.clear()
        self._m_depth.set(self.depth)
        self._wake.set()
        return ok

    async def flush(self, timeout_s: float) -> bool:
        """Wait until the broker acknowledged everything queued; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Publisher:
        self._task = asyncio.create_task(self._run(), name=f"publisher-{self.component}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_connected(False)
        # final totals, exact (a last /metrics scrape can miss the acks of the closing flush)
        log.info("%s: stopped; the broker acknowledged %d messages (%d points); %d dropped, %d unacknowledged",
                 self.component, self.published, self.published_points, self.dropped, self.depth)

    # -- the connection task -----------------------------------------------------------------

    def _count_drop(self) -> None:
        self.dropped += 1
        self._m_dropped.inc()

    def _set_connected(self, up: bool) -> None:
        self._connected = up
        self._m_connected.set(1 if up else 0)

    def _make_client(self) -> aiomqtt.Client:
        cfg = self._cfg
        password = self._password.get_secret_value() if self._password is not None else None
        return aiomqtt.Client(
            self._host,
            self._port,
            username=cfg.username,
            password=password,
            identifier=self.client_id,
            keepalive=cfg.keepalive_s,
            timeout=self._timeout_s,
            will=aiomqtt.Will(self.status_topic, OFFLINE, qos=cfg.qos, retain=True),
            tls_context=tls_context(cfg) if self._tls else None,
        )

    async def _run(self) -> None:
        backoff_s = self._backoff_initial_s
        while True:
            try:
                client = self._make_client()
                await client.__aenter__()
            except (aiomqtt.MqttError, OSError, ValueError, ConfigError) as exc:  # ConfigError: TLS files
                self._note_error(f"cannot connect to {self._host}:{self._port}: {describe(exc)}")
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._backoff_max_s)
                continue
            self._client = client
            try:
                await client.publish(self.status_topic, ONLINE, qos=self._cfg.qos, retain=True)
                self._set_connected(True)
                if self._last_error is not None:
                    log.warning("%s: connected to MQTT broker %s:%d again", self.component, self._host, self._port)
                else:
                    log.info("%s: connected to MQTT broker %s:%d", self.component, self._host, self._port)
                self._last_error = None
                backoff_s = self._backoff_initial_s
                await self._drain(client)
            except aiomqtt.MqttError as exc:
                self._note_error(f"connection to {self._host}:{self._port} lost: {describe(exc)}")
            except asyncio.CancelledError:
                if self._connected:  # a clean disconnect does not fire the will: say offline ourselves
                    with contextlib.suppress(Exception):
                        await client.publish(self.status_topic, OFFLINE, qos=self._cfg.qos, retain=True,
                                             timeout=2.0)
                raise
            finally:
                self._set_connected(False)
                self._client = None
                if self._inflight is not None:  # not acknowledged: it goes first again
                    self._queue.appendleft(self._inflight)
                    self._inflight = None
                with contextlib.suppress(Exception):
                    await client.__aexit__(None, None, None)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self._backoff_max_s)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Send queued messages in order until the connection fails (raises MqttError)."""
        watcher = asyncio.create_task(self._watch(client))
        try:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._wake.clear()
                    waiter = asyncio.create_task(self._wake.wait())
                    done, _ = await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                    if watcher in done:
                        waiter.cancel()
                        watcher.result()  # raises the MqttError that ended the connection
                        msg = "disconnected"
                        raise aiomqtt.MqttError(msg)
                    continue
                self._inflight = self._queue.popleft()
                topic, payload = self._inflight
                await client.publish(topic, payload, qos=self._cfg.qos, timeout=self._timeout_s)
                self._inflight = None
                self.published += 1
                self._m_published.inc()
                points = count_lines(payload)
                self.published_points += points
                self._m_published_points.inc(points)
                self._m_depth.set(self.depth)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await watcher

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Returns (by raising MqttError) when the connection drops, even while the queue is idle."""
        async for _ in client.messages:  # nothing is subscribed; this only waits for a disconnect
            pass

    def _note_error(self, text: str) -> None:
        # Log each kind of failure once per outage, not on every retry.
        if text != self._last_error:
            log.warning("%s: %s; retrying with backoff (queue %d)", self.component, text, self.depth)
        self._last_error = text
