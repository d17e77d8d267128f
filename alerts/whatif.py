"""What-if: compare the timelines two rule sets give for one recording.

Transitions become *episodes* (one alert from pending or firing until it resolves) and episodes
that overlap in time, in either timeline, become *incidents*. Per incident the comparison says
when each set first fired (time to detect) and, per alert, which set fired earlier and by how much;
over the whole recording it counts the notifications each set would send (the webhook notifier's
pages: a not-inhibited alert firing, and its resolution) and the inhibited alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dcim.alerts.recording import format_time
from dcim.alerts.replay import alert_names, location

AlertKey = tuple[str, tuple[tuple[str, str], ...]]


def alert_key(t: Any) -> AlertKey:
    """An alert's identity across rule sets: rule name and labels, without severity (a rule change may change it)."""
    return t.rule, tuple(sorted((k, v) for k, v in t.labels.items() if k not in ("severity", "alertname")))


@dataclass(slots=True)
class Episode:
    """One alert from its first pending (or firing) transition until it resolves."""

    key: AlertKey
    severity: str
    start_ns: int
    firing_ns: int | None = None
    notified_ns: int | None = None  # first firing transition that was not inhibited
    end_ns: int | None = None  # None: still active when the recording ended
    inhibited: bool = False  # fired only while inhibited
    inhibited_by: list[str] = field(default_factory=list)
    pending_spans: list[tuple[int, int | None]] = field(default_factory=list)
    value: Any = None
    side: str = "a"

    @property
    def rule(self) -> str:
        return self.key[0]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.key[1])

    def notifications(self) -> int:
        """Firing + resolved notifications this episode sends (none when it was inhibited throughout)."""
        if self.notified_ns is None:
            return 0
        return 2 if self.end_ns is not None else 1


def episodes(transitions: Iterable[Any], *, side: str = "a") -> list[Episode]:
    """Transitions (time-ordered) folded into episodes, in order of start."""
    transitions = list(transitions)
    names = alert_names(transitions)
    open_: dict[AlertKey, Episode] = {}
    done: list[Episode] = []
    for t in transitions:
        key = alert_key(t)
        ep = open_.get(key)
        state = t.state
        if state in ("pending", "firing") and ep is None:
            ep = Episode(key, t.severity, t.time_ns, side=side)
            open_[key] = ep
            if state == "pending":
                ep.pending_spans.append((t.time_ns, None))
        if ep is None:
            continue
        if state == "firing":
            if ep.firing_ns is None:
                ep.firing_ns = t.time_ns
                ep.value = t.value
                if ep.pending_spans and ep.pending_spans[-1][1] is None:
                    ep.pending_spans[-1] = (ep.pending_spans[-1][0], t.time_ns)
            if not t.inhibited and ep.notified_ns is None:
                ep.notified_ns = t.time_ns
            if t.inhibited:
                by = getattr(t, "inhibited_by", None) or []
                for b in [by] if isinstance(by, str) else by:
                    name = names.get(b, str(b))
                    if name not in ep.inhibited_by:
                        ep.inhibited_by.append(name)
        elif state in ("resolved", "inactive"):
            ep.end_ns = t.time_ns
            if ep.pending_spans and ep.pending_spans[-1][1] is None:
                ep.pending_spans[-1] = (ep.pending_spans[-1][0], t.time_ns)
            done.append(open_.pop(key))
    done.extend(open_.values())
    for ep in done:
        ep.inhibited = ep.firing_ns is not None and ep.notified_ns is None
    done.sort(key=lambda e: (e.start_ns, e.key))
    return done


@dataclass(slots=True)
class Incident:
    """Episodes whose active spans overlap, from one or both timelines."""

    number: int
    start_ns: int
    end_ns: int | None
    episodes: list[Episode]

    def side(self, side: str) -> list[Episode]:
        return [e for e in self.episodes if e.side == side]

    def detected_ns(self, side: str = "a") -> int | None:
        """First firing of any alert of this side in the incident: when we first knew."""
        times = [e.firing_ns for e in self.episodes if e.side == side and e.firing_ns is not None]
        return min(times) if times else None

    def title(self) -> str:
        """The alert that fired first (a page before a warning), where it was."""
        eps = self.side("a") or self.episodes
        fired = sorted((e for e in eps if e.firing_ns is not None), key=lambda e: (e.inhibited, e.firing_ns))
        lead = fired[0] if fired else eps[0]
        more = len({e.key for e in self.episodes}) - 1
        return f"{lead.rule} {location(lead.labels)}" + (f" (+{more} more)" if more else "")


def incidents(*episode_lists: Sequence[Episode], horizon_ns: int | None = None) -> list[Incident]:
    """Group the episodes that fired (of one or more timelines) into incidents.

    Two alerts belong to one incident when their active spans overlap in time and they are in the
    same row of the hall (alerts with no row label group among themselves). Alerts that only went
    pending and back are blips, not incidents.
    """
    far = horizon_ns if horizon_ns is not None else 2**63 - 1
    buckets: dict[str, list[Episode]] = {}
    for lst in episode_lists:
        for e in lst:
            if e.firing_ns is not None:
                buckets.setdefault(e.labels.get("row", ""), []).append(e)
    found: list[Incident] = []
    for eps in buckets.values():
        eps.sort(key=lambda e: (e.start_ns, e.side, e.key))
        cur: Incident | None = None
        for e in eps:
            end = e.end_ns if e.end_ns is not None else far
            if cur is not None and e.start_ns <= cur.end_ns:  # type: ignore[operator]
                cur.episodes.append(e)
                cur.end_ns = max(cur.end_ns, end)  # type: ignore[type-var]
            else:
                cur = Incident(0, e.start_ns, end, [e])
                found.append(cur)
    found.sort(key=lambda i: (i.start_ns, i.episodes[0].key))
    for n, inc in enumerate(found, 1):
        inc.number = n
        if inc.end_ns == 2**63 - 1:
            inc.end_ns = None
    return found


# --- the comparison ---------------------------------------------------------------------------


@dataclass(slots=True)
class Shift:
    """One alert that fired in both sets within one incident."""

    incident: int
    key: AlertKey
    a_ns: int
    b_ns: int

    @property
    def delta_s(self) -> float:
        """Positive: B fired later; negative: B fired earlier."""
        return (self.b_ns - self.a_ns) / 1e9


@dataclass(slots=True)
class WhatIf:
    """The difference between two rule sets on one recording."""

    a_name: str
    b_name: str
    incidents: list[Incident]
    only_a: list[Episode]
    only_b: list[Episode]
    shifts: list[Shift]
    notifications_a: int
    notifications_b: int
    inhibited_a: list[Episode]
    inhibited_b: list[Episode]

    def to_dict(self) -> dict[str, Any]:
        def ep(e: Episode) -> dict[str, Any]:
            return {"rule": e.rule, "labels": e.labels, "severity": e.severity,
                    "firing": format_time(e.firing_ns) if e.firing_ns is not None else None,
                    "start": format_time(e.start_ns)}

        return {
            "a": self.a_name,
            "b": self.b_name,
            "incidents": [
                {"number": i.number, "title": i.title(), "start": format_time(i.start_ns),
                 "detected_a": _t(i.detected_ns("a")), "detected_b": _t(i.detected_ns("b")),
                 "detect_delta_s": _delta(i.detected_ns("a"), i.detected_ns("b"))}
                for i in self.incidents
            ],
            "only_a": [ep(e) for e in self.only_a],
            "only_b": [ep(e) for e in self.only_b],
            "shifts": [{"incident": s.incident, "rule": s.key[0], "labels": dict(s.key[1]),
                        "a": format_time(s.a_ns), "b": format_time(s.b_ns), "delta_s": s.delta_s}
                       for s in self.shifts],
            "notifications": {"a": self.notifications_a, "b": self.notifications_b},
            "inhibited": {"a": len(self.inhibited_a), "b": len(self.inhibited_b)},
        }


def _t(ns: int | None) -> str | None:
    return format_time(ns) if ns is not None else None


def _delta(a: int | None, b: int | None) -> float | None:
    return (b - a) / 1e9 if a is not None and b is not None else None


def compare(a: Sequence[Any], b: Sequence[Any], *, a_name: str = "A", b_name: str = "B",
            horizon_ns: int | None = None) -> WhatIf:
    """Compare the transitions of rule set A with those of rule set B on the same recording."""
    ea = episodes(a, side="a")
    eb = episodes(b, side="b")
    incs = incidents(ea, eb, horizon_ns=horizon_ns)
    only_a: list[Episode] = []
    only_b: list[Episode] = []
    shifts: list[Shift] = []
    for inc in incs:
        fired_a = _first_firing(inc.side("a"))
        fired_b = _first_firing(inc.side("b"))
        for key in sorted(fired_a.keys() | fired_b.keys()):
            if key in fired_a and key in fired_b:
                if fired_a[key].firing_ns != fired_b[key].firing_ns:
                    shifts.append(Shift(inc.number, key, fired_a[key].firing_ns, fired_b[key].firing_ns))  # type: ignore[arg-type]
            elif key in fired_a:
                only_a.append(fired_a[key])
            else:
                only_b.append(fired_b[key])
    return WhatIf(
        a_name, b_name, incs, only_a, only_b, shifts, pages(a), pages(b),
        [e for e in ea if e.inhibited], [e for e in eb if e.inhibited],
    )


def pages(transitions: Sequence[Any]) -> int:
    """The notifications a person would get: what the webhook notifier pages (a not-inhibited alert
    starting to fire or its inhibition lifting, and the resolution of an alert it paged)."""
    from dcim.alerts.notifiers import WebhookNotifier

    notifier = WebhookNotifier("http://127.0.0.1:9/unused")  # only its paging decision is used; nothing is sent
    try:
        return len(notifier.pages(transitions))
    finally:
        notifier.close()


def _first_firing(eps: Iterable[Episode]) -> dict[AlertKey, Episode]:
    out: dict[AlertKey, Episode] = {}
    for e in eps:
        if e.firing_ns is not None and (e.key not in out or e.firing_ns < out[e.key].firing_ns):  # type: ignore[operator]
            out[e.key] = e
    return out


def _signed(delta_s: float) -> str:
    return f"{abs(delta_s):g}s {'later' if delta_s > 0 else 'earlier'}"


def format_whatif(w: WhatIf) -> str:
    """The comparison as text for a terminal or a ticket."""
    lines = [f"what-if: A = {w.a_name}", f"         B = {w.b_name}", ""]
    lines.append("time to detect, per incident (first alert firing):")
    if not w.incidents:
        lines.append("  no incidents in either set")
    for inc in w.incidents:
        da, db = inc.detected_ns("a"), inc.detected_ns("b")
        d = _delta(da, db)
        verdict = "same time" if d == 0 else (_signed(d) + " with B") if d is not None else (
            "only A fires" if da is not None else "only B fires" if db is not None else "never fires")
        lines.append(f"  #{inc.number} {inc.title()}: A {_t(da) or '-'}  B {_t(db) or '-'}  -> {verdict}")
    lines.append("")
    lines.append("fire earlier or later with B:")
    if not w.shifts:
        lines.append("  none")
    for s in w.shifts:
        lines.append(f"  #{s.incident} {s.key[0]} {location(dict(s.key[1]))}: A {format_time(s.a_ns)}  "
                     f"B {format_time(s.b_ns)}  ({_signed(s.delta_s)})")
    for name, eps in (("only in A", w.only_a), ("only in B", w.only_b)):
        lines.append("")
        lines.append(f"alerts {name}: {len(eps)}")
        lines.extend(f"  {format_time(e.firing_ns)}  {e.rule} {location(e.labels)}"  # type: ignore[arg-type]
                     + ("  (inhibited)" if e.inhibited else "") for e in eps)
    lines.append("")
    lines.append(f"notifications: A {w.notifications_a}  B {w.notifications_b}")
    lines.append(f"inhibited alerts: A {len(w.inhibited_a)}  B {len(w.inhibited_b)}")
    return "\n".join(lines) + "\n"
