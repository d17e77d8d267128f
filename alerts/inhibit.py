"""Inhibition: an alert whose rule ``inhibits`` others marks the alerts at or beneath its place in the
topology (Alertmanager's inhibit rules, decided in the engine with the site's topology)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dcim.alerts.state import NS, SEVERITY_RANK, AlertState
from dcim.alerts.topology import SCOPE_TAGS


def inhibit(rules: Sequence[Any], states: dict[str, dict[str, AlertState]], order: dict[str, int],
            b: int) -> list[AlertState]:
    """Mark alerts explained by a pending or firing alert above them; return those whose mark changed.

    Two rules that explain each other (peers on one loop) are settled by severity, then by age:
    a critical symptom explains a warning one even when it came later (on-call hears the worse
    news), and between equals the alert active first explains the later one, so the first
    symptom pages, once. A mark outlives
    its source by the source rule's ``inhibit_grace``: GPUs still cooling down after the pump
    recovered are the same incident, not a new page.
    """
    active = [st for r in rules for st in states[r.name].values() if st.state in ("pending", "firing")]
    age = {id(st): (-SEVERITY_RANK[st.rule.severity], st.active_since, order[st.rule.name], st.fp)
           for st in active}
    sources = sorted((st for st in active if st.rule.inhibits), key=lambda s: age[id(s)])
    flips = []
    for r in rules:
        for st in states[r.name].values():
            if st.state not in ("pending", "firing"):
                continue  # a resolved alert keeps the mark it resolved with
            by = None
            for src in sources:
                if src is st or not src.rule.matches_inhibit(r.name) or not contains(src.labels, st.labels):
                    continue
                mutual = st.rule.matches_inhibit(src.rule.name) and contains(st.labels, src.labels)
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


def contains(src: dict[str, str], tgt: dict[str, str]) -> bool:
    """Whether the alert with labels ``tgt`` lies at or beneath the place of ``src``."""
    any_scope = False
    for k in SCOPE_TAGS:
        if k in src:
            any_scope = True
            if tgt.get(k) != src[k]:
                return False
    return any_scope
