"""The alert engine's and notifiers' self-metrics for /metrics, on the registry passed in (no global state).

Names follow Prometheus's own rule-manager and notifier metrics (prometheus_rule_evaluations_total,
prometheus_rule_evaluation_duration_seconds, prometheus_notifications_sent_total / _errors_total).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

#: Seconds; an evaluation of the default pack over a hall takes 0.1-10 ms.
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# What each notifier counts, by attribute: (sent, failed).
_COUNTS = {"alertmanager": ("posts", "errors"), "webhook": ("sent", "failed")}


class _NotifierCollector:
    """Reads each notifier's own sent/failed counts at scrape time (they count on their worker threads)."""

    def __init__(self, notifiers: Sequence[Any]) -> None:
        self.notifiers = list(notifiers)

    def collect(self) -> Iterator[CounterMetricFamily]:
        sent = CounterMetricFamily("dcim_alert_notifications_sent", "Notification requests a peer accepted.",
                                   labels=["notifier"])
        failed = CounterMetricFamily("dcim_alert_notifications_failed",
                                     "Notification requests that failed (after retries).", labels=["notifier"])
        for n in self.notifiers:
            attrs = _COUNTS.get(getattr(n, "name", ""))
            if attrs is None:
                continue
            sent.add_metric([n.name], float(getattr(n, attrs[0], 0)))
            failed.add_metric([n.name], float(getattr(n, attrs[1], 0)))
        yield sent
        yield failed

    def describe(self) -> list[Any]:
        return []


class AlertMetrics:
    """Evaluations and their duration, active alerts by state, notifications sent and failed."""

    def __init__(self, registry: CollectorRegistry | None, engine: Any, notifiers: Sequence[Any] = ()) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self.registry = reg
        self.evaluations = Counter("dcim_alert_evaluations_total", "Rule evaluations (all rules at one boundary).",
                                   registry=reg)
        self.duration = Histogram("dcim_alert_evaluation_duration_seconds",
                                  "Wall time of one evaluation of all rules.", buckets=_BUCKETS, registry=reg)
        self.active = Gauge("dcim_alerts_active", "Active alerts by state.", ["state"], registry=reg)
        for state in ("pending", "firing"):
            self.active.labels(state=state).set(0)
        reg.register(_NotifierCollector(notifiers))
        engine.on_evaluation = self.observe

    def observe(self, duration_s: float) -> None:
        self.evaluations.inc()
        self.duration.observe(duration_s)

    def set_active(self, counts: dict[str, int]) -> None:
        for state in ("pending", "firing"):
            self.active.labels(state=state).set(counts.get(state, 0))
