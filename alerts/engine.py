"""The event-time alert engine: rules over records, per-series alert states, topology-aware inhibition.

Public API (kept stable for live evaluation, `dcim alerts test`, recording/replay and what-if):

    from dcim.alerts.engine import Engine
    from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
    rules = load_rules([DEFAULT_RULES_DIR])          # files or directories of *.yaml
    engine = Engine(rules, site=site)                 # site=None: the embedded default hall
    transitions = engine.process(records)             # records roughly in time order
    transitions += engine.advance(end_ns)             # move event time with no data (stale, end of replay)
    engine.active()                                   # pending and firing alerts now

Time is the records' event time only: the engine's clock is the newest timestamp seen, and rules
are evaluated at every evaluation-interval boundary the clock crosses, with the samples at or
before that boundary. Same input, same transitions, in the same order.

Semantics that differ from Prometheus on purpose (docs/alerts.md): a firing alert whose series
stops reporting holds instead of resolving (the `absent` rules page for the silence; a pending one
is dropped, as Prometheus does); a rule may
have a separate clear threshold (hysteresis); an alert that keeps re-firing is held until it has
been clear for the flap window; a pending or firing alert on a loop, rack or node marks the
alerts it explains beneath it as inhibited.

The parts, as Prometheus splits its rules package: ``alerts.samples`` (the sample store),
``alerts.evaluators`` (one evaluator per rule kind, found by ``kind`` in a table),
``alerts.state`` (the alert state machine and the transition/alert records), ``alerts.inhibit``
(inhibition); this module schedules evaluations on event time and keeps the alert states.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Iterable
from itertools import islice
from operator import gt
from typing import Any

from dcim.alerts.evaluators import EVALUATORS, Context
from dcim.alerts.inhibit import inhibit
from dcim.alerts.state import NS, Alert, AlertState, Result, Transition, fingerprint, step
from dcim.alerts.templates import render
from dcim.alerts.topology import Topology
from dcim.config import SiteConfig
from dcim.record import Record

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
        self.ctx = Context(self.rules, site, self.topo)
        self._states: dict[str, dict[str, AlertState]] = {r.name: {} for r in self.rules}
        self._keys = self.ctx.keys  # series key -> fingerprint, per rule
        self._unlinked = self.ctx.unlinked
        self._probed = self.ctx.probed
        self._order = {r.name: i for i, r in enumerate(self.rules)}
        #: Called with each evaluation's wall time in seconds (alerts.metrics); None: not timed.
        self.on_evaluation: Any = None
        for r in self.rules:
            EVALUATORS[r.kind].register(self.ctx, r)
        # After the newest sample, time alone changes states only for this long (see _quiet).
        self._last_data_ns: int | None = None
        self.skip_quiet = True
        horizon_s = (max((r.stale_after for r in self.rules), default=0)
                     + max((r.after + r.for_ for r in self.rules if r.kind == "absent"), default=0)
                     + max((r.inhibit_grace for r in self.rules), default=0)
                     + max((max(r.keep_firing_for, r.flap.window if r.flap else 0) for r in self.rules), default=0)
                     + max((getattr(r, "window", 0) for r in self.rules), default=0))
        self._horizon_ns = int(horizon_s * NS) + 2 * self.interval_ns

    def process(self, records: Iterable[Record]) -> list[Transition]:
        """Feed records (roughly in time order); evaluations at each interval boundary they pass."""
        out: list[Transition] = []
        batch = sorted((r for r in records if r.time_ns is not None), key=lambda r: r.time_ns)
        for rec in batch:
            t = rec.time_ns
            if self._next_eval is None or self._next_eval < t:
                self._evaluate_until(t, out)
            self.ctx.store.ingest(rec)
            if self._last_data_ns is None or t > self._last_data_ns:
                self._last_data_ns = t
            if self.clock_ns is None or t > self.clock_ns:
                self.clock_ns = t
        return out

    def _evaluate_until(self, t: int, out: list[Transition]) -> None:
        """Run every evaluation whose boundary lies before event time ``t`` (a quiet stretch with
        nothing to evaluate is skipped to the boundary at ``t``), appending the transitions to ``out``."""
        if self._next_eval is None:
            self._next_eval = -(-t // self.interval_ns) * self.interval_ns
            self.ctx.started = t
        while self._next_eval < t:
            if self._quiet(self._next_eval):
                self._next_eval = -(-t // self.interval_ns) * self.interval_ns
                break
            out.extend(self._evaluate(self._next_eval))
            self._next_eval += self.interval_ns

    def process_block(self, block: Any) -> list[Transition]:
        """Feed a columnar block (``alerts.recording.Block``): the same transitions as
        ``process(block.records())``, without a ``Record`` per row. Between two evaluation
        boundaries the rows go into the sample store in one call."""
        out: list[Transition] = []
        rows, times = block.rows, block.times
        n = len(rows)
        if not n:
            return out
        if any(map(gt, times, islice(times, 1, None))):  # not in time order: sort as process() does
            order = sorted(range(n), key=times.__getitem__)
            rows, times = [rows[i] for i in order], [times[i] for i in order]
        store = self.ctx.store
        cache: dict[int, tuple] = {}
        i = 0
        while i < n:
            t = times[i]
            if self._next_eval is None or self._next_eval < t:
                self._evaluate_until(t, out)
            # every row up to the next boundary goes in before anything is evaluated again
            j = bisect_right(times, self._next_eval, i)
            store.ingest_rows(block.series, rows, i, j, cache)
            last = times[j - 1]
            if self._last_data_ns is None or last > self._last_data_ns:
                self._last_data_ns = last
            if self.clock_ns is None or last > self.clock_ns:
                self.clock_ns = last
            i = j
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
            self.ctx.started = time_ns
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

    def countdowns(self) -> dict[str, int]:
        """Firing alerts whose condition has cleared, by fingerprint, with the evaluation time their
        ``keep_firing_for`` (or flap) countdown started: saved state that changes without a transition."""
        return {st.fp: st.keep_since for states in self._states.values() for st in states.values()
                if st.state == "firing" and st.keep_since is not None}

    def snapshot(self) -> dict[str, Any]:
        """What a restart restores, as JSON-ready data: pending and firing alerts with when they became
        active (Prometheus keeps the same as its ``ALERTS_FOR_STATE`` series), their
        ``keep_firing_for`` countdown, flap history, inhibition mark and whether they paged; alerts no
        longer active whose flap history still counts; and a source of inhibition that resolved while
        the alerts it explained are still marked (Alertmanager is waiting for its resolution)."""
        sources = {st.inhibited_by for states in self._states.values() for st in states.values()
                   if st.state in ("pending", "firing") and st.inhibited and st.inhibited_by is not None}
        now = self.clock_ns
        alerts = []
        for r in self.rules:
            window_ns = int(r.flap.window * NS) if r.flap is not None else 0
            for st in self._states[r.name].values():
                fires = [f for f in st.fires if now is None or now - f <= window_ns]
                active = st.state in ("pending", "firing")
                held_source = st.state == "resolved" and st.fp in sources
                if not (active or held_source or fires):
                    continue
                alerts.append({"rule": r.name, "labels": st.labels, "state": st.state,
                               "active_since_ns": st.active_since, "fired_at_ns": st.fired_at,
                               "value": st.value if st.value is None or math.isfinite(st.value) else None,
                               "threshold": st.threshold, "inhibited": st.inhibited,
                               "inhibited_by": st.inhibited_by, "inhibit_until_ns": st.inhibit_until,
                               "keep_since_ns": st.keep_since, "fires_ns": fires, "flapping": st.flapping,
                               "paged": st.paged, "resolved_at_ns": st.resolved_at})
        return {"version": 2, "saved_ns": now, "alerts": alerts}

    def restore(self, snap: dict[str, Any], *, now_ns: int, grace_period_s: float = 600.0,
                outage_tolerance_s: float = 3600.0) -> list[Transition]:
        """Bring back the state saved by :meth:`snapshot`, as Prometheus restores ``for`` state (its
        flags ``--rules.alert.for-grace-period`` 10m and ``--rules.alert.for-outage-tolerance`` 1h;
        https://prometheus.io/docs/prometheus/latest/command-line/prometheus/):

        - nothing is restored after an outage longer than ``outage_tolerance_s``;
        - a firing alert stays firing with its original start, so there is no false resolve and no
          second page; it is returned as a ``restored`` transition for the notifiers to resume, with
          whether it paged (an alert inhibited at the restart that had paged before never pages
          again; one that had not pages when its mark lifts, as without the restart);
        - a pending alert keeps the time it already spent pending (the outage does not count), and
          one that would fire within ``grace_period_s`` of the restart waits until the grace ends;
          rules whose ``for`` is shorter than the grace start pending afresh;
        - a ``keep_firing_for`` (or flap) countdown keeps the clear time it had counted (the outage
          does not count: nothing says the condition stayed clear); flap history and inhibition
          marks keep their event times;
        - a source of inhibition that resolved while the alerts it explained were still marked is
          returned as a ``restored`` resolution, so the Alertmanager notifier holds it again until
          nothing it explains is marked.

        A restored alert holds until its series reports again; a pending one is dropped if no fresh
        sample comes within the rule's ``stale_after``. Version-1 state (pending and firing only)
        is read too.
        """
        saved_ns = snap.get("saved_ns")
        if snap.get("version") not in (1, 2) or saved_ns is None or now_ns - saved_ns > outage_tolerance_s * NS:
            return []
        by_name = {r.name: r for r in self.rules}
        grace_ns = int(grace_period_s * NS)
        outage_ns = max(0, now_ns - saved_ns)
        restored: list[AlertState] = []
        for a in snap.get("alerts", []):
            rule = by_name.get(a["rule"])
            if rule is None:
                continue  # the rule is gone from the pack
            labels = {str(k): str(v) for k, v in a["labels"].items()}
            fp = fingerprint(rule.name, labels)
            active_since = int(a["active_since_ns"])
            state = a["state"]
            if state == "pending":
                hold_ns = int(rule.for_ * NS)
                if hold_ns < grace_ns:
                    state = "inactive"  # starts pending afresh; its flap history still counts
                else:
                    remaining = hold_ns - (saved_ns - active_since)
                    if remaining <= 0:
                        pass  # it was due to fire at the restart
                    elif remaining < grace_ns:
                        active_since = now_ns + grace_ns - hold_ns
                    else:
                        active_since += outage_ns
            elif state not in ("firing", "resolved", "inactive"):
                continue
            if state == "inactive" and not a.get("fires_ns"):
                continue
            inhibited = bool(a.get("inhibited")) and state in ("pending", "firing")
            st = AlertState(rule, labels, fp, state=state, value=a.get("value"), threshold=a.get("threshold"),
                            active_since=active_since, fired_at=a.get("fired_at_ns"), seen_ns=now_ns,
                            inhibited=inhibited, inhibited_by=a.get("inhibited_by") if inhibited else None,
                            flapping=bool(a.get("flapping")), resolved_at=a.get("resolved_at_ns"))
            st.paged = bool(a.get("paged", state == "firing" and not inhibited))
            keep = a.get("keep_since_ns")
            st.keep_since = int(keep) + outage_ns if keep is not None and state == "firing" else None
            fires = a.get("fires_ns")
            if fires is None:  # version 1
                fires = [st.fired_at] if st.fired_at is not None else []
            st.fires.extend(int(f) for f in sorted(fires))
            if inhibited:
                until = a.get("inhibit_until_ns")
                st.inhibit_until = int(until) if until is not None else now_ns + int(rule.inhibit_grace * NS)
            self._states[rule.name][fp] = st
            if state in ("pending", "firing"):
                # linked to its series when that reports again; an inactive or resolved one is found by
                # its fingerprint when it fires again
                self._unlinked.setdefault(rule.name, set()).add(fp)
                self._probed.setdefault(rule.name, set())
            restored.append(st)
        marked = {st.inhibited_by for st in restored if st.state == "firing" and st.inhibited}
        out = []
        for st in restored:
            rule = st.rule
            if st.state == "firing":
                prev, at, starts = "firing", now_ns, st.fired_at
            elif st.state == "resolved" and st.fp in marked and st.resolved_at is not None:
                prev, at, starts = "firing", st.resolved_at, st.fired_at
            else:
                continue
            ann = self._annotations(st, st.value)
            out.append(Transition(at, rule.name, rule.severity, dict(st.labels), prev, st.state, st.value,
                                  st.inhibited, st.inhibited_by, ann.get("summary", ""), st.fp, ann, starts,
                                  restored=True, paged=st.paged))
        return out

    # -- evaluation ------------------------------------------------------------------------

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
        self.ctx.store.evaluated = True
        if self.ctx.started is not None and self.ctx.started > b:
            self.ctx.started = b
        results: list[tuple[Any, list[Result]]] = []
        for rule in self.rules:
            results.append((rule, EVALUATORS[rule.kind].evaluate(self.ctx, rule, b)))
        changes: list[tuple[AlertState, str, float | None]] = []
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
                        st = states[fp] = AlertState(rule, labels, fp)
                prev = st.state
                step(st, ev, b)
                if st.state != prev:
                    changes.append((st, prev, ev.value))
            stale_ns = rule.stale_after * NS
            for st in states.values():
                if st.state == "pending" and b - st.seen_ns >= stale_ns:
                    st.state = "inactive"  # no result for the series within the lookback window
                    changes.append((st, "pending", st.value))
        # Inhibition is decided on the new states, so a GPU alert that fires in the same evaluation
        # as the pump alert above it is already marked.
        flips = inhibit(self.rules, self._states, self._order, b)
        out = []
        for st, prev, value in changes:
            out.append(self._transition(st, prev, b, value))
        changed = {id(st) for st, _, _ in changes}
        for st in flips:
            if id(st) not in changed and st.state == "firing":
                out.append(self._transition(st, "firing", b, st.value))
        self._prune(b)
        return out

    @staticmethod
    def _rule_labels(rule: Any, labels: dict[str, str]) -> dict[str, str]:
        """The rule's labels, templated from the series' labels (Prometheus templates labels too)."""
        return {k: render(v, rule=rule.name, severity=rule.severity, state="pending", value=None, threshold=None,
                          labels=labels) if "{{" in v else v for k, v in rule.labels.items()}

    def _annotations(self, st: AlertState, value: float | None) -> dict[str, str]:
        rule = st.rule
        ann = dict(rule.annotations)
        ann.setdefault("summary", "{{ $rule }} at {{ $location }}: {{ $value }}")
        return {k: render(v, rule=rule.name, severity=rule.severity, state=st.state, value=value,
                          threshold=st.threshold, labels=st.labels) for k, v in ann.items()}

    def _transition(self, st: AlertState, prev: str, b: int, value: float | None) -> Transition:
        if st.state == "firing" and not st.inhibited:
            st.paged = True  # what the webhook pages; saved, so a restart never pages it twice
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
