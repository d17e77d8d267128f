"""Expand a panel's InfluxQL the way Grafana's InfluxDB datasource does, so the queries can be run and checked.

Grafana replaces ``$timeFilter`` with ``time >= <from>ms and time <= <to>ms``, ``$__interval`` with a
duration such as ``10s`` (``$__interval_ms`` with its milliseconds), and template variables with
their values: a variable that is multi-value or has "All" becomes a regex group ``(a|b)`` of
regex-escaped values, which is why the dashboards match tags as ``"rack" =~ /^$rack$/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dcim.errors import ExpandError

_VAR = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]")
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]/])")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The dashboard's time range in unix milliseconds."""

    from_ms: int
    to_ms: int

    def time_filter(self) -> str:
        return f"time >= {self.from_ms}ms and time <= {self.to_ms}ms"


def interval_ms(interval: str) -> int:
    """``10s`` -> 10000; the duration syntax Grafana uses for ``$__interval``."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", interval)
    if not m:
        raise ExpandError(f"not an interval: {interval!r}")
    return int(m.group(1)) * _UNITS_MS[m.group(2)]


def escape_regex(value: str) -> str:
    """Escape a value for an InfluxQL regex literal (Grafana's escapeRegex, plus the slash delimiter)."""
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def format_value(values: Sequence[str], *, multi: bool, include_all: bool) -> str:
    """What Grafana's InfluxDB datasource puts in place of a variable with these selected values."""
    if not multi and not include_all:
        return values[0]
    escaped = [escape_regex(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand(query: str, values: Mapping[str, str], time_range: TimeRange, interval: str) -> str:
    """Replace built-in and template variables; ExpandError names an unknown variable."""
    builtins = {
        "timeFilter": time_range.time_filter(),
        "__interval": interval,
        "__interval_ms": str(interval_ms(interval)),
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name in builtins:
            return builtins[name]
        if name in values:
            return values[name]
        raise ExpandError(f"query uses ${name}, which is neither a built-in nor a template variable: {query}")

    return _VAR.sub(sub, query)


def resolve_variables(dashboard: Mapping[str, Any], run: Callable[[str], list[str]], time_range: TimeRange,
                      interval: str, prefer: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each template variable's expansion, in order: its query (with the variables above it expanded) is
    run through ``run``; "All" selects every value, otherwise the first value is selected, as Grafana
    does on a fresh load, unless ``prefer`` names one of the values found for a single-select variable
    (as a link's ``var-rack=B01`` does)."""
    out: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        q = expand(var["query"], out, time_range, interval)
        found = run(q)
        if not found:
            raise ExpandError(f"variable {var['name']!r} found no values with {q}")
        multi, include_all = bool(var.get("multi")), bool(var.get("includeAll"))
        chosen = None if include_all else (prefer or {}).get(var["name"])
        selected = [chosen] if chosen in found else found if include_all else found[:1]
        out[var["name"]] = format_value(selected, multi=multi, include_all=include_all)
    return out


def targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, target) for every query of every panel (rows included) and every annotation."""
    def panels(items: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dashboard.get("panels", [])):
        for t in p.get("targets", []) or []:
            yield f"panel {p.get('id')} {p.get('title')!r} {t.get('refId')}", t
    for a in dashboard.get("annotations", {}).get("list", []):
        if "target" in a:
            yield f"annotation {a.get('name')!r}", a["target"]


def variable_selections(dashboard: Mapping[str, Any], run: Callable[[str], list[str]], time_range: TimeRange,
                        interval: str) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Selections of the template variables that between them show every value of every variable.

    Yields (what is selected, by variable name, "All" where all; the expansion ``expand`` takes).
    Each value of each variable is selected once (and "All" where the variable offers it), with the
    variables above it set to the values it was found under, and those below it on Grafana's fresh-load
    choice ("All", or the first value): the panels of a dashboard seen for every rack, node and GPU
    without the product of all of them.
    """
    chain = list(dashboard.get("templating", {}).get("list", []))

    def options(i: int, values: dict[str, str]) -> list[tuple[str, str]]:
        var = chain[i]
        q = expand(var["query"], values, time_range, interval)
        found = run(q)
        if not found:
            raise ExpandError(f"variable {var['name']!r} found no values with {q}")
        multi, include_all = bool(var.get("multi")), bool(var.get("includeAll"))
        out = [("All", format_value(found, multi=multi, include_all=include_all))] if include_all else []
        return out + [(v, format_value([v], multi=multi, include_all=include_all)) for v in found]

    def fresh(i: int, shown: dict[str, str], values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        shown, values = dict(shown), dict(values)
        for j in range(i, len(chain)):
            label, value = options(j, values)[0]
            shown[chain[j]["name"]], values[chain[j]["name"]] = label, value
        return shown, values

    def walk(i: int, shown: dict[str, str], values: dict[str, str]) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
        if i == len(chain):
            return
        name = chain[i]["name"]
        for label, value in options(i, values):
            s, v = {**shown, name: label}, {**values, name: value}
            yield fresh(i + 1, s, v)
            if label != "All":
                yield from walk(i + 1, s, v)

    if not chain:
        yield {}, {}
        return
    yield from walk(0, {}, {})
