"""Route a batch to the sink, or to the disk spool when the sink cannot take it, and drain the spool.

``deliver`` returns only once the batch is durable: accepted by the sink, dead-lettered line by
line where the sink refused it, or fsynced into the spool. While the spool holds anything, new
batches go behind it, so every series keeps its order. A batch is spooled in pieces that fit the
spool; while a piece finds no room (the cap, a full disk) it is held in memory, and whenever the
spool is empty the sink is tried with it directly, so nothing waits on a spool that cannot take it.
The caller holds the MQTT acknowledgements all that time. Answers by kind:

    done (2xx)                  count it
    SinkRejected (400, 422)     bisect: halves are resent (an accepted line is idempotent) until the
                                refused lines stand alone; those go to the dead-letter file
    BatchTooLarge (413)         split in halves and send each; one line too large is dead-lettered
    SinkUnavailable             spool; wait Retry-After (429/503) or back off 0.5 s doubling to
                                retry_max_s before the next try
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from dcim.collector.deadletter import DeadLetter
from dcim.collector.metrics import CollectorMetrics
from dcim.collector.sinks import Sink
from dcim.collector.spool import Spool
from dcim.collector.validate import Reject
from dcim.errors import BatchTooLarge, SinkRejected, SinkUnavailable, SpoolFull

log = logging.getLogger(__name__)

RETRY_AFTER_MAX_S = 600.0


def encode_body(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


#: last line of a spooled batch: the MQTT topic of each line, run-length encoded, so a line the
#: store refuses later is dead-lettered with the topic it came on (a comment to line protocol)
TOPICS_MARK = b"#dcim-topics "


def spool_body(lines: list[str], topics: list[str | None] | None) -> bytes:
    body = encode_body(lines)
    if not topics:
        return body
    runs: list[list] = []
    for t in topics:
        if runs and runs[-1][0] == t:
            runs[-1][1] += 1
        else:
            runs.append([t, 1])
    return body + TOPICS_MARK + json.dumps(runs, separators=(",", ":")).encode() + b"\n"


def read_spool_body(body: bytes) -> tuple[list[str], bytes, list[str | None] | None]:
    """(lines, the body to send, topics per line or None) of a spooled batch."""
    topics = None
    mark = body.rfind(b"\n" + TOPICS_MARK)
    if mark >= 0 or body.startswith(TOPICS_MARK):
        cut = mark + 1 if mark >= 0 else 0
        try:
            runs = json.loads(body[cut + len(TOPICS_MARK):])
            topics = [t for t, n in runs for _ in range(n)]
        except (ValueError, TypeError):
            topics = None
        body = body[:cut]
    lines = body.decode().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if topics is not None and len(topics) != len(lines):
        topics = None
    return lines, body, topics


class Router:
    def __init__(self, sink: Sink, spool: Spool, dead_letter: DeadLetter, metrics: CollectorMetrics, *,
                 retry_max_s: float = 30.0, monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.sink = sink
        self.spool = spool
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.retry_max_s = retry_max_s
        self.monotonic = monotonic
        self.clock = clock
        self._failures = 0
        self._retry_at = 0.0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._sink_down = False
        self._full_logged = False
        self.metrics.sink_up.labels(sink.name).set(1)
        self.metrics.update_spool(spool)

    # --- the live path ----------------------------------------------------------------------

    async def deliver(self, lines: list[str], topics: list[str | None] | None = None) -> None:
        """Make ``lines`` durable: in the sink, or in the spool (waiting while the spool is full).
        ``topics`` gives each line's MQTT topic, for the dead-letter file."""
        if not lines:
            return
        body = encode_body(lines)
        t0 = self.monotonic()
        if self.spool.empty() and self.monotonic() >= self._retry_at:
            try:
                await self._write(lines, body, topics)
                self._sink_ok()
                self.metrics.batch_latency.observe(self.monotonic() - t0)
                return
            except SinkUnavailable as exc:
                self._sink_failed(exc)
        for lo, hi in self._pieces(lines):
            await self._hold(lines[lo:hi], topics[lo:hi] if topics else None)
        self.metrics.batch_latency.observe(self.monotonic() - t0)

    def _pieces(self, lines: list[str]) -> list[tuple[int, int]]:
        """The batch cut into runs (index ranges) whose spooled size stays within half the spool's cap."""
        limit = max(1024, self.spool.max_bytes // 2)
        pieces: list[tuple[int, int]] = []
        start = 0
        size = 0
        for i, line in enumerate(lines):
            n = len(line) + 1 if line.isascii() else len(line.encode()) + 1
            if i > start and size + n > limit:
                pieces.append((start, i))
                start, size = i, 0
            size += n
        pieces.append((start, len(lines)))
        return pieces

    async def _hold(self, lines: list[str], topics: list[str | None] | None) -> None:
        """Make one piece durable: in the spool, or in the sink whenever the spool is empty."""
        body = encode_body(lines)
        spooled = spool_body(lines, topics)
        while True:
            if self.spool.empty() and self.monotonic() >= self._retry_at:
                try:
                    await self._write(lines, body, topics)
                except SinkUnavailable as exc:
                    self._sink_failed(exc)
                else:
                    self._sink_ok()
                    break
            try:
                self.spool.append(spooled, len(lines))
            except (SpoolFull, OSError) as exc:
                self.metrics.set_spool_full(self, True)
                self.metrics.spool_errors.labels("full" if isinstance(exc, SpoolFull) else "disk").inc()
                if not self._full_logged:
                    self._full_logged = True
                    log.error("cannot spool a batch (%s); holding it and the MQTT messages behind it "
                              "unacknowledged, so the broker keeps them, and trying the sink until it "
                              "takes them", exc)
                self._wake.set()
                self._room.clear()
                wait = max(0.05, min(1.0, self._retry_at - self.monotonic()))
                try:
                    await asyncio.wait_for(self._room.wait(), timeout=wait)
                except TimeoutError:
                    pass
                continue
            self.metrics.points_spooled.inc(len(lines))
            self._wake.set()
            break
        if self._full_logged:
            log.warning("the held batch is durable again; taking new messages")
        self._full_logged = False
        self.metrics.set_spool_full(self, False)
        self.metrics.update_spool(self.spool)

    # --- writing with split and bisect -------------------------------------------------------

    async def _write(self, lines: list[str], body: bytes | None = None,
                     topics: list[str | None] | None = None) -> None:
        """Write lines to the sink; refused lines end in the dead-letter file. SinkUnavailable propagates."""
        if body is None:
            body = encode_body(lines)
        try:
            await self.sink.write(body)
        except (BatchTooLarge, SinkRejected) as exc:
            self._count_error(exc.status or "refused")  # no status: the sink refused before sending
            if len(lines) == 1:
                self._dead(lines[0], exc, topics[0] if topics else None)
                return
            if isinstance(exc, BatchTooLarge):
                log.info("%s: batch of %d lines too large (413); splitting it", self.sink.name, len(lines))
            half = len(lines) // 2
            await self._write(lines[:half], None, topics[:half] if topics else None)
            await self._write(lines[half:], None, topics[half:] if topics else None)
            return
        self.metrics.points_written.labels(self.sink.name).inc(len(lines))

    def _dead(self, line: str, exc: Exception, topic: str | None) -> None:
        status = getattr(exc, "status", None)
        detail = f"HTTP {status}: {exc}" if status else str(exc)
        self.dead_letter.add(Reject("sink_rejected", detail, line), topic=topic, now_ns=self.clock())
        self.metrics.rejected.labels("sink_rejected").inc()

    def _count_error(self, status: int | None) -> None:
        self.metrics.sink_errors.labels(self.sink.name, str(status) if status else "network").inc()

    def _sink_failed(self, exc: SinkUnavailable) -> None:
        self._count_error(exc.status)
        self._failures += 1
        delay = min(self.retry_max_s, 0.5 * 2 ** min(self._failures - 1, 16))
        if exc.retry_after_s is not None:
            delay = min(max(exc.retry_after_s, 0.0), RETRY_AFTER_MAX_S)
        self._retry_at = self.monotonic() + delay
        self.metrics.sink_up.labels(self.sink.name).set(0)
        if not self._sink_down:
            self._sink_down = True
            log.warning("%s unavailable (%s); spooling to %s and retrying", self.sink.name, exc, self.spool.path)
        else:
            log.debug("%s still unavailable (%s); next try in %.1f s", self.sink.name, exc, delay)

    def _sink_ok(self) -> None:
        self._failures = 0
        self._retry_at = 0.0
        self.metrics.sink_up.labels(self.sink.name).set(1)
        if self._sink_down:
            self._sink_down = False
            log.warning("%s is back; draining %d spooled batches", self.sink.name, self.spool.batches)

    # --- draining the spool -----------------------------------------------------------------

    async def drain(self, stop: asyncio.Event | None = None) -> None:
        """Run forever (until ``stop``): send spooled batches, oldest first, as the sink allows.

        Nothing it meets ends it: a file-system error while reading or moving past a batch is
        logged and counted, and the batch is tried again after the retry delay.
        """
        while stop is None or not stop.is_set():
            if self.spool.empty():
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._retry_at - self.monotonic()
            if wait > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                except TimeoutError:
                    pass
                continue
            try:
                await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the drain must outlive whatever the disk does
                self.metrics.spool_errors.labels("drain").inc()
                log.exception("draining the spool failed (%s); trying again", exc)
                self._failures += 1
                self._retry_at = self.monotonic() + min(self.retry_max_s, 0.5 * 2 ** min(self._failures - 1, 16))

    async def drain_once(self) -> bool:
        """Send the oldest spooled batch; True when it left the spool."""
        item = self.spool.peek()
        self.metrics.update_spool(self.spool)  # peek may have skipped a damaged batch
        if item is None:
            return False
        lines, body, topics = read_spool_body(item[0])
        try:
            await self._write(lines, body, topics)
        except SinkUnavailable as exc:
            self._sink_failed(exc)
            return False
        if not self.dead_letter.sync():
            # the lines the sink refused are not durable yet: keep the batch (the store takes it
            # again as an overwrite) and try later
            self._retry_at = self.monotonic() + 1.0
            return False
        self.spool.pop()
        self._sink_ok()
        self.metrics.update_spool(self.spool)
        self._room.set()
        return True
