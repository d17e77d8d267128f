"""Rule evaluators, one per rule kind, found in a table by ``kind`` (as Prometheus's rules package
has one evaluator per rule type): each says what its rules need from the sample store and turns
the store into per-series results at an evaluation boundary.

Time windows are left-open, ``(b - window, b]``, as Prometheus 3's ranges (docs/alerts.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from itertools import compress
from operator import itemgetter, or_
from typing import Any, NamedTuple

from dcim.alerts.rulefile import (
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
    parse_condition,
)
from dcim.alerts.samples import SampleStore
from dcim.alerts.state import NS, Result
from dcim.alerts.topology import LABEL_TAGS, Topology
from dcim import schema
from dcim.config import SiteConfig

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


class Context:
    """What evaluators read: the sample store, the topology, and the engine's per-rule lookups."""

    def __init__(self, rules: list[Any], site: SiteConfig, topo: Topology) -> None:
        self.site = site
        self.topo = topo
        self.store = SampleStore(self.labels)
        self.match = {r.name: _matcher(getattr(r, "match", {})) for r in rules}
        self.where: dict[str, list[tuple[str, tuple[str, Any]]]] = {}
        self.unless: dict[str, list[tuple[str, tuple[str, Any]]]] = {}
        self.keys: dict[str, dict[Any, str]] = {r.name: {} for r in rules}  # series key -> fingerprint
        # Restored alerts not yet matched to a series, and series keys already checked against them.
        self.unlinked: dict[str, set[str]] = {}
        self.probed: dict[str, set[Any]] = {}
        self.started: int | None = None
        self.expected_done: set[str] = set()

    def fresh(self, rule: Any, meas: str, fld: str, b: int):
        """Series of (meas, fld) matching the rule, as (key, time, value, tags, fresh)."""
        match = self.match[rule.name]
        stale_ns = rule.stale_after * NS
        for key, (t, v, tags) in self.store.latest.get((meas, fld), {}).items():
            if t > b or (match is not None and not match(tags)):
                continue
            # Left-open like Prometheus 3's lookback: a sample exactly stale_after old is gone.
            yield key, t, v, tags, (b - t) < stale_ns

    def keep(self, out: list[Result], rule: Any, key: tuple, tags: dict[str, str], value: float | None,
             fire: bool | None, clear: bool | None, threshold: float | None) -> None:
        """Keep a per-series result only if it fires or its series has an alert state."""
        if fire is True or key in self.keys[rule.name] or (
                rule.name in self.unlinked and key not in self.probed[rule.name]):
            out.append(Result(key, None, value, fire, clear, threshold, lambda t=tags: self.labels(t)))

    def labels(self, tags: dict[str, str], keep: Iterable[str] | None = None) -> dict[str, str]:
        names = LABEL_TAGS if keep is None else tuple(keep) + tuple(t for t in schema.LOCATION_TAGS)
        labels = {k: tags[k] for k in names if k in tags and k not in ("uuid", "model")}
        return self.topo.enrich(labels)


# --- evaluators -----------------------------------------------------------------------------------


def compare(rule: Any, value: float, threshold: float, clear: float | None, fresh: bool) -> tuple:
    if not fresh:
        return None, None
    fire = _CMP[rule.op](value, threshold)
    clear_at = threshold if clear is None else clear
    return fire, not _CMP[rule.op](value, clear_at)


def _holds(v: Any, op: str, want: Any) -> bool:
    if op in ("==", "!="):
        same = (type(v) is bool) == (type(want) is bool) and v == want
        return same == (op == "==")
    return not isinstance(v, (str, bool)) and _CMP[op](float(v), want)


def where_ok(ctx, rule: ThresholdRule, key: tuple, b: int) -> bool | None:
    """Whether the ``where`` conditions hold and no ``unless`` condition does; None when a ``where``
    field has no fresh sample (the agent omits a field whose read failed), which counts as no data,
    never as true (PromQL ``x and y`` with ``y`` stale). An ``unless`` field without a fresh sample
    excludes nothing (PromQL ``x unless y`` with ``y`` stale keeps ``x``)."""
    stale_ns = rule.stale_after * NS
    latest = ctx.store.latest
    for fld, (op, want) in ctx.unless.get(rule.name, ()):
        got = latest[(rule.measurement, fld)].get(key)
        if got is not None and got[0] <= b and b - got[0] < stale_ns and _holds(got[1], op, want):
            return False
    for fld, (op, want) in ctx.where.get(rule.name, ()):
        got = latest[(rule.measurement, fld)].get(key)
        if got is None or got[0] > b or b - got[0] >= stale_ns:
            return None
        if not _holds(got[1], op, want):
            return False
    return True


def window(ctx, rule: Any, b: int):
    """Per matching series: the history samples up to ``b`` and whether the newest is fresh."""
    hist = ctx.store.hist[(rule.measurement, rule.field)]
    keep_ns = ctx.store.hist_window[(rule.measurement, rule.field)]
    for key, t, _v, tags, fresh in ctx.fresh(rule, rule.measurement, rule.field, b):
        dq = hist.get(key)
        if not dq:
            continue
        # Keep one sample older than the longest window as the baseline of an increase.
        while len(dq) > 1 and dq[1][0] <= b - keep_ns:
            dq.popleft()
        yield key, tags, dq, fresh


def groups(ctx, rule: Any, meas: str, fld: str, b: int) -> dict[tuple, list[tuple[dict[str, str], Any]]]:
    groups: dict[tuple, list] = {}
    for _key, _t, v, tags, fresh in ctx.fresh(rule, meas, fld, b):
        if not fresh or isinstance(v, str):
            continue
        g = []
        for tag in rule.by:
            val = tags.get(tag)
            if val is None and tag == "rack":
                val = ctx.topo.node_rack.get(tags.get("node", ""))
            if val is None:
                break
            g.append(val)
        else:
            groups.setdefault(tuple(g), []).append((tags, v))
    return groups


def group_labels(ctx, rule: Any, key: tuple, members: list[tuple[dict[str, str], Any]]) -> dict[str, str]:
    labels = dict(zip(rule.by, key, strict=True))
    # Location tags all members share (a rack's PDUs share site/room/row) stay on the alert.
    for tag in schema.LOCATION_TAGS:
        vals = {m[0].get(tag) for m in members}
        if len(vals) == 1 and None not in vals:
            labels.setdefault(tag, vals.pop())
    return ctx.topo.enrich(labels)


def expected(ctx, rule: AbsentRule) -> list[tuple[tuple, dict[str, str]]]:
    """Devices the site lists for the rule's measurement, keyed like ``by``."""
    out = []
    match = ctx.match[rule.name]
    for room, row, rack in ctx.site.locations():
        place = {"site": ctx.site.site, "room": room.name, "row": row.name, "rack": rack.name}
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
                out.append((tuple(d[k] for k in rule.by), ctx.labels(d, keep=rule.by)))
    if rule.measurement == "coolant_loop":
        for loop in ctx.site.loops:
            d = ctx.site.loop_tags(loop)
            if all(k in d for k in rule.by) and (match is None or match(d)):
                out.append((tuple(d[k] for k in rule.by), ctx.labels(d, keep=rule.by)))
    return out


def eval_threshold(ctx, rule: ThresholdRule, b: int) -> list[Result]:
    out = []
    latest = ctx.store.latest
    thr_store = latest.get((rule.measurement, rule.threshold_field)) if rule.threshold_field else None
    minus = latest[(rule.measurement, rule.minus)] if rule.minus is not None else None
    defaults: dict[str, float | None] = {}  # topology default by node, for this evaluation
    conditional = bool(ctx.where.get(rule.name) or ctx.unless.get(rule.name))
    keys = ctx.keys[rule.name]
    probing = rule.name in ctx.unlinked
    match = ctx.match[rule.name]
    stale_ns = rule.stale_after * NS
    op = _CMP[rule.op]
    for key, (t, v, tags) in latest.get((rule.measurement, rule.field), {}).items():
        if t > b or (match is not None and not match(tags)):
            continue
        fresh = (b - t) < stale_ns  # left-open like Prometheus 3's lookback (Context.fresh)
        thr = rule.threshold
        if thr is None:
            got = thr_store.get(key) if thr_store else None
            if got is not None and not isinstance(got[1], bool):
                thr = float(got[1])
            elif isinstance(rule.threshold_default, (int, float)):
                thr = float(rule.threshold_default)
            elif isinstance(rule.threshold_default, str):
                node = tags.get("node", "")
                if node not in defaults:
                    defaults[node] = ctx.topo.gpu_default(rule.threshold_default, tags)
                thr = defaults[node]
            if thr is None:
                continue
        thr += rule.threshold_offset
        value = float(v)
        if minus is not None:
            other = minus.get(key)
            if other is None or isinstance(other[1], str):
                continue
            fresh = fresh and (b - other[0]) < stale_ns
            value -= float(other[1])
        hot = key in keys or probing
        if not hot and not (fresh and op(value, thr)):
            # a series without an alert that does not cross its threshold gives no result, whatever
            # its where/unless conditions say (ctx.keep's test): skip them and the clear threshold
            continue
        ok = where_ok(ctx, rule, key, b) if conditional else True
        if ok is None:  # a condition's field is stale or never came: no data, as PromQL's `and`
            ctx.keep(out, rule, key, tags, value, None, None, thr)
            continue
        if not ok:
            ctx.keep(out, rule, key, tags, value, False if fresh else None, True if fresh else None, thr)
            continue
        clear = rule.clear
        if clear is None and rule.clear_delta is not None:
            clear = thr - rule.clear_delta if rule.op in (">", ">=") else thr + rule.clear_delta
        fire, clr = compare(rule, value, thr, clear, fresh)
        ctx.keep(out, rule, key, tags, value, fire, clr, thr)
    return out


def eval_state(ctx, rule: StateRule, b: int) -> list[Result]:
    # (is it a bool, value): True must not equal 1.0, as the rule's types say
    want = {(type(w) is bool, w) for w in rule.values()}
    out = []
    keys = ctx.keys[rule.name]
    probing = rule.name in ctx.unlinked
    match = ctx.match[rule.name]
    stale_ns = rule.stale_after * NS
    labels = ctx.labels
    series = ctx.store.latest.get((rule.measurement, rule.field), {})
    items = series.items()
    if not probing:
        # Only series whose value is one of the rule's (compared loosely: True == 1 here) or that
        # have an alert can give a result; pick them out in C, in the store's order, and look at
        # those only. Most evaluations of a quiet hall find none.
        candidates = list(map(set(rule.values()).__contains__, map(itemgetter(1), series.values())))
        if keys:
            candidates = list(map(or_, candidates, map(keys.__contains__, series)))
        if not any(candidates):
            return out
        items = compress(items, candidates)
    for key, (t, v, tags) in items:
        if t > b or (match is not None and not match(tags)):
            continue
        fresh = (b - t) < stale_ns  # left-open lookback
        hit = (type(v) is bool, v) in want
        if not ((fresh and hit) or key in keys or probing):
            continue  # quiet series without an alert: nothing to step (ctx.keep's test, inlined)
        value = float(v) if isinstance(v, (int, float)) else None
        out.append(Result(key, None, value, hit if fresh else None, (not hit) if fresh else None, None,
                         lambda t=tags: labels(t)))
    return out


def eval_rate(ctx, rule: RateRule, b: int) -> list[Result]:
    out = []
    lo = b - int(rule.window * NS)
    for key, tags, samples, fresh in window(ctx, rule, b):
        pts = [(ts, x) for ts, x in samples if lo < ts <= b]  # (b - window, b], as Prometheus 3
        if len(pts) < 2 or pts[-1][0] == pts[0][0]:
            if fresh:
                continue
            ctx.keep(out, rule, key, tags, None, None, None, None)
            continue
        rate = (pts[-1][1] - pts[0][1]) / ((pts[-1][0] - pts[0][0]) / NS) * rule.per
        fire, clr = compare(rule, rate, rule.threshold, rule.clear, fresh)
        ctx.keep(out, rule, key, tags, rate, fire, clr, rule.threshold)
    return out


def eval_increase(ctx, rule: IncreaseRule, b: int) -> list[Result]:
    out = []
    lo = b - int(rule.window * NS)
    for key, tags, samples, fresh in window(ctx, rule, b):
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
        ctx.keep(out, rule, key, tags, inc, fire if fresh else None, (not fire) if fresh else None,
                  rule.threshold)
    return out


def eval_aggregate(ctx, rule: AggregateRule, b: int) -> list[Result]:
    out = []
    for key, members in sorted(groups(ctx, rule, rule.measurement, rule.field, b).items()):
        xs = [float(v) for _, v in members]
        value = {"sum": sum, "max": max, "min": min, "count": len,
                 "avg": lambda a: sum(a) / len(a)}[rule.func](xs)
        fire, clr = compare(rule, float(value), rule.threshold, rule.clear, True)
        out.append(Result(("g", *key), None, float(value), fire, clr, rule.threshold,
                          lambda k=key, m=members: group_labels(ctx, rule, k, m)))
    return out


def eval_ratio(ctx, rule: RatioRule, b: int) -> list[Result]:
    out = []
    for key, _t, v, tags, fresh in ctx.fresh(rule, rule.measurement, rule.field, b):
        rating = ctx.topo.rating(rule.rating, tags)
        if not rating:
            continue
        pct = 100.0 * float(v) / rating
        fire, clr = compare(rule, pct, rule.threshold, rule.clear, fresh)
        ctx.keep(out, rule, key, tags, pct, fire, clr, rule.threshold)
    return out


def eval_imbalance(ctx, rule: ImbalanceRule, b: int) -> list[Result]:
    out = []
    for key, members in sorted(groups(ctx, rule, rule.measurement, rule.field, b).items()):
        if len(members) < rule.min_members:
            continue
        xs = [float(v) for _, v in members]
        mean = sum(xs) / len(xs)
        labels = (lambda k=key, m=members: group_labels(ctx, rule, k, m))
        if mean <= 0 or mean < rule.min_mean:
            out.append(Result(("g", *key), None, None, False, True, rule.threshold, labels))
            continue
        pct = 100.0 * max(abs(x - mean) for x in xs) / mean
        fire, clr = compare(rule, pct, rule.threshold, rule.clear, True)
        out.append(Result(("g", *key), None, pct, fire, clr, rule.threshold, labels))
    return out


def eval_redundancy(ctx, rule: RedundancyRule, b: int) -> list[Result]:
    out = []
    for key, members in sorted(groups(ctx, rule, rule.measurement, rule.field, b).items()):
        feeds, ratings = set(), []
        for tags, _v in members:
            rack = tags.get("rack") or ctx.topo.node_rack.get(tags.get("node", ""), "")
            pdu = ctx.topo.pdus.get((rack, tags.get("pdu", "")))
            feeds.add(tags.get("feed") or (pdu.feed if pdu else None))
            rating = ctx.topo.rating(rule.rating, tags)
            if rating:
                ratings.append(rating)
        feeds.discard(None)
        if len(feeds) < 2 or not ratings:
            continue  # one feed: there is no redundancy to lose
        pct = 100.0 * sum(float(v) for _, v in members) / min(ratings)
        fire = pct > rule.threshold
        clr = not pct > (rule.threshold if rule.clear is None else rule.clear)
        out.append(Result(("g", *key), None, pct, fire, clr, rule.threshold,
                          lambda k=key, m=members: group_labels(ctx, rule, k, m)))
    return out


def eval_absent(ctx, rule: AbsentRule, b: int) -> list[Result]:
    seen = ctx.store.seen[rule.name]
    if rule.expect == "topology" and ctx.started is not None and rule.name not in ctx.expected_done:
        ctx.expected_done.add(rule.name)  # the site's devices start their clocks once, at the start
        for dev, labels in expected(ctx, rule):
            seen.setdefault(dev, (ctx.started, labels))
    out = []
    keys = ctx.keys[rule.name]
    probing = rule.name in ctx.unlinked
    due = b - rule.after * NS  # silent since this or earlier: fires (left-open: exactly `after` counts)
    for dev, (t, labels) in seen.items():
        if t > b:
            continue
        fire = t <= due
        if fire or dev in keys or probing:
            out.append(Result(dev, labels, (b - t) / NS, fire, not fire, rule.after))
    out.sort(key=lambda r: r.key)
    return out


def eval_energy(ctx, rule: EnergyBalanceRule, b: int) -> list[Result]:
    out = []
    stale_ns = rule.stale_after * NS
    loops = {}
    for f in ("flow_lpm", "supply_temp_c", "return_temp_c"):
        for _key, (t, v, tags) in ctx.store.latest[("coolant_loop", f)].items():
            if t <= b and b - t < stale_ns and "loop" in tags:
                loops.setdefault(tags["loop"], {})[f] = float(v)
    power: dict[str, float] = {}
    counted: dict[str, int] = {}
    for _key, (t, v, tags) in ctx.store.latest[(rule.power_measurement, rule.power_field)].items():
        if t > b or b - t >= stale_ns:
            continue
        rack = tags.get("rack") or ctx.topo.node_rack.get(tags.get("node", ""), "")
        loop = ctx.topo.rack_loop.get(rack)
        if loop is not None:
            power[loop] = power.get(loop, 0.0) + float(v)
            counted[loop] = counted.get(loop, 0) + 1
    for loop in ctx.site.loops:
        labels = dict(ctx.topo.loop_tags[loop.name])
        vals = loops.get(loop.name, {})
        if len(vals) < 3 or loop.name not in power:
            if loop.name in power or vals:
                out.append(Result(loop.name, labels, None, None, None))
            continue
        heat_w = vals["flow_lpm"] / 60.0 * loop.fluid_density_kg_per_l * loop.fluid_cp_j_per_kg_k \
            * (vals["return_temp_c"] - vals["supply_temp_c"])
        elec_w = power[loop.name] * rule.expected_ratio
        if power[loop.name] < rule.min_power_w:
            out.append(Result(loop.name, labels, None, False, True, rule.threshold))
            continue
        dev = 100.0 * (heat_w - elec_w) / elec_w
        fire = abs(dev) > rule.threshold
        clr = not abs(dev) > (rule.threshold if rule.clear is None else rule.clear)
        out.append(Result(loop.name, labels, dev, fire, clr, rule.threshold))
    return out


# --- what each kind needs from the store ---------------------------------------------------------


def _need_field(ctx: Context, r: Any) -> None:
    ctx.store.need(r.measurement, r.field)


def _need_threshold(ctx: Context, r: ThresholdRule) -> None:
    ctx.store.need(r.measurement, r.field)
    for extra in (r.threshold_field, r.minus, *r.where, *r.unless):
        if extra:
            ctx.store.need(r.measurement, extra)
    ctx.where[r.name] = [(f, parse_condition(c)) for f, c in sorted(r.where.items())]
    ctx.unless[r.name] = [(f, parse_condition(c)) for f, c in sorted(r.unless.items())]


def _need_rate(ctx: Context, r: RateRule) -> None:
    ctx.store.need(r.measurement, r.field, int(r.window * NS))
    ctx.store.rate_fields.add((r.measurement, r.field))


def _need_increase(ctx: Context, r: IncreaseRule) -> None:
    ctx.store.need(r.measurement, r.field, int(r.window * NS))
    if r.new_series_from_zero:
        ctx.store.zero_start.add((r.measurement, r.field))


def _need_absent(ctx: Context, r: AbsentRule) -> None:
    ctx.store.watch_absent(r, ctx.match[r.name])


def _need_energy(ctx: Context, r: EnergyBalanceRule) -> None:
    for f in ("flow_lpm", "supply_temp_c", "return_temp_c"):
        ctx.store.need(schema.COOLANT_LOOP.name, f)
    ctx.store.need(r.power_measurement, r.power_field)


class Evaluator(NamedTuple):
    """One rule kind: ``register`` tells the store what to keep, ``evaluate`` gives the results at ``b``."""

    register: Callable[[Context, Any], None]
    evaluate: Callable[[Context, Any, int], list[Result]]


#: Every rule kind's evaluator, by the rule's ``kind``.
EVALUATORS: dict[str, Evaluator] = {
    "threshold": Evaluator(_need_threshold, eval_threshold),
    "state": Evaluator(_need_field, eval_state),
    "rate": Evaluator(_need_rate, eval_rate),
    "increase": Evaluator(_need_increase, eval_increase),
    "aggregate": Evaluator(_need_field, eval_aggregate),
    "ratio": Evaluator(_need_field, eval_ratio),
    "imbalance": Evaluator(_need_field, eval_imbalance),
    "redundancy": Evaluator(_need_field, eval_redundancy),
    "absent": Evaluator(_need_absent, eval_absent),
    "energy_balance": Evaluator(_need_energy, eval_energy),
}
