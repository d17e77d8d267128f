"""The sample store the rules read: each wanted field's newest sample per series, the short histories
rate and increase rules need, and when each device an ``absent`` rule watches last reported."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from dcim import schema
from dcim.record import Record

#: Series whose ingest steps are kept at most; past it they are worked out again (memory stays bounded
#: when series come and go, as XID codes and relabelled devices make them).
_MAX_SERIES = 1 << 18


class SampleStore:
    """Keeps only what registered rules need; ``ingest`` is the engine's hot path."""

    def __init__(self, labels: Callable[..., dict[str, str]]) -> None:
        self._labels = labels  # topology-completed labels of a device, for absent rules
        # (measurement, field) -> series key -> (time_ns, value, tags)
        self.latest: dict[tuple[str, str], dict[tuple, tuple[int, Any, dict[str, str]]]] = {}
        self.want: dict[str, set[str]] = {}
        # (measurement, field) -> longest window needed; series key -> deque[(time_ns, value)]
        self.hist_window: dict[tuple[str, str], int] = {}
        self.hist: dict[tuple[str, str], dict[tuple, deque]] = {}
        # absent rule name -> device key -> (last time_ns, labels)
        self.seen: dict[str, dict[tuple, tuple[int, dict[str, str]]]] = {}
        self.absent_by_meas: dict[str, list[tuple[Any, Any]]] = {}
        self.zero_start: set[tuple[str, str]] = set()
        self.rate_fields: set[tuple[str, str]] = set()
        self.evaluated = False  # set once the first evaluation ran (new counters count from zero after it)
        self.newest_ns: int | None = None  # the newest sample time ingested: none in the store is newer
        self._plans: dict[str, list[tuple]] = {}
        # a series (measurement and tag items; for a columnar template its Series.ident) -> what
        # ingesting one of its rows takes, worked out once (_record_steps, _series_steps)
        self._series: dict[tuple, tuple] = {}

    def need(self, meas: str, fld: str, window_ns: int = 0) -> None:
        """Keep the newest sample of ``meas.fld`` per series, and ``window_ns`` of history if given."""
        self.want.setdefault(meas, set()).add(fld)
        self.latest.setdefault((meas, fld), {})
        if window_ns:
            key = (meas, fld)
            self.hist_window[key] = max(self.hist_window.get(key, 0), window_ns)
            self.hist.setdefault(key, {})
        self._plans.clear()
        self._series.clear()

    def watch_absent(self, rule: Any, match: Any) -> None:
        self.absent_by_meas.setdefault(rule.measurement, []).append((rule, match, tuple(rule.by)))
        self.seen[rule.name] = {}
        self._plans.clear()
        self._series.clear()

    def _plan(self, meas: str) -> list[tuple]:
        """Per wanted field of a measurement: where its samples go, looked up once, not per record."""
        plan = []
        fields = schema.MEASUREMENTS[meas].fields if meas in schema.MEASUREMENTS else {}
        for f in sorted(self.want.get(meas, ())):
            k = (meas, f)
            numeric = f in fields and fields[f].type != "str"
            plan.append((f, self.latest[k], self.hist.get(k), k in self.rate_fields, k in self.zero_start, numeric))
        self._plans[meas] = plan
        return plan

    def _record_steps(self, meas: str, tags: dict[str, str], ident: tuple) -> tuple:
        """``_series_steps`` for records: the series key and wanted fields by name, looked up once per
        series (measurement and tags), not per record."""
        plan = self._plans.get(meas)
        if plan is None:
            plan = self._plan(meas)
        tags = dict(tags)
        absents = []
        for rule, match, by in self.absent_by_meas.get(meas, ()):
            if match is not None and not match(tags):
                continue
            try:
                dev = tuple([tags[b] for b in by])
            except KeyError:
                continue
            absents.append((rule.field, self.seen[rule.name], dev, by))
        steps = (tuple(sorted(tags.items())), tags, plan, absents)
        if len(self._series) >= _MAX_SERIES:
            self._series.clear()
        self._series[ident] = steps
        return steps

    def ingest(self, rec: Record) -> None:
        t = rec.time_ns
        ident = (rec.measurement, tuple(rec.tags.items()))
        steps = self._series.get(ident)
        if steps is None:
            steps = self._record_steps(rec.measurement, rec.tags, ident)
        key, tags, plan, absents = steps
        fields = rec.fields
        newest = self.newest_ns
        # in time order (a replay, a live stream) no stored sample can be newer than this one
        ordered = newest is None or t >= newest
        if ordered:
            self.newest_ns = t
        for f, store, hist, rate, zero, numeric in plan:
            value = fields.get(f)
            if value is None or (numeric and isinstance(value, str)):
                continue
            if ordered:
                store[key] = (t, value, tags)
            else:
                old = store.get(key)
                if old is None or old[0] <= t:
                    store[key] = (t, value, tags)
            if hist is not None and not isinstance(value, str):
                dq = hist.get(key)
                if dq is None:
                    dq = hist[key] = deque()
                    # A counter series born after the engine started (a new XID code) counts from zero.
                    if zero and self.evaluated:
                        dq.append((t - 1, 0.0))
                x = float(value)
                # Counters only need the points where they changed; rates need every sample.
                if not dq or (dq[-1][0] < t and (rate or dq[-1][1] != x)):
                    dq.append((t, x))
        for fld, seen, dev, by in absents:
            if fld is not None and fld not in fields:
                continue
            old = seen.get(dev)
            if old is None:
                seen[dev] = (t, self._labels(tags, keep=by))
            elif old[0] <= t:
                seen[dev] = (t, old[1])

    def _series_steps(self, series: Any) -> tuple:
        """What ``ingest`` does for every row of one columnar series, worked out once: per wanted
        field its position in the row and where it goes, per ``absent`` rule watching it the device
        it reports for. ``()`` when the engine needs nothing from the series."""
        steps = self._series.get(series.ident)
        if steps is not None:
            return steps
        meas = series.measurement
        plan = self._plans.get(meas)
        if plan is None:
            plan = self._plan(meas)
        tags = dict(series.tags)
        key = tuple(sorted(tags.items()))
        pos = {name: i + 2 for i, name in enumerate(series.names)}
        fields = [(pos[f], store, hist, rate, zero, numeric) for f, store, hist, rate, zero, numeric in plan if f in pos]
        absents = []
        for rule, match, by in self.absent_by_meas.get(meas, ()):
            if rule.field is not None and rule.field not in pos:
                continue
            if match is not None and not match(tags):
                continue
            try:
                dev = tuple([tags[b] for b in by])
            except KeyError:
                continue
            absents.append((self.seen[rule.name], dev, by))
        steps = (key, tags, fields, absents) if fields or absents else ()
        if len(self._series) >= _MAX_SERIES:
            self._series.clear()
        self._series[series.ident] = steps
        return steps

    def ingest_rows(self, series: dict[int, Any], rows: list[list], lo: int, hi: int, cache: dict[int, tuple]) -> None:
        """``ingest`` for the rows ``lo:hi`` (in time order) of a columnar block (``alerts.recording.Block``):
        the same samples kept as for their records, without building them. ``cache`` maps the block's
        series indices to their steps."""
        if lo >= hi:
            return
        # rows lo:hi are in time order; when the first is at least as new as anything stored, no
        # stored sample can be newer than a row, so the newest-wins check is not needed
        newest = self.newest_ns
        ordered = newest is None or rows[lo][1] >= newest
        last = rows[hi - 1][1]
        if newest is None or last > newest:
            self.newest_ns = last
        for k in range(lo, hi):
            row = rows[k]
            steps = cache.get(row[0])
            if steps is None:
                steps = cache[row[0]] = self._series_steps(series[row[0]])
            if not steps:
                continue
            t = row[1]
            key, tags, fields, absents = steps
            for i, store, hist, rate, zero, numeric in fields:
                value = row[i]
                if value is None or (numeric and isinstance(value, str)):
                    continue
                if ordered:
                    store[key] = (t, value, tags)
                else:
                    old = store.get(key)
                    if old is None or old[0] <= t:
                        store[key] = (t, value, tags)
                if hist is not None and not isinstance(value, str):
                    dq = hist.get(key)
                    if dq is None:
                        dq = hist[key] = deque()
                        if zero and self.evaluated:
                            dq.append((t - 1, 0.0))
                    x = float(value)
                    if not dq or (dq[-1][0] < t and (rate or dq[-1][1] != x)):
                        dq.append((t, x))
            for seen, dev, by in absents:
                old = seen.get(dev)
                if old is None:
                    seen[dev] = (t, self._labels(tags, keep=by))
                elif old[0] <= t:
                    seen[dev] = (t, old[1])
