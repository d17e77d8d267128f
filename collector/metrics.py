"""The collector's self-metrics, on a registry passed in (a fresh one per collector, per test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dcim.collector.validate import REASONS


class CollectorMetrics:
    """Every component counts received, sent, rejected and dropped; these are their names."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        p = "dcim_collector_"
        self.messages_received = Counter(p + "messages_received_total", "MQTT messages received, by payload kind",
                                         ["kind"], registry=r)
        self.messages_acked = Counter(p + "messages_acked_total", "MQTT messages acknowledged after their points were durable",
                                      registry=r)
        self.points_received = Counter(p + "points_received_total", "valid points taken from messages", registry=r)
        self.points_written = Counter(p + "points_written_total", "points the sink accepted", ["sink"], registry=r)
        self.points_spooled = Counter(p + "points_spooled_total", "points written to the disk spool", registry=r)
        self.rejected = Counter(p + "rejected_total", "lines refused and dead-lettered, by reason", ["reason"], registry=r)
        self.dropped = Counter(p + "dropped_total",
                               "damaged spool batches that could not be read back (their points are lost); "
                               "should stay 0", registry=r)
        self._corrupt_seen = 0
        self._spools: dict[int, object] = {}
        self._full: set[int] = set()
        self.observer_points = Counter(p + "observer_points_total", "points added by observers (alert transitions)",
                                       registry=r)
        self.observer_errors = Counter(p + "observer_errors_total", "observer calls that raised", registry=r)
        self.sink_errors = Counter(p + "sink_errors_total", "failed sink writes, by HTTP status (or 'network')",
                                   ["sink", "status"], registry=r)
        self.batch_latency = Histogram(p + "batch_latency_seconds", "time to make one batch durable (sink or spool)",
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                       registry=r)
        self.batch_points = Histogram(p + "batch_points", "points per batch",
                                      buckets=(10, 100, 500, 1000, 2500, 5000, 10000, 50000), registry=r)
        self.spool_bytes = Gauge(p + "spool_bytes", "bytes waiting in the disk spool", registry=r)
        self.spool_segments = Gauge(p + "spool_segments", "segment files in the disk spool", registry=r)
        self.spool_points = Gauge(p + "spool_points", "points waiting in the disk spool", registry=r)
        self.spool_limit = Gauge(p + "spool_limit_bytes", "size cap of the disk spool", registry=r)
        self.spool_near_full = Gauge(p + "spool_near_full",
                                     "1 when the spool is past its warning ratio (alert on this)", registry=r)
        self.spool_full = Gauge(p + "spool_full",
                                "1 while the spool is at its cap and messages stay with the broker", registry=r)
        self.spool_errors = Counter(p + "spool_errors_total",
                                    "batches the spool could not take (full: at its cap; disk: the file system "
                                    "refused, a full disk) or drain; each is held and tried again", ["kind"],
                                    registry=r)
        for kind in ("full", "disk", "drain"):
            self.spool_errors.labels(kind)
        self.dead_letter_errors = Counter(p + "dead_letter_errors_total",
                                          "dead-letter writes the file system refused; the messages behind them "
                                          "stay unacknowledged until a retry succeeds", registry=r)
        self.dead_letter_pending = Gauge(p + "dead_letter_pending",
                                         "dead-letter entries held in memory, not yet durable", registry=r)
        self.dead_letter_rotations = Counter(p + "dead_letter_rotations_total",
                                             "times the dead-letter file was rotated to .1", registry=r)
        self.dead_letter_discarded = Counter(p + "dead_letter_discarded_total",
                                             "dead-letter entries deleted with the .1 file a rotation replaced",
                                             registry=r)
        self.series = Gauge(p + "series", "series (measurement + tags) admitted since start; new ones past "
                            "max_series are refused with reason series_budget", registry=r)
        self.mqtt_connected = Gauge(p + "mqtt_connected", "1 while connected to the broker", registry=r)
        self.mqtt_connects = Counter(p + "mqtt_connects_total", "successful connections to the broker", registry=r)
        self.read_pauses = Counter(p + "read_pauses_total",
                                   "times reading from the broker paused because too many messages waited",
                                   registry=r)
        self.unacked = Gauge(p + "unacked_messages", "messages received and not yet acknowledged", registry=r)
        self.sink_up = Gauge(p + "sink_up", "1 when the last sink write succeeded", ["sink"], registry=r)
        for reason in REASONS:
            self.rejected.labels(reason)
        for kind in ("lineprotocol", "json", "status"):
            self.messages_received.labels(kind)

    def update_spool(self, spool) -> None:  # noqa: ANN001
        """The spool gauges, summed over every sink's spool (near full: any of them)."""
        spools = self._spools
        spools[id(spool)] = spool
        self.spool_bytes.set(sum(s.bytes for s in spools.values()))
        self.spool_segments.set(sum(s.segments for s in spools.values()))
        self.spool_points.set(sum(s.lines for s in spools.values()))
        self.spool_limit.set(sum(s.max_bytes for s in spools.values()))
        self.spool_near_full.set(1 if any(s.near_full for s in spools.values()) else 0)
        corrupt = sum(s.corrupt for s in spools.values())
        if corrupt > self._corrupt_seen:
            self.dropped.inc(corrupt - self._corrupt_seen)
            self._corrupt_seen = corrupt

    def set_spool_full(self, who: object, full: bool) -> None:
        """``spool_full`` is 1 while any sink's spool holds a batch back."""
        if full:
            self._full.add(id(who))
        else:
            self._full.discard(id(who))
        self.spool_full.set(1 if self._full else 0)
