"""The event-time alert engine: rules over records, per-series alert states, topology-aware inhibition.

Public API (kept stable for live evaluation, `dcim alerts test`, recording/replay and what-if):

    from alerts.engine import Engine, Transition, Alert, load_rules, DEFAULT_RULES_DIR
    rules = load_rules([DEFAULT_RULES_DIR])          # alerts.rulefile: files or directories of *.yaml
    engine = Engine(rules, site=site)                 # site=None: the embedded default hall
    transitions = engine.process(records)             # records roughly in time order
    transitions += engine.advance(end_ns)             # move event time with no data (stale, end of replay)
    engine.active()                                   # pending and firing alerts now

Time is the records' event time only: the engine's clock is the newest timestamp seen, and rules
are evaluated at every evaluation-interval boundary the clock crosses, with the samples at or
before that boundary. Same input, same transitions, in the same order.

Semantics that differ from Prometheus on purpose (docs/alerts.md): a series that stops reporting
holds its alert state instead of resolving (the `absent` rules page for the silence); a rule may
have a separate clear threshold (hysteresis); an alert that keeps re-firing is held until it has
been clear for the flap window; a pending or firing alert on a loop, rack or node marks the
alerts it explains beneath it as inhibited.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alerts.rulefile import (
    DEFAULT_RULES_DIR,
    AbsentRule,
    AggregateRule,
    EnergyBalanceRule,
    ImbalanceRule,
    IncreaseRule,
    RateRule,
    RatioRule,
    RedundancyRule,
    StateRule,
    ThresholdRule,
    load_rules,
    parse_condition,
)
from alerts.templates import location_text, render
from alerts.topology import LABEL_TAGS, SCOPE_TAGS, Topology
from dcim import schema
from dcim.config import SiteConfig
from dcim.record import Record

__all__ = ["DEFAULT_RULES_DIR", "Alert", "Engine", "Transition", "fingerprint", "load_rules", "location_text",
           "render", "scope_of"]

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
    #: A firing alert brought back from saved state after a restart (``firing -> firing``): notifiers
    #: resume it (Alertmanager re-post, already paged) and never page it again.
    restored: bool = False

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
class _Eval:
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
class _State:
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


_CMP = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _matcher(match: dict[str, str]):
    """Compile tag matchers: ``value`` exact, ``=~re`` / ``!~re`` full-match regex, ``!=value``."""
    checks = []
    for tag, pat in sorted(match.items()):
        if pat.startswith("=~"):
            rx = re.compile(pat[2:])
            checks.append(lambda tags, t=tag, r=rx: r.fullmatch(tags.get(t, "")) is not None)
        elif pat.startswith("!~"):
            rx = re.compile(pat[2:])
            checks.append(lambda tags, t=tag, r=rx: r.fullmatch(tags.get(t, "")) is None)
        elif pat.startswith("!="):
            checks.append(lambda tags, t=tag, v=pat[2:]: tags.get(t, "") != v)
        else:
            checks.append(lambda tags, t=tag, v=pat: tags.get(t) == v)
    if not checks:
        return None  # matches everything; callers skip the call
    return lambda tags: all(c(tags) for c in checks)


class Engine:
    """Evaluates rules over a stream of records on event time and reports alert transitions."""

    def __init__(self, rules: list[Any], *, site: SiteConfig | None = None,
                 evaluation_interval_s: float = 1.0) -> None:
        if site is None:
            from dcim.config import default_site

            site = default_site()
        if evaluation_interval_s <= 0:
            raise ValueError("evaluation_interval_s must be positive")
        self.rules = list(rules)
        self.site = site
        self.topo = Topology(site)
        self.interval_ns = int(round(evaluation_interval_s * NS))
        self.clock_ns: int | None = None
        self._next_eval: int | None = None
        self._started: int | None = None
        # (measurement, field) -> series key -> (time_ns, value, tags)
        self._latest: dict[tuple[str, str], dict[tuple, tuple[int, Any, dict[str, str]]]] = {}
        self._want: dict[str, set[str]] = {}
        # (measurement, field) -> longest window needed; series key -> deque[(time_ns, value)]
        self._hist_window: dict[tuple[str, str], int] = {}
        self._hist: dict[tuple[str, str], dict[tuple, deque]] = {}
        # absent rule name -> device key -> (last time_ns, labels)
        self._seen: dict[str, dict[tuple, tuple[int, dict[str, str]]]] = {}
        self._absent_by_meas: dict[str, list[tuple[Any, Any]]] = {}
        self._match = {r.name: _matcher(getattr(r, "match", {})) for r in self.rules}
        self._states: dict[str, dict[str, _State]] = {r.name: {} for r in self.rules}
        self._keys: dict[str, dict[Any, str]] = {r.name: {} for r in self.rules}  # series key -> fingerprint
        # Restored alerts not yet matched to a series, and series keys already checked against them.
        self._unlinked: dict[str, set[str]] = {}
        self._probed: dict[str, set[Any]] = {}
        self._order = {r.name: i for i, r in enumerate(self.rules)}
        self._where: dict[str, list[tuple[str, tuple[str, Any]]]] = {}
        self._zero_start: set[tuple[str, str]] = set()
        self._rate_fields: set[tuple[str, str]] = set()
        self._expected_done: set[str] = set()
        self._evaluated = False
        #: Called with each evaluation's wall time in seconds (alerts.metrics); None: not timed.
        self.on_evaluation: Any = None
        for r in self.rules:
            self._register(r)
        # After the newest sample, time alone changes states only for this long (see _quiet).
        self._last_data_ns: int | None = None
        self.skip_quiet = True
        horizon_s = (max((r.stale_after for r in self.rules), default=0)
                     + max((r.after + r.for_ for r in self.rules if isinstance(r, AbsentRule)), default=0)
                     + max((r.inhibit_grace for r in self.rules), default=0)
                     + max((max(r.keep_firing_for, r.flap.window if r.flap else 0) for r in self.rules), default=0)
                     + max((getattr(r, "window", 0) for r in self.rules), default=0))
        self._horizon_ns = int(horizon_s * NS) + 2 * self.interval_ns

    # -- input -----------------------------------------------------------------------------

    def _need(self, meas: str, fld: str, window_ns: int = 0) -> None:
        self._want.setdefault(meas, set()).add(fld)
        self._latest.setdefault((meas, fld), {})
        if window_ns:
            key = (meas, fld)
            self._hist_window[key] = max(self._hist_window.get(key, 0), window_ns)
            self._hist.setdefault(key, {})

    def _register(self, r: Any) -> None:
        if isinstance(r, AbsentRule):
            self._absent_by_meas.setdefault(r.measurement, []).append((r, self._match[r.name]))
            self._seen[r.name] = {}
        elif isinstance(r, EnergyBalanceRule):
            for f in ("flow_lpm", "supply_temp_c", "return_temp_c"):
                self._need(schema.COOLANT_LOOP.name, f)
            self._need(r.power_measurement, r.power_field)
        elif isinstance(r, ThresholdRule):
            self._need(r.measurement, r.field)
            for extra in (r.threshold_field, r.minus, *r.where):
                if extra:
                    self._need(r.measurement, extra)
            self._where[r.name] = [(f, parse_condition(c)) for f, c in sorted(r.where.items())]
        elif isinstance(r, RateRule):
            self._need(r.measurement, r.field, int(r.window * NS))
            self._rate_fields.add((r.measurement, r.field))
        elif isinstance(r, IncreaseRule):
            self._need(r.measurement, r.field, int(r.window * NS))
            if r.new_series_from_zero:
                self._zero_start.add((r.measurement, r.field))
        else:
            self._need(r.measurement, r.field)

    def _ingest(self, rec: Record) -> None:
        t = rec.time_ns
        meas = rec.measurement
        wanted = self._want.get(meas)
        key = None
        if wanted:
            key = tuple(sorted(rec.tags.items()))
            for f in wanted.intersection(rec.fields):
                value = rec.fields[f]
                if isinstance(value, str) and schema.MEASUREMENTS[meas].fields[f].type != "str":
                    continue
                store = self._latest[(meas, f)]
                old = store.get(key)
                if old is None or old[0] <= t:
                    store[key] = (t, value, rec.tags)
                hist = self._hist.get((meas, f))
                if hist is not None and not isinstance(value, str):
                    dq = hist.get(key)
                    if dq is None:
                        dq = hist[key] = deque()
                        # A counter series born after the engine started (a new XID code) counts from zero.
                        if (meas, f) in self._zero_start and self._evaluated:
                            dq.append((t - 1, 0.0))
                    x = float(value)
                    # Counters only need the points where they changed; rates need every sample.
                    if not dq or (dq[-1][0] < t and ((meas, f) in self._rate_fields or dq[-1][1] != x)):
                        dq.append((t, x))
        for rule, match in self._absent_by_meas.get(meas, ()):
            if rule.field is not None and rule.field not in rec.fields:
                continue
            if (match is not None and not match(rec.tags)) or any(b not in rec.tags for b in rule.by):
                continue
            dev = tuple(rec.tags[b] for b in rule.by)
            seen = self._seen[rule.name]
            old = seen.get(dev)
            if old is None or old[0] <= t:
                seen[dev] = (t, old[1] if old else self._labels(rec.tags, keep=rule.by))

    def process(self, records: Iterable[Record]) -> list[Transition]:
        """Feed records (roughly in time order); evaluations at each interval boundary they pass."""
        out: list[Transition] = []
        batch = sorted((r for r in records if r.time_ns is not None), key=lambda r: r.time_ns)
        for rec in batch:
            t = rec.time_ns
            if self._next_eval is None:
                self._next_eval = -(-t // self.interval_ns) * self.interval_ns
                self._started = t
            while self._next_eval < t:
                if self._quiet(self._next_eval):
                    self._next_eval = -(-t // self.interval_ns) * self.interval_ns
                    break
                out.extend(self._evaluate(self._next_eval))
                self._next_eval += self.interval_ns
            self._ingest(rec)
            if self._last_data_ns is None or t > self._last_data_ns:
                self._last_data_ns = t
            if self.clock_ns is None or t > self.clock_ns:
                self.clock_ns = t
        return out

    def _quiet(self, b: int) -> bool:
        """True when nothing can change before new data: every sample is stale, every absent device
        has fired, every timer has run out. Skipping those evaluations makes long gaps cheap and
        changes no transition."""
        return self.skip_quiet and self._last_data_ns is not None and b - self._last_data_ns > self._horizon_ns

    def advance(self, time_ns: int) -> list[Transition]:
        """Move event time to ``time_ns`` without data: evaluate every boundary up to and including it."""
        out: list[Transition] = []
        if self._next_eval is None:
            self._next_eval = -(-time_ns // self.interval_ns) * self.interval_ns
            self._started = time_ns
        while self._next_eval <= time_ns:
            if self._quiet(self._next_eval):
                self._next_eval = (time_ns // self.interval_ns + 1) * self.interval_ns
                break
            out.extend(self._evaluate(self._next_eval))
            self._next_eval += self.interval_ns
        if self.clock_ns is None or time_ns > self.clock_ns:
            self.clock_ns = time_ns
        return out

    def active(self) -> list[Alert]:
        """Pending and firing alerts, in rule order then label order."""
        out = []
        for r in self.rules:
            for fp in sorted(self._states[r.name], key=lambda f: sorted(self._states[r.name][f].labels.items())):
                st = self._states[r.name][fp]
                if st.state in ("pending", "firing"):
                    ann = self._annotations(st, st.value)
                    out.append(Alert(r.name, r.severity, dict(st.labels), st.state, st.value, st.threshold,
                                     st.active_since, st.fired_at, st.inhibited, st.inhibited_by,
                                     ann.get("summary", ""), ann, st.fp))
        return out

    # -- saved state across restarts --------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Pending and firing alerts with when they became active, as JSON-ready data: what a restart
        restores (Prometheus keeps the same as its ``ALERTS_FOR_STATE`` series)."""
        alerts = []
        for r in self.rules:
            for st in self._states[r.name].values():
                if st.state in ("pending", "firing"):
                    alerts.append({"rule": r.name, "labels": st.labels, "state": st.state,
                                   "active_since_ns": st.active_since, "fired_at_ns": st.fired_at,
                                   "value": st.value if st.value is None or math.isfinite(st.value) else None,
                                   "threshold": st.threshold, "inhibited": st.inhibited,
                                   "inhibited_by": st.inhibited_by})
        return {"version": 1, "saved_ns": self.clock_ns, "alerts": alerts}

    def restore(self, snap: dict[str, Any], *, now_ns: int, grace_period_s: float = 600.0,
                outage_tolerance_s: float = 3600.0) -> list[Transition]:
        """Bring back pending and firing alerts saved by :meth:`snapshot`, as Prometheus restores
        ``for`` state (its flags ``--rules.alert.for-grace-period`` 10m and
        ``--rules.alert.for-outage-tolerance`` 1h; https://prometheus.io/docs/prometheus/latest/command-line/prometheus/):

        - nothing is restored after an outage longer than ``outage_tolerance_s``;
        - a firing alert stays firing with its original start, so there is no false resolve and no
          second page; it is returned as a ``restored`` transition for the notifiers to resume;
        - a pending alert keeps the time it already spent pending (the outage does not count), and
          one that would fire within ``grace_period_s`` of the restart waits until the grace ends;
          rules whose ``for`` is shorter than the grace start pending afresh.

        A restored alert holds until its series reports again; a pending one is dropped if no fresh
        sample comes within the rule's ``stale_after``.
        """
        saved_ns = snap.get("saved_ns")
        if snap.get("version") != 1 or saved_ns is None or now_ns - saved_ns > outage_tolerance_s * NS:
            return []
        by_name = {r.name: r for r in self.rules}
        grace_ns = int(grace_period_s * NS)
        out = []
        for a in snap.get("alerts", []):
            rule = by_name.get(a["rule"])
            if rule is None:
                continue  # the rule is gone from the pack
            labels = {str(k): str(v) for k, v in a["labels"].items()}
            fp = fingerprint(rule.name, labels)
            active_since = int(a["active_since_ns"])
            if a["state"] == "pending":
                hold_ns = int(rule.for_ * NS)
                if hold_ns < grace_ns:
                    continue
                remaining = hold_ns - (saved_ns - active_since)
                if remaining <= 0:
                    pass  # it was due to fire at the restart
                elif remaining < grace_ns:
                    active_since = now_ns + grace_ns - hold_ns
                else:
                    active_since += now_ns - saved_ns
            elif a["state"] != "firing":
                continue
            st = _State(rule, labels, fp, state=a["state"], value=a.get("value"), threshold=a.get("threshold"),
                        active_since=active_since, fired_at=a.get("fired_at_ns"), seen_ns=now_ns,
                        inhibited=bool(a.get("inhibited")), inhibited_by=a.get("inhibited_by"))
            if st.fired_at is not None:
                st.fires.append(st.fired_at)
            self._states[rule.name][fp] = st
            self._unlinked.setdefault(rule.name, set()).add(fp)
            self._probed.setdefault(rule.name, set())
            if st.state == "firing":
                st.inhibit_until = now_ns + int(rule.inhibit_grace * NS) if st.inhibited else 0
                ann = self._annotations(st, st.value)
                out.append(Transition(now_ns, rule.name, rule.severity, dict(labels), "firing", "firing", st.value,
                                      st.inhibited, st.inhibited_by, ann.get("summary", ""), fp, ann,
                                      st.fired_at, restored=True))
        return out

    # -- evaluation ------------------------------------------------------------------------

    def _labels(self, tags: dict[str, str], keep: Iterable[str] | None = None) -> dict[str, str]:
        names = LABEL_TAGS if keep is None else tuple(keep) + tuple(t for t in schema.LOCATION_TAGS)
        labels = {k: tags[k] for k in names if k in tags and k not in ("uuid", "model")}
        return self.topo.enrich(labels)

    def _fresh(self, rule: Any, meas: str, fld: str, b: int):
        """Series of (meas, fld) matching the rule, as (key, time, value, tags, fresh)."""
        match = self._match[rule.name]
        stale_ns = rule.stale_after * NS
        for key, (t, v, tags) in self._latest.get((meas, fld), {}).items():
            if t > b or (match is not None and not match(tags)):
                continue
            # Left-open like Prometheus 3's lookback: a sample exactly stale_after old is gone.
            yield key, t, v, tags, (b - t) < stale_ns

    def _evaluate(self, b: int) -> list[Transition]:
        if self.on_evaluation is None:
            return self._evaluate_at(b)
        t0 = time.perf_counter()
        out = self._evaluate_at(b)
        self.on_evaluation(time.perf_counter() - t0)
        return out

    def counts(self) -> dict[str, int]:
        """Active alerts by state (pending, firing)."""
        out = {"pending": 0, "firing": 0}
        for states in self._states.values():
            for st in states.values():
                if st.state in out:
                    out[st.state] += 1
        return out

    def _evaluate_at(self, b: int) -> list[Transition]:
        self._evaluated = True
        if self._started is not None and self._started > b:
            self._started = b
        results: list[tuple[Any, list[_Eval]]] = []
        for rule in self.rules:
            results.append((rule, self._eval_rule(rule, b)))
        changes: list[tuple[_State, str, float | None]] = []
        for rule, evals in results:
            states = self._states[rule.name]
            known = self._keys[rule.name]
            for ev in evals:
                fp = known.get(ev.key)
                st = states.get(fp) if fp is not None else None
                if st is None:
                    unlinked = self._unlinked.get(rule.name)
                    if ev.fire is not True and not unlinked:
                        continue
                    labels = ev.labels if ev.labels is not None else ev.make_labels()
                    if rule.labels:
                        labels = {**labels, **self._rule_labels(rule, labels)}
                    fp = fingerprint(rule.name, labels)
                    if unlinked:
                        self._probed[rule.name].add(ev.key)
                        if fp in unlinked:
                            unlinked.discard(fp)  # a restored alert meets its series again
                            if not unlinked:
                                del self._unlinked[rule.name]
                                del self._probed[rule.name]
                        elif ev.fire is not True:
                            continue
                    known[ev.key] = fp
                    st = states.get(fp)
                    if st is None:
                        st = states[fp] = _State(rule, labels, fp)
                prev = st.state
                self._step(st, ev, b)
                if st.state != prev:
                    changes.append((st, prev, ev.value))
            stale_ns = rule.stale_after * NS
            for st in states.values():
                if st.state == "pending" and b - st.seen_ns >= stale_ns:
                    st.state = "inactive"  # no result for the series within the lookback window
                    changes.append((st, "pending", st.value))
        # Inhibition is decided on the new states, so a GPU alert that fires in the same evaluation
        # as the pump alert above it is already marked.
        flips = self._inhibit(b)
        out = []
        for st, prev, value in changes:
            out.append(self._transition(st, prev, b, value))
        changed = {id(st) for st, _, _ in changes}
        for st in flips:
            if id(st) not in changed and st.state == "firing":
                out.append(self._transition(st, "firing", b, st.value))
        self._prune(b)
        return out

    def _step(self, st: _State, ev: _Eval, b: int) -> None:
        rule = st.rule
        if st.state in ("inactive", "resolved"):
            if ev.fire is not True:
                return
            st.value, st.threshold = ev.value, ev.threshold
            st.active_since, st.fired_at, st.keep_since = b, None, None
            st.seen_ns = b
            st.state = "pending"
            if rule.for_ <= 0:
                self._fire(st, b)
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
                self._fire(st, b)
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

    def _fire(self, st: _State, b: int) -> None:
        st.state = "firing"
        st.fired_at = b
        st.fires.append(b)
        flap = st.rule.flap
        if flap is not None:
            while st.fires and b - st.fires[0] > flap.window * NS:
                st.fires.popleft()
            # Flapping: once it re-fired this often, it resolves only after a whole quiet window.
            st.flapping = len(st.fires) >= flap.max_fires

    def _inhibit(self, b: int) -> list[_State]:
        """Mark alerts explained by a pending or firing alert above them; return those whose mark changed.

        Two rules that explain each other (peers on one loop) are settled by severity, then by age:
        a critical symptom explains a warning one even when it came later (on-call hears the worse
        news), and between equals the alert active first explains the later one, so the first
        symptom pages, once. A mark outlives
        its source by the source rule's ``inhibit_grace``: GPUs still cooling down after the pump
        recovered are the same incident, not a new page.
        """
        active = [st for r in self.rules for st in self._states[r.name].values() if st.state in ("pending", "firing")]
        age = {id(st): (-SEVERITY_RANK[st.rule.severity], st.active_since, self._order[st.rule.name], st.fp)
               for st in active}
        sources = sorted((st for st in active if st.rule.inhibits), key=lambda s: age[id(s)])
        flips = []
        for r in self.rules:
            for st in self._states[r.name].values():
                if st.state not in ("pending", "firing"):
                    continue  # a resolved alert keeps the mark it resolved with
                by = None
                for src in sources:
                    if src is st or not src.rule.matches_inhibit(r.name) or not _contains(src.labels, st.labels):
                        continue
                    mutual = st.rule.matches_inhibit(src.rule.name) and _contains(st.labels, src.labels)
                    if mutual and age[id(src)] > age[id(st)]:
                        continue
                    by = src.fp
                    break
                if by is not None:
                    st.inhibit_until = b + int(src.rule.inhibit_grace * NS)
                elif st.inhibited and b < st.inhibit_until:
                    by = st.inhibited_by
                inhibited = by is not None
                if inhibited != st.inhibited:
                    flips.append(st)
                st.inhibited, st.inhibited_by = inhibited, by
        return flips

    @staticmethod
    def _rule_labels(rule: Any, labels: dict[str, str]) -> dict[str, str]:
        """The rule's labels, templated from the series' labels (Prometheus templates labels too)."""
        return {k: render(v, rule=rule.name, severity=rule.severity, state="pending", value=None, threshold=None,
                          labels=labels) if "{{" in v else v for k, v in rule.labels.items()}

    def _annotations(self, st: _State, value: float | None) -> dict[str, str]:
        rule = st.rule
        ann = dict(rule.annotations)
        ann.setdefault("summary", "{{ $rule }} at {{ $location }}: {{ $value }}")
        return {k: render(v, rule=rule.name, severity=rule.severity, state=st.state, value=value,
                          threshold=st.threshold, labels=st.labels) for k, v in ann.items()}

    def _transition(self, st: _State, prev: str, b: int, value: float | None) -> Transition:
        ann = self._annotations(st, value)
        starts = st.active_since if st.state == "pending" or st.fired_at is None else st.fired_at
        if isinstance(value, bool):
            value = float(value)
        return Transition(b, st.rule.name, st.rule.severity, dict(st.labels), prev, st.state, value,
                          st.inhibited, st.inhibited_by, ann.get("summary", ""), st.fp, ann, starts)

    def _prune(self, b: int) -> None:
        """Forget inactive alerts whose flap history has expired, so memory follows active series."""
        for r in self.rules:
            states = self._states[r.name]
            if len(states) < 64:
                continue
            window_ns = (r.flap.window if r.flap else 0) * NS
            dead = [fp for fp, st in states.items() if st.state in ("inactive", "resolved")
                    and (not st.fires or b - st.fires[-1] > window_ns)]
            for fp in dead:
                del states[fp]
            if dead:
                gone = set(dead)
                keys = self._keys[r.name]
                for k in [k for k, f in keys.items() if f in gone]:
                    del keys[k]

    # -- rule kinds ------------------------------------------------------------------------

    def _eval_rule(self, rule: Any, b: int) -> list[_Eval]:
        if isinstance(rule, ThresholdRule):
            return self._eval_threshold(rule, b)
        if isinstance(rule, StateRule):
            return self._eval_state(rule, b)
        if isinstance(rule, RateRule):
            return self._eval_rate(rule, b)
        if isinstance(rule, IncreaseRule):
            return self._eval_increase(rule, b)
        if isinstance(rule, AggregateRule):
            return self._eval_aggregate(rule, b)
        if isinstance(rule, RatioRule):
            return self._eval_ratio(rule, b)
        if isinstance(rule, ImbalanceRule):
            return self._eval_imbalance(rule, b)
        if isinstance(rule, RedundancyRule):
            return self._eval_redundancy(rule, b)
        if isinstance(rule, AbsentRule):
            return self._eval_absent(rule, b)
        if isinstance(rule, EnergyBalanceRule):
            return self._eval_energy(rule, b)
        raise TypeError(f"unknown rule kind {type(rule).__name__}")

    @staticmethod
    def _compare(rule: Any, value: float, threshold: float, clear: float | None, fresh: bool) -> tuple:
        if not fresh:
            return None, None
        fire = _CMP[rule.op](value, threshold)
        clear_at = threshold if clear is None else clear
        return fire, not _CMP[rule.op](value, clear_at)

    def _add(self, out: list[_Eval], rule: Any, key: tuple, tags: dict[str, str], value: float | None,
             fire: bool | None, clear: bool | None, threshold: float | None) -> None:
        """Keep a per-series result only if it fires or its series has an alert state."""
        if fire is True or key in self._keys[rule.name] or (
                rule.name in self._unlinked and key not in self._probed[rule.name]):
            out.append(_Eval(key, None, value, fire, clear, threshold, lambda t=tags: self._labels(t)))

    def _eval_threshold(self, rule: ThresholdRule, b: int) -> list[_Eval]:
        out = []
        thr_store = self._latest.get((rule.measurement, rule.threshold_field)) if rule.threshold_field else None
        for key, _t, v, tags, fresh in self._fresh(rule, rule.measurement, rule.field, b):
            thr = rule.threshold
            if thr is None:
                got = thr_store.get(key) if thr_store else None
                if got is not None and not isinstance(got[1], bool):
                    thr = float(got[1])
                elif isinstance(rule.threshold_default, (int, float)):
                    thr = float(rule.threshold_default)
                elif isinstance(rule.threshold_default, str):
                    thr = self.topo.gpu_default(rule.threshold_default, tags)
                if thr is None:
                    continue
            thr += rule.threshold_offset
            value = float(v)
            if rule.minus is not None:
                other = self._latest[(rule.measurement, rule.minus)].get(key)
                if other is None or isinstance(other[1], str):
                    continue
                fresh = fresh and (b - other[0]) < rule.stale_after * NS
                value -= float(other[1])
            ok = self._where_ok(rule, key, b)
            if ok is None:  # a condition's field is stale or never came: no data, as PromQL's `and`
                self._add(out, rule, key, tags, value, None, None, thr)
                continue
            if not ok:
                self._add(out, rule, key, tags, value, False if fresh else None, True if fresh else None, thr)
                continue
            clear = rule.clear
            if clear is None and rule.clear_delta is not None:
                clear = thr - rule.clear_delta if rule.op in (">", ">=") else thr + rule.clear_delta
            fire, clr = self._compare(rule, value, thr, clear, fresh)
            self._add(out, rule, key, tags, value, fire, clr, thr)
        return out

    def _where_ok(self, rule: ThresholdRule, key: tuple, b: int) -> bool | None:
        """Whether the ``where`` conditions hold; None when a condition's field has no fresh sample
        (the agent omits a field whose read failed), which counts as no data, never as true."""
        stale_ns = rule.stale_after * NS
        for fld, (op, want) in self._where.get(rule.name, ()):
            got = self._latest[(rule.measurement, fld)].get(key)
            if got is None or got[0] > b or b - got[0] >= stale_ns:
                return None
            v = got[1]
            if op in ("==", "!="):
                same = (type(v) is bool) == (type(want) is bool) and v == want
                if same != (op == "=="):
                    return False
            elif isinstance(v, (str, bool)) or not _CMP[op](float(v), want):
                return False
        return True

    def _eval_state(self, rule: StateRule, b: int) -> list[_Eval]:
        want = rule.values()
        out = []
        for key, _t, v, tags, fresh in self._fresh(rule, rule.measurement, rule.field, b):
            hit = any((type(v) is bool) == (type(w) is bool) and v == w for w in want)
            value = float(v) if isinstance(v, (int, float)) else None
            self._add(out, rule, key, tags, value, hit if fresh else None, (not hit) if fresh else None, None)
        return out

    def _window(self, rule: Any, b: int):
        """Per matching series: the history samples up to ``b`` and whether the newest is fresh."""
        hist = self._hist[(rule.measurement, rule.field)]
        keep_ns = self._hist_window[(rule.measurement, rule.field)]
        for key, t, _v, tags, fresh in self._fresh(rule, rule.measurement, rule.field, b):
            dq = hist.get(key)
            if not dq:
                continue
            # Keep one sample older than the longest window as the baseline of an increase.
            while len(dq) > 1 and dq[1][0] <= b - keep_ns:
                dq.popleft()
            yield key, tags, dq, fresh

    def _eval_rate(self, rule: RateRule, b: int) -> list[_Eval]:
        out = []
        lo = b - int(rule.window * NS)
        for key, tags, samples, fresh in self._window(rule, b):
            pts = [(ts, x) for ts, x in samples if lo < ts <= b]  # (b - window, b], as Prometheus 3
            if len(pts) < 2 or pts[-1][0] == pts[0][0]:
                if fresh:
                    continue
                self._add(out, rule, key, tags, None, None, None, None)
                continue
            rate = (pts[-1][1] - pts[0][1]) / ((pts[-1][0] - pts[0][0]) / NS) * rule.per
            fire, clr = self._compare(rule, rate, rule.threshold, rule.clear, fresh)
            self._add(out, rule, key, tags, rate, fire, clr, rule.threshold)
        return out

    def _eval_increase(self, rule: IncreaseRule, b: int) -> list[_Eval]:
        out = []
        lo = b - int(rule.window * NS)
        for key, tags, samples, fresh in self._window(rule, b):
            inc = 0.0
            prev = None
            for t1, x1 in samples:
                if t1 > b:
                    break
                if prev is not None and t1 > lo:
                    x0 = prev
                    inc += x1 - x0 if x1 >= x0 else x1  # a drop is a counter reset: count from zero
                prev = x1
            fire = inc > rule.threshold
            self._add(out, rule, key, tags, inc, fire if fresh else None, (not fire) if fresh else None,
                      rule.threshold)
        return out

    def _groups(self, rule: Any, meas: str, fld: str, b: int) -> dict[tuple, list[tuple[dict[str, str], Any]]]:
        groups: dict[tuple, list] = {}
        for _key, _t, v, tags, fresh in self._fresh(rule, meas, fld, b):
            if not fresh or isinstance(v, str):
                continue
            g = []
            for tag in rule.by:
                val = tags.get(tag)
                if val is None and tag == "rack":
                    val = self.topo.node_rack.get(tags.get("node", ""))
                if val is None:
                    break
                g.append(val)
            else:
                groups.setdefault(tuple(g), []).append((tags, v))
        return groups

    def _group_labels(self, rule: Any, key: tuple, members: list[tuple[dict[str, str], Any]]) -> dict[str, str]:
        labels = dict(zip(rule.by, key, strict=True))
        # Location tags all members share (a rack's PDUs share site/room/row) stay on the alert.
        for tag in schema.LOCATION_TAGS:
            vals = {m[0].get(tag) for m in members}
            if len(vals) == 1 and None not in vals:
                labels.setdefault(tag, vals.pop())
        return self.topo.enrich(labels)

    def _eval_aggregate(self, rule: AggregateRule, b: int) -> list[_Eval]:
        out = []
        for key, members in sorted(self._groups(rule, rule.measurement, rule.field, b).items()):
            xs = [float(v) for _, v in members]
            value = {"sum": sum, "max": max, "min": min, "count": len,
                     "avg": lambda a: sum(a) / len(a)}[rule.func](xs)
            fire, clr = self._compare(rule, float(value), rule.threshold, rule.clear, True)
            out.append(_Eval(("g", *key), None, float(value), fire, clr, rule.threshold,
                              lambda k=key, m=members: self._group_labels(rule, k, m)))
        return out

    def _eval_ratio(self, rule: RatioRule, b: int) -> list[_Eval]:
        out = []
        for key, _t, v, tags, fresh in self._fresh(rule, rule.measurement, rule.field, b):
            rating = self.topo.rating(rule.rating, tags)
            if not rating:
                continue
            pct = 100.0 * float(v) / rating
            fire, clr = self._compare(rule, pct, rule.threshold, rule.clear, fresh)
            self._add(out, rule, key, tags, pct, fire, clr, rule.threshold)
        return out

    def _eval_imbalance(self, rule: ImbalanceRule, b: int) -> list[_Eval]:
        out = []
        for key, members in sorted(self._groups(rule, rule.measurement, rule.field, b).items()):
            if len(members) < rule.min_members:
                continue
            xs = [float(v) for _, v in members]
            mean = sum(xs) / len(xs)
            labels = (lambda k=key, m=members: self._group_labels(rule, k, m))
            if mean <= 0 or mean < rule.min_mean:
                out.append(_Eval(("g", *key), None, None, False, True, rule.threshold, labels))
                continue
            pct = 100.0 * max(abs(x - mean) for x in xs) / mean
            fire, clr = self._compare(rule, pct, rule.threshold, rule.clear, True)
            out.append(_Eval(("g", *key), None, pct, fire, clr, rule.threshold, labels))
        return out

    def _eval_redundancy(self, rule: RedundancyRule, b: int) -> list[_Eval]:
        out = []
        for key, members in sorted(self._groups(rule, rule.measurement, rule.field, b).items()):
            feeds, ratings = set(), []
            for tags, _v in members:
                rack = tags.get("rack") or self.topo.node_rack.get(tags.get("node", ""), "")
                pdu = self.topo.pdus.get((rack, tags.get("pdu", "")))
                feeds.add(tags.get("feed") or (pdu.feed if pdu else None))
                rating = self.topo.rating(rule.rating, tags)
                if rating:
                    ratings.append(rating)
            feeds.discard(None)
            if len(feeds) < 2 or not ratings:
                continue  # one feed: there is no redundancy to lose
            pct = 100.0 * sum(float(v) for _, v in members) / min(ratings)
            fire = pct > rule.threshold
            clr = not pct > (rule.threshold if rule.clear is None else rule.clear)
            out.append(_Eval(("g", *key), None, pct, fire, clr, rule.threshold,
                              lambda k=key, m=members: self._group_labels(rule, k, m)))
        return out

    def _eval_absent(self, rule: AbsentRule, b: int) -> list[_Eval]:
        seen = self._seen[rule.name]
        if rule.expect == "topology" and self._started is not None and rule.name not in self._expected_done:
            self._expected_done.add(rule.name)  # the site's devices start their clocks once, at the start
            for dev, labels in self._expected(rule):
                seen.setdefault(dev, (self._started, labels))
        out = []
        after_ns = rule.after * NS
        for dev, (t, labels) in sorted(seen.items()):
            if t > b:
                continue
            age_s = (b - t) / NS
            fire = (b - t) >= after_ns
            out.append(_Eval(dev, labels, age_s, fire, not fire, rule.after))
        return out

    def _expected(self, rule: AbsentRule) -> list[tuple[tuple, dict[str, str]]]:
        """Devices the site lists for the rule's measurement, keyed like ``by``."""
        out = []
        match = self._match[rule.name]
        for room, row, rack in self.site.locations():
            place = {"site": self.site.site, "room": room.name, "row": row.name, "rack": rack.name}
            devices: list[dict[str, str]] = []
            if rule.measurement == "gpu":
                devices = [{**place, "node": n.name, "gpu": str(i)} for n in rack.nodes for i in range(n.gpus)]
            elif rule.measurement in ("pdu", "pdu_phase"):
                for p in rack.pdus:
                    phases = ["L1", "L2", "L3"][: p.phases] if rule.measurement == "pdu_phase" else [None]
                    devices += [{**place, "pdu": p.name, "feed": p.feed, **({"phase": ph} if ph else {})}
                                for ph in phases]
            for d in devices:
                if all(k in d for k in rule.by) and (match is None or match(d)):
                    out.append((tuple(d[k] for k in rule.by), self._labels(d, keep=rule.by)))
        if rule.measurement == "coolant_loop":
            for loop in self.site.loops:
                d = self.site.loop_tags(loop)
                if all(k in d for k in rule.by) and (match is None or match(d)):
                    out.append((tuple(d[k] for k in rule.by), self._labels(d, keep=rule.by)))
        return out

    def _eval_energy(self, rule: EnergyBalanceRule, b: int) -> list[_Eval]:
        out = []
        stale_ns = rule.stale_after * NS
        loops = {}
        for f in ("flow_lpm", "supply_temp_c", "return_temp_c"):
            for _key, (t, v, tags) in self._latest[("coolant_loop", f)].items():
                if t <= b and b - t < stale_ns and "loop" in tags:
                    loops.setdefault(tags["loop"], {})[f] = float(v)
        power: dict[str, float] = {}
        counted: dict[str, int] = {}
        for _key, (t, v, tags) in self._latest[(rule.power_measurement, rule.power_field)].items():
            if t > b or b - t >= stale_ns:
                continue
            rack = tags.get("rack") or self.topo.node_rack.get(tags.get("node", ""), "")
            loop = self.topo.rack_loop.get(rack)
            if loop is not None:
                power[loop] = power.get(loop, 0.0) + float(v)
                counted[loop] = counted.get(loop, 0) + 1
        for loop in self.site.loops:
            labels = dict(self.topo.loop_tags[loop.name])
            vals = loops.get(loop.name, {})
            if len(vals) < 3 or loop.name not in power:
                if loop.name in power or vals:
                    out.append(_Eval(loop.name, labels, None, None, None))
                continue
            heat_w = vals["flow_lpm"] / 60.0 * loop.fluid_density_kg_per_l * loop.fluid_cp_j_per_kg_k \
                * (vals["return_temp_c"] - vals["supply_temp_c"])
            elec_w = power[loop.name] * rule.expected_ratio
            if power[loop.name] < rule.min_power_w:
                out.append(_Eval(loop.name, labels, None, False, True, rule.threshold))
                continue
            dev = 100.0 * (heat_w - elec_w) / elec_w
            fire = abs(dev) > rule.threshold
            clr = not abs(dev) > (rule.threshold if rule.clear is None else rule.clear)
            out.append(_Eval(loop.name, labels, dev, fire, clr, rule.threshold))
        return out


def _contains(src: dict[str, str], tgt: dict[str, str]) -> bool:
    """Whether the alert with labels ``tgt`` lies at or beneath the place of ``src``."""
    any_scope = False
    for k in SCOPE_TAGS:
        if k in src:
            any_scope = True
            if tgt.get(k) != src[k]:
                return False
    return any_scope
