"""Pictures of the dashboards: each panel drawn at its grid position with the data its queries return.

Not Grafana: a matplotlib sketch, good enough to show in the docs what each dashboard holds and to see
at a glance that no panel is empty. The queries are expanded exactly as for the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from dcim.dashboards.expand import TimeRange, expand, resolve_variables

Series = Mapping[str, Any]
Run = Callable[[str], list[Series]]

#: Grafana unit id -> (suffix, scale by SI prefixes?).
_UNITS = {
    "watt": ("W", True), "amp": ("A", False), "volt": ("V", False), "celsius": ("°C", False),
    "percent": ("%", False), "flowlpm": ("L/min", False), "pressurekpa": ("kPa", False), "kwatth": ("kWh", False),
    "s": ("s", False), "cps": ("/s", False), "suffix: MHz": ("MHz", False), "joule": ("J", True),
}
_COLORS = {"green": "#37872d", "orange": "#ff9830", "red": "#e02f44", "blue": "#3274d9", "transparent": "#00000000"}


def influx_runner(url: str, database: str, *, timeout_s: float = 30.0) -> Run:
    """A ``run(query)`` over InfluxDB's HTTP /query (v1 API); statement errors raise."""
    client = httpx.Client(base_url=url, timeout=timeout_s)

    def run(q: str) -> list[Series]:
        resp = client.post("/query", data={"q": q, "db": database, "epoch": "ms"})
        resp.raise_for_status()
        out = []
        for result in resp.json().get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxDB refused {q!r}: {result['error']}")
            out.extend(result.get("series", []))
        return out

    return run


def fmt(value: Any, unit: str) -> str:
    """A value with its unit, the way a stat panel would print it (kW for watts, € for EUR...)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if unit.startswith("currency"):
        return f"{value:,.2f} {unit.removeprefix('currency')}"
    suffix, si = _UNITS.get(unit, ("", False))
    if si and abs(value) >= 1000:
        exp = min(int(math.log10(abs(value)) // 3), 3)
        return f"{value / 1000**exp:.3g} {'kMG'[exp - 1]}{suffix}"
    return f"{value:.3g} {suffix}".strip()


def _labels(series: Series, col: str, alias: str | None, multi_cols: bool) -> str:
    tags = series.get("tags") or {}
    if alias:
        text = alias.replace("$col", col)
        for k, v in tags.items():
            text = text.replace(f"$tag_{k}", v)
        return text
    return " ".join([*tags.values(), col if multi_cols else ""]).strip() or col


def _columns(series_list: Sequence[Series], alias: str | None) -> list[tuple[str, list[float], list[Any]]]:
    """(label, times, values) per value column of every series."""
    out = []
    for s in series_list:
        cols = s["columns"]
        rows = s.get("values") or []
        for j, col in enumerate(cols[1:], start=1):
            vals = [(r[0], r[j]) for r in rows if r[j] is not None]
            if vals:
                out.append((_labels(s, col, alias, len(cols) > 2), [t for t, _ in vals], [v for _, v in vals]))
    return out


def _rows(series_list: Sequence[Series], unit: str) -> list[str]:
    """A table's text: a header, then each row with the series' tags first (time left out)."""
    out: list[str] = []
    for s in series_list:
        tags = list((s.get("tags") or {}).values())
        cols = s["columns"][1:]
        if not out:
            out.append("  ".join(["tags" if tags else "", *cols]).strip())
        for r in s.get("values") or []:
            cells = [fmt(v, unit) if isinstance(v, float) else str(v) for v in r[1:]]
            out.append("  ".join([" ".join(tags), *cells]).strip())
    return out


def _data(panel: Mapping[str, Any], run: Run, values: Mapping[str, str], tr: TimeRange, interval: str):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    lines: list[Any] = []
    for t in panel.get("targets", []):
        series = run(expand(t["query"], values, tr, interval))
        lines += _rows(series, unit) if panel["type"] == "table" else _columns(series, t.get("alias"))
    return lines


def _draw_panel(ax: Any, panel: Mapping[str, Any], data: list, tr: TimeRange) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "")
    steps = [s for s in (defaults.get("thresholds") or {}).get("steps", []) if s.get("value") is not None]
    kind = panel["type"]
    ax.set_title(panel["title"], fontsize=8, loc="left")
    ax.tick_params(labelsize=6)
    if not data:
        ax.text(0.5, 0.5, panel.get("fieldConfig", {}).get("defaults", {}).get("noValue", "No data"),
                ha="center", va="center", fontsize=10, color="grey", transform=ax.transAxes)
        ax.set_xticks([]), ax.set_yticks([])
        return
    if kind == "timeseries":
        for label, ts, vs in data[:24]:
            ax.plot([(t - tr.from_ms) / 60000 for t in ts], vs, linewidth=0.8, label=label,
                    marker="o" if len(ts) == 1 else None)
        if panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("thresholdsStyle"):
            for s in steps:
                ax.axhline(s["value"], linestyle="--", linewidth=0.8, color=_COLORS.get(s["color"], "grey"))
        ax.set_xlabel("minutes", fontsize=6)
        ax.set_ylabel(fmt(1, unit).split(" ", 1)[-1] if unit not in ("none", "") else "", fontsize=6)
        if len(data) <= 8:
            ax.legend(fontsize=5, loc="best")
    elif kind in ("stat", "bargauge"):
        names = [d[0] for d in data]
        last = [d[2][-1] for d in data]
        if kind == "bargauge" or len(data) > 1:
            colors = [_color_for(v, steps) for v in last]
            ax.barh(names, last, color=colors)
            hi = defaults.get("max")
            if hi:
                ax.set_xlim(0, hi)
            ax.invert_yaxis()
            for i, v in enumerate(last):
                ax.text(v, i, " " + fmt(v, unit), va="center", fontsize=6)
        else:
            ax.text(0.5, 0.45, fmt(last[0], unit), ha="center", va="center", fontsize=18,
                    color=_color_for(last[0], steps), transform=ax.transAxes)
            ax.set_xticks([]), ax.set_yticks([])
    elif kind == "table":
        ax.set_xticks([]), ax.set_yticks([])
        ax.text(0.01, 0.97, "\n".join(data[:12]), va="top", fontsize=6, family="monospace", transform=ax.transAxes)
    elif kind == "state-timeline":
        for i, (label, ts, vs) in enumerate(data[:30]):
            on = [(t - tr.from_ms) / 60000 for t, v in zip(ts, vs, strict=True) if v is True]
            ax.scatter(on, [i] * len(on), marker="|", s=30, color="#ff9830")
        ax.set_yticks(range(min(len(data), 30)), [d[0] for d in data[:30]], fontsize=4)
        ax.set_xlim(0, (tr.to_ms - tr.from_ms) / 60000)


def _color_for(value: Any, steps: Sequence[Mapping[str, Any]]) -> str:
    color = "#3274d9"
    for s in steps:
        if isinstance(value, (int, float)) and value >= s["value"]:
            color = _COLORS.get(s["color"], color)
    return color


def render(dashboard: Mapping[str, Any], run: Run, tr: TimeRange, path: Path, *, interval: str = "10s",
           prefer: Mapping[str, str] | None = None) -> Path:
    """Draw one dashboard to a PNG at ``path``; the panels' data comes from ``run``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = resolve_variables(dashboard, lambda q: sorted({r[1] for s in run(q) for r in s.get("values", [])}),
                               tr, interval, prefer)
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(16, height * 0.3 + 0.8))
    var_text = "  ".join(f"{k}={v}" for k, v in values.items())
    fig.suptitle(f"{dashboard['title']}    [{var_text}]", fontsize=11, x=0.01, ha="left")
    top = 1 - 0.8 / (height * 0.3 + 0.8)
    for p in panels:
        g = p["gridPos"]
        x0, w = g["x"] / 24, g["w"] / 24
        y1 = top * (1 - g["y"] / height)
        h = top * g["h"] / height
        if p["type"] == "row":
            fig.text(x0 + 0.005, y1 - h / 2, p["title"], fontsize=10, weight="bold", va="center")
            continue
        ax = fig.add_axes((x0 + 0.03 * w + 0.008, y1 - h + 0.18 * h, w * 0.94 - 0.012, h * 0.68))
        _draw_panel(ax, p, _data(p, run, values, tr, interval), tr)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
