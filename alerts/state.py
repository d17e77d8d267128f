"""The alert state machine: alert identity, per-series state, and how one evaluation result moves it.

Follows Prometheus's rules/alerting.go: inactive -> pending -> firing -> resolved, ``for`` and
``keep_firing_for``; plus this project's hysteresis, flap suppression and no-data hold
(docs/alerts.md).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from dcim import schema
from dcim.record import Record

NS = 1_000_000_000
#: Severity order for settling peer alerts that explain each other (higher explains lower).
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2, "page": 3}

_ALERT_TAGS = frozenset(schema.ALERT.tags)


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """A stable id of an alert: its rule name and label set."""
    text = rule + "\0" + "\0".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scope_of(labels: dict[str, str]) -> str:
    """The innermost topology level an alert is about: gpu, node, phase, pdu, rack, loop, row, room, site."""
    for level in ("gpu", "node", "phase", "pdu", "rack", "loop", "row", "room", "site"):
        if level in labels:
            return level
    return "site"


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of an alert's state (or of its inhibition while firing), at event time ``time_ns``."""

    time_ns: int
    rule: str
    severity: str
    labels: dict[str, str]
    previous: str
    state: str
    value: float | None
    inhibited: bool
    inhibited_by: str | None
    summary: str
    fingerprint: str
    annotations: dict[str, str] = field(default_factory=dict)
    #: When the alert became pending (for pending) or firing (firing, resolved): Alertmanager's startsAt.
    starts_at_ns: int | None = None
    #: Brought back from saved state after a restart: a firing alert (``firing -> firing``), which the
    #: notifiers resume (Alertmanager re-post) and never page again, or a source of inhibition that
    #: resolved shortly before the restart while it still explained marked alerts (``firing ->
    #: resolved`` at its resolve time), whose resolution Alertmanager is still waiting for.
    restored: bool = False
    #: Whether on-call has been paged for this firing alert: it was firing while not inhibited at
    #: some evaluation (set on ``restored`` transitions; a lifted mark never pages it twice).
    paged: bool = False

    def to_record(self) -> Record:
        """The ``alert`` measurement row for this transition."""
        tags = {"alertname": self.rule, "severity": self.severity}
        tags.update({k: v for k, v in self.labels.items() if k in _ALERT_TAGS and v != ""})
        fields: dict[str, Any] = {"state": self.state, "previous": self.previous, "inhibited": self.inhibited,
                                  "summary": self.summary, "fingerprint": self.fingerprint}
        if self.value is not None and math.isfinite(self.value):
            fields["value"] = float(self.value)
        return Record(schema.ALERT.name, tags, fields, self.time_ns)


@dataclass(frozen=True, slots=True)
class Alert:
    """A pending or firing alert as the engine sees it now."""

    rule: str
    severity: str
    labels: dict[str, str]
    state: str
    value: float | None
    threshold: float | None
    active_since_ns: int
    fired_at_ns: int | None
    inhibited: bool
    inhibited_by: str | None
    summary: str
    annotations: dict[str, str]
    fingerprint: str


@dataclass(slots=True)
class Result:
    """One series' result at one evaluation: None for ``fire``/``clear`` means no data, hold the state.

    ``labels`` is filled lazily (from ``make_labels``) only for series that fire or have a state, which
    keeps an evaluation of thousands of quiet series cheap.
    """

    key: Any
    labels: dict[str, str] | None
    value: float | None
    fire: bool | None
    clear: bool | None
    threshold: float | None = None
    make_labels: Any = None


@dataclass(slots=True)
class AlertState:
    """One alert (a rule and a label set) and where it is in its life."""

    rule: Any
    labels: dict[str, str]
    fp: str
    state: str = "inactive"
    value: float | None = None
    threshold: float | None = None
    active_since: int = 0
    fired_at: int | None = None
    keep_since: int | None = None
    fires: deque = field(default_factory=deque)
    inhibited: bool = False
    inhibited_by: str | None = None
    flapping: bool = False
    inhibit_until: int = 0
    seen_ns: int = 0  # the last evaluation with fresh data for this alert
    paged: bool = False  # firing and not inhibited at some evaluation since it last went pending
    resolved_at: int | None = None


def step(st: AlertState, ev: Result, b: int) -> None:
    """Move one alert by its series' result at evaluation ``b``."""
    rule = st.rule
    if st.state in ("inactive", "resolved"):
        if ev.fire is not True:
            return
        st.value, st.threshold = ev.value, ev.threshold
        st.active_since, st.fired_at, st.keep_since = b, None, None
        st.seen_ns = b
        st.paged, st.resolved_at = False, None
        st.state = "pending"
        if rule.for_ <= 0:
            fire(st, b)
        return
    if ev.clear is None:
        if st.state == "pending":
            # The series left the lookback window: Prometheus drops a pending alert then, so
            # `for` never counts silent time. A firing alert holds (docs/alerts.md, no data).
            st.state = "inactive"
        return
    st.seen_ns = b
    if ev.clear is False:
        st.value, st.threshold = ev.value, ev.threshold
        st.keep_since = None
        if st.state == "pending" and b - st.active_since >= rule.for_ * NS:
            fire(st, b)
        return
    if st.state == "pending":
        st.state = "inactive"
        st.value = ev.value
        return
    hold_s = rule.keep_firing_for
    if st.flapping:
        hold_s = max(hold_s, rule.flap.window)
    if st.keep_since is None:
        st.keep_since = b
    if b - st.keep_since >= hold_s * NS:
        st.state = "resolved"
        st.value = ev.value
        st.flapping = False
        st.resolved_at = b


def fire(st: AlertState, b: int) -> None:
    """Pending becomes firing; remember it for flap suppression."""
    st.state = "firing"
    st.fired_at = b
    st.fires.append(b)
    flap = st.rule.flap
    if flap is not None:
        while st.fires and b - st.fires[0] > flap.window * NS:
            st.fires.popleft()
        # Flapping: once it re-fired this often, it resolves only after a whole quiet window.
        st.flapping = len(st.fires) >= flap.max_fires
