"""The GPU node agent: poll NVML on an interval, publish each poll as line protocol, serve /metrics.

``GpuAgent`` is the synchronous core (one ``poll()`` -> records), which also re-opens NVML with
capped exponential backoff after a lost GPU or a missing library. ``run_agent`` is the async
loop around it: polls run in a worker thread so a slow driver call never stalls the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from dcim.agents.gpu.metrics import GpuCollector, Snapshot
from dcim.agents.gpu.reader import UNFILLED, NvmlReader
from dcim.agents.gpu.records import agent_record, gpu_health_record, gpu_records
from dcim.agents.gpu.xid import XidStore, XidWatcher
from dcim.errors import DeviceError
from dcim.lineprotocol.encode import encode
from dcim.record import Record

log = logging.getLogger(__name__)


class GpuAgent:
    """Reads every GPU of one node through ``backend`` (``pynvml`` or ``dcim.simulators.nvml.SimNvml``)."""

    def __init__(
        self,
        backend: Any,
        *,
        tags: Mapping[str, str],
        registry: CollectorRegistry,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        reinit_backoff_initial_s: float = 1.0,
        reinit_backoff_max_s: float = 60.0,
        xid_timeout_ms: int = 500,
        xid_events: bool = True,
    ) -> None:
        self.reader = NvmlReader(backend, monotonic=monotonic)
        self.tags = dict(tags)  # site, room, row, rack, node
        self.node = self.tags.get("node", "")
        self.clock_ns = clock_ns
        self.monotonic = monotonic
        self.xids = XidStore()
        self._xid_enabled = xid_events
        self._xid = XidWatcher(backend, self.xids, timeout_ms=xid_timeout_ms, clock=lambda: clock_ns() / 1e9)
        self.collector = GpuCollector(registry)
        self._backoff_initial_s = reinit_backoff_initial_s
        self._backoff_max_s = reinit_backoff_max_s
        self._backoff_s = reinit_backoff_initial_s
        self._next_open = 0.0
        self.polls_total = 0
        self.reinits_total = 0
        self.errors_total = 0
        self.message: str | None = None
        self.queue_stats: Callable[[], tuple[int, int]] | None = None  # (depth, dropped) from the publisher

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open NVML now; DeviceError says why it cannot (the run loop retries, ``--once`` reports)."""
        self.reader.open()
        self._after_open()

    def close(self) -> None:
        self._xid.stop()
        self.reader.close()

    def _after_open(self) -> None:
        self.message = None
        self._backoff_s = self._backoff_initial_s
        if self._xid_enabled:
            self._xid.start(self.reader.gpus)
        for g in self.reader.gpus:
            log.info("GPU %d: %s %s (%s)", g.index, g.model, g.uuid, g.pci_bus_id)

    def _try_open(self, now: float) -> None:
        """(Re)open NVML when due; on failure wait longer next time, up to the cap."""
        if now < self._next_open:
            return
        was_open = self.reader.is_open
        self._xid.stop()
        try:
            self.reader.reopen() if was_open else self.reader.open()
        except DeviceError as exc:
            if str(exc) != self.message:
                log.error("%s; retrying in %.0f s (backoff up to %.0f s)", exc, self._backoff_s, self._backoff_max_s)
            self.message = str(exc)
            self._next_open = now + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
            return
        if was_open:
            self.reinits_total += 1
        if self._xid_enabled:
            self._xid.start(self.reader.gpus)
        # The next re-open (a GPU still lost, or the library failing again) waits longer each time;
        # a fully healthy poll resets the backoff.
        self._next_open = now + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
        if not any(g.lost for g in self.reader.gpus):
            self.message = None

    # -- one poll --------------------------------------------------------------------------

    def poll(self) -> list[Record]:
        """Read every GPU once; never raises for NVML trouble (it shows in the records instead)."""
        t0 = self.monotonic()
        time_ns = self.clock_ns()
        if self.reader.needs_reopen:
            self._try_open(t0)
        readings = [self.reader.read(g) for g in self.reader.gpus] if self.reader.is_open else []
        if self.reader.broken:
            self.message = "NVML library error; re-opening"
        elif self.reader.is_open and not any(g.lost for g in self.reader.gpus):
            self._backoff_s = self._backoff_initial_s
        duration_s = self.monotonic() - t0
        self.polls_total += 1
        self.errors_total = sum(g.errors_total for g in self.reader.gpus)
        records: list[Record] = []
        base = self.tags
        health_base = {**base, "host": self.node}
        for r in readings:
            uuid = r.gpu.uuid
            records.extend(gpu_records(base, r, self.xids.summary(uuid), self.xids.supported.get(uuid, False),
                                       time_ns))
            records.append(gpu_health_record(health_base, r, time_ns))
        depth, dropped = self.queue_stats() if self.queue_stats else (None, None)
        up = self.reader.is_open and not self.reader.broken
        records.append(agent_record(health_base, up=up, poll_duration_s=duration_s, errors_total=self.errors_total,
                                    queue_depth=depth, dropped_total=dropped, message=self.message,
                                    time_ns=time_ns))
        self._update_metrics(readings, up, duration_s)
        return records

    def stuck_record(self, elapsed_s: float) -> Record:
        """The agent record sent while a poll has not returned: a wedged driver call must not be silent."""
        depth, dropped = self.queue_stats() if self.queue_stats else (None, None)
        return agent_record({**self.tags, "host": self.node}, up=False, poll_duration_s=elapsed_s,
                            errors_total=self.errors_total, queue_depth=depth, dropped_total=dropped,
                            message=f"poll stuck in an NVML call for {elapsed_s:.0f} s", time_ns=self.clock_ns())

    def failed_record(self, exc: BaseException) -> Record:
        """The agent record sent for a poll that raised: ``up=false`` and what went wrong."""
        depth, dropped = self.queue_stats() if self.queue_stats else (None, None)
        return agent_record({**self.tags, "host": self.node}, up=False, poll_duration_s=0.0,
                            errors_total=self.errors_total, queue_depth=depth, dropped_total=dropped,
                            message=f"poll failed: {type(exc).__name__}: {exc}"[:500], time_ns=self.clock_ns())

    def _update_metrics(self, readings: list, up: bool, duration_s: float) -> None:
        errors = {}
        unsupported = []
        for g in self.reader.gpus:
            for fname, n in g.errors_by_field.items():
                errors[(str(g.index), g.uuid, fname)] = n
            unsupported.extend((str(g.index), g.uuid, f, reason) for f, reason in sorted(g.unsupported.items()))
            unsupported.extend((str(g.index), g.uuid, f, "MIG") for f in g.mig_hidden)
            unsupported.extend((str(g.index), g.uuid, f, UNFILLED) for f in sorted(g.unfilled))
        self.collector.update(Snapshot(
            node=self.node, driver_version=self.reader.driver_version or "", readings=readings,
            xids={r.gpu.uuid: self.xids.summary(r.gpu.uuid) for r in readings},
            xid_supported={r.gpu.uuid: self.xids.supported.get(r.gpu.uuid, False) for r in readings}, nvml_up=up,
            polls_total=self.polls_total, poll_duration_s=duration_s, reinits_total=self.reinits_total,
            errors_by_field=errors, unsupported=unsupported,
        ))


def gpu_topic(prefix: str, tags: Mapping[str, str]) -> str:
    """``dcim/<site>/<rack>/<node>/gpu``."""
    return f"{prefix}/{tags['site']}/{tags['rack']}/{tags['node']}/gpu"


async def run_agent(agent: GpuAgent, publisher: Any, *, topic: str, interval_s: float,
                    stop: asyncio.Event, polls: int | None = None, stuck_after_s: float | None = None) -> int:
    """Poll every ``interval_s`` on a fixed schedule and publish each poll as one message; returns polls done.

    A poll that has not returned after ``stuck_after_s`` (default: 5 intervals, at least 5 s) is
    reported by an ``agent`` record with ``up=false`` every interval until it returns; no second
    poll is started meanwhile, since NVML calls cannot be cancelled.
    """
    agent.queue_stats = lambda: (publisher.depth, publisher.dropped)
    stuck_s = stuck_after_s if stuck_after_s is not None else max(5.0, 5 * interval_s)
    loop = asyncio.get_running_loop()
    next_t = loop.time()
    done = 0
    while not stop.is_set() and (polls is None or done < polls):
        started = loop.time()
        task = asyncio.ensure_future(asyncio.to_thread(agent.poll))
        wait_s = stuck_s
        while not (await asyncio.wait({task}, timeout=wait_s))[0]:
            elapsed = loop.time() - started
            log.error("poll has not returned for %.0f s (stuck NVML call?)", elapsed)
            publisher.publish(topic, encode([agent.stuck_record(elapsed)]).encode())
            wait_s = interval_s
        try:
            records = task.result()
        except Exception as exc:  # noqa: BLE001 - a poll that breaks is reported; the agent lives on
            log.exception("poll failed")
            records = [agent.failed_record(exc)]
        publisher.publish(topic, encode(records).encode())
        done += 1
        next_t += interval_s
        delay = next_t - loop.time()
        if delay < 0:  # a poll overran: skip missed ticks rather than bursting to catch up
            next_t = loop.time()
            delay = 0
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
    return done
