"""The incident report: one self-contained HTML file (inline CSS, PNG plots as data URIs) plus the PNGs.

For each incident it plots the signals behind its alerts (GPU temperatures, a loop's supply and
return temperature and flow, a PDU's phase currents, or whatever field the rule watches) with the
pending spans shaded amber and the firing spans red. Nothing in the page loads from the network.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcim import schema
from dcim.record import Record

from dcim.alerts.recording import Header, format_time
from dcim.alerts.replay import ReplayStats, alert_names, inhibitors, location
from dcim.alerts.whatif import Episode, Incident, WhatIf, episodes, format_whatif, incidents

#: The signals an operator wants beside an alert on a measurement, as groups drawn on one axis.
SIGNALS: dict[str, list[tuple[str, ...]]] = {
    "gpu": [("temp_c",)],
    "coolant_loop": [("supply_temp_c", "return_temp_c"), ("flow_lpm",)],
    "pdu_phase": [("current_a",)],
    "pdu": [("power_w",)],
}
#: Tags that tell the lines of one panel apart, most specific first.
_LINE_TAGS = ("node", "gpu", "phase", "pdu", "outlet", "loop", "rack")
MAX_INCIDENTS = 20
MAX_PANELS = 4
MAX_LINES = 12
MAX_TIMELINE_ROWS = 2000


@dataclass(slots=True)
class Panel:
    """One axis of one incident's figure: some fields of the series that match any of ``matches``."""

    measurement: str
    fields: tuple[str, ...]
    matches: list[dict[str, str]] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    window: tuple[int, int] = (0, 0)
    data: dict[tuple[str, str], tuple[list[int], list[float]]] = field(default_factory=dict)

    def wants(self, r: Record) -> bool:
        tags = r.tags
        return any(all(tags.get(k) == v for k, v in m.items()) for m in self.matches)

    def title(self) -> str:
        unit = {schema.measurement(self.measurement).fields[f].unit for f in self.fields} - {"1"}
        return f"{self.measurement} {', '.join(self.fields)}" + (f" [{', '.join(sorted(unit))}]" if unit else "")


def _rule_measurement(rule: Any) -> tuple[str | None, str | None]:
    if rule is None:
        return None, None
    if getattr(rule, "kind", None) == "energy_balance":
        return "coolant_loop", "heat_w"
    return getattr(rule, "measurement", None), getattr(rule, "field", None)


def panels_for(incident: Incident, rules: dict[str, Any]) -> list[Panel]:
    """The panels an incident needs: per measurement, the signal groups plus the rule's own field."""
    by_key: dict[tuple[str, tuple[str, ...]], Panel] = {}
    for ep in incident.episodes:
        meas, fld = _rule_measurement(rules.get(ep.rule))
        labels = ep.labels
        if meas is None:  # a rule we do not know: guess from the labels
            meas = "coolant_loop" if "loop" in labels else "pdu_phase" if "phase" in labels else "gpu"
        if meas not in schema.MEASUREMENTS:
            continue
        tags = schema.measurement(meas).tags
        match = {k: v for k, v in labels.items() if k in tags}
        groups = list(SIGNALS.get(meas, []))
        if fld and not any(fld in g for g in groups) and fld in schema.measurement(meas).fields:
            groups.append((fld,))
        for g in groups:
            panel = by_key.setdefault((meas, g), Panel(meas, g))
            if match not in panel.matches:
                panel.matches.append(match)
            panel.episodes.append(ep)
    panels = list(by_key.values())
    # firing alerts' panels first, then the order the signals are listed in
    panels.sort(key=lambda p: (not any(e.firing_ns is not None and e.side == "a" for e in p.episodes),
                               list(SIGNALS).index(p.measurement) if p.measurement in SIGNALS else 99))
    return panels[:MAX_PANELS]


def collect(panels: Sequence[Panel], batches: Iterable[list[Record]]) -> None:
    """One pass over the recording filling every panel's series inside its window."""
    by_meas: dict[str, list[Panel]] = {}
    for p in panels:
        by_meas.setdefault(p.measurement, []).append(p)
    for batch in batches:
        for r in batch:
            ps = by_meas.get(r.measurement)
            if ps is None:
                continue
            t = r.time_ns
            for p in ps:
                if not (p.window[0] <= t <= p.window[1]) or not p.wants(r):  # type: ignore[operator]
                    continue
                name = " ".join(f"{k}={r.tags[k]}" for k in _LINE_TAGS if k in r.tags and not all(
                    m.get(k) == r.tags[k] for m in p.matches) and not (k == "rack" and "node" in r.tags))
                for f in p.fields:
                    v = r.fields.get(f)
                    if isinstance(v, (int, float)):  # a bool (a throttle bit) plots as 0 / 1
                        ts, vs = p.data.setdefault((name, f), ([], []))
                        ts.append(t)  # type: ignore[arg-type]
                        vs.append(float(v))


def _spans(eps: Iterable[Episode], end_ns: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Pending and firing spans, each merged where they overlap."""
    pending: list[tuple[int, int]] = []
    firing: list[tuple[int, int]] = []
    for e in eps:
        for a, b in e.pending_spans:
            pending.append((a, b if b is not None else end_ns))
        if e.firing_ns is not None:
            firing.append((e.firing_ns, e.end_ns if e.end_ns is not None else end_ns))
    firing = _merge(firing)
    return _subtract(_merge(pending), firing), firing


def _subtract(spans: list[tuple[int, int]], minus: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` without the parts covered by ``minus`` (both merged), so amber never lies under red."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        cur = a
        for c, d in minus:
            if d <= cur or c >= b:
                continue
            if c > cur:
                out.append((cur, c))
            cur = max(cur, d)
        if cur < b:
            out.append((cur, b))
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def plot_incident(incident: Incident, panels: Sequence[Panel], *, compare: bool = False) -> bytes:
    """The incident's figure as PNG bytes (matplotlib, Agg backend, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 2.6 * max(1, len(panels))), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(panels)), 1, sharex=True, squeeze=False)[:, 0]
    t0 = min(p.window[0] for p in panels) if panels else incident.start_ns
    for ax, p in zip(axes, panels, strict=False):
        lines = sorted(p.data.items())[:MAX_LINES]
        for (name, f), (ts, vs) in lines:
            label = " ".join(x for x in (name, f if len(p.fields) > 1 else "") if x) or f
            ax.plot([(t - t0) / 60e9 for t in ts], vs, linewidth=1.1, label=label)
        pending, firing = _spans((e for e in p.episodes if e.side == "a"), p.window[1])
        for a, b in pending:
            ax.axvspan((a - t0) / 60e9, (b - t0) / 60e9, color="#f5b400", alpha=0.18, linewidth=0)
        for a, b in firing:
            ax.axvspan((a - t0) / 60e9, (b - t0) / 60e9, color="#d62728", alpha=0.16, linewidth=0)
        if compare:
            b_fired = [e.firing_ns for e in p.episodes if e.side == "b" and e.firing_ns is not None]
            if b_fired:  # the first alert of set B on this panel: when B would have known
                ax.axvline((min(b_fired) - t0) / 60e9, color="#1f4e99", linestyle="--", linewidth=1.2)
        ax.set_title(p.title(), fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
        if lines:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
        else:
            ax.text(0.5, 0.5, "no samples in the recording", transform=ax.transAxes, ha="center")
    axes[-1].set_xlabel(f"minutes after {format_time(t0)}  (amber: pending, red: firing"
                        + (", dashed: first alert of B" if compare else "") + ")", fontsize=8)
    fig.suptitle(f"Incident {incident.number}: {incident.title()}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;width:100%}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}
th{background:#f4f4f4}tr.firing td{background:#fdecea}tr.pending td{background:#fff8e1}
tr.resolved td,tr.inactive td{background:#eef7ee}td.inh,tr.inh td{color:#777}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
img{max-width:100%;border:1px solid #eee}pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:.85em}
.muted{color:#777}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def render_html(*, header: Header, recording: str, rules_name: str, stats: ReplayStats, transitions: Sequence[Any],
                figures: Sequence[tuple[Incident, bytes, str]], whatif: WhatIf | None,
                problems: Sequence[str] = (), actions: Sequence[Any] = ()) -> str:
    """The page: summary, incidents with their plots, the what-if difference, the full timeline."""
    fired = sum(1 for t in transitions if t.state == "firing")
    inhibited = sum(1 for t in transitions if t.state == "firing" and t.inhibited)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Incident report: {_e(Path(recording).name)}</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>Incident report: {_e(Path(recording).name)}</h1>", "<h2>Summary</h2><dl>"]
    rows = [
        ("recording", recording), ("source", header.source),
        ("time range", f"{_t(stats.first_ns)} to {_t(stats.last_ns)}"),
        ("topology", header.topology or "embedded"), ("rules", rules_name),
        ("records replayed", f"{stats.records:,} ({stats.field_values:,} field values)"),
        ("transitions", f"{len(transitions)} ({fired} firing, {inhibited} of them inhibited)"),
        ("incidents", str(len(figures))),
    ]
    if actions:
        taken = [a for a in actions if a.status == "planned"]
        rows.append(("remediation actions", f"{sum(a.action in ('drain', 'cordon') for a in taken)} nodes taken out, "
                                            f"{sum(a.action == 'resume' for a in taken)} resumed, "
                                            f"{sum(a.status == 'suppressed' for a in actions)} suppressed by the "
                                            f"share limit, {sum(a.status == 'held' for a in actions)} held"))
    out += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows]
    out.append("</dl>")
    if problems:
        out.append(f"<p><b>{len(problems)} problems in the recording were skipped:</b></p><pre>")
        out += [_e(p) for p in problems[:50]]
        out.append("</pre>")
    out.append("<h2>Incidents</h2>")
    if not figures:
        out.append('<p class="muted">No alert fired or went pending in this recording.</p>')
    for inc, png, png_name in figures:
        det = inc.detected_ns("a")
        out.append(f"<h3>Incident {inc.number}: {_e(inc.title())}</h3>")
        out.append(f"<p>from {_e(format_time(inc.start_ns))} to {_e(_t(inc.end_ns) or 'the end of the recording')}; "
                   f"first alert firing (detected) at {_e(_t(det) or 'never')}</p>")
        if png:
            b64 = base64.b64encode(png).decode()
            out.append(f'<p><img alt="signals of incident {inc.number}" src="data:image/png;base64,{b64}"></p>')
            out.append(f'<p class="muted">also saved as {_e(png_name)}</p>')
        out.append(_episode_table(inc.side("a")))
    if actions:
        out.append(_actions_table(actions))
    if whatif is not None:
        out.append("<h2>What-if</h2>")
        out.append(f"<pre>{_e(format_whatif(whatif))}</pre>")
    out.append("<h2>Alert timeline</h2><table><tr><th>time</th><th>state</th><th>rule</th><th>severity</th>"
               "<th>location</th><th>value</th><th>inhibited by</th></tr>")
    names = alert_names(transitions)
    for t in transitions[:MAX_TIMELINE_ROWS]:
        by = ", ".join(names.get(b, b) for b in inhibitors(t)) if t.inhibited else ""
        value = f"{t.value:.6g}" if isinstance(t.value, float) else ("-" if t.value is None else t.value)
        out.append(f'<tr class="{_e(t.state)}"><td>{_e(format_time(t.time_ns))}</td><td>{_e(t.state)}</td>'
                   f"<td>{_e(t.rule)}</td><td>{_e(t.severity)}</td><td>{_e(location(t.labels))}</td>"
                   f'<td>{_e(value)}</td><td class="inh">{_e(by)}</td></tr>')
    out.append("</table>")
    if len(transitions) > MAX_TIMELINE_ROWS:
        out.append(f'<p class="muted">{len(transitions) - MAX_TIMELINE_ROWS} more transitions: see '
                   "<code>dcim replay --format json</code>.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _t(ns: int | None) -> str | None:
    return format_time(ns) if ns is not None else None


def _actions_table(actions: Sequence[Any]) -> str:
    """Remediation actions (alerts.actions) in event-time order: what the scheduler was told, and why."""
    rows = ["<h2>Remediation actions</h2><table><tr><th>time</th><th>action</th><th>node</th><th>status</th>"
            "<th>alert</th><th>scope</th><th>detail</th></tr>"]
    for a in actions[:MAX_TIMELINE_ROWS]:
        rows.append(f'<tr class="{_e(a.status)}"><td>{_e(format_time(a.time_ns))}</td><td>{_e(a.action)}</td>'
                    f"<td>{_e(a.node)}</td><td>{_e(a.status)}</td><td>{_e(a.rule)}</td>"
                    f"<td>{_e(a.scope)}={_e(a.target)}</td><td>{_e(a.detail)}</td></tr>")
    rows.append("</table>")
    if len(actions) > MAX_TIMELINE_ROWS:
        rows.append(f'<p class="muted">{len(actions) - MAX_TIMELINE_ROWS} more actions: see '
                    "<code>dcim replay --format json</code>.</p>")
    return "\n".join(rows)


def _episode_table(eps: Sequence[Episode]) -> str:
    """The alerts of an incident: each alert that notified on its own row; the inhibited ones folded
    into one row per rule and cause, since a failed loop may explain hundreds of GPU alerts."""
    rows = ["<table><tr><th>alert</th><th>location</th><th>pending</th><th>firing</th><th>resolved</th>"
            "<th>notified</th></tr>"]
    own = [e for e in eps if not e.inhibited]
    for e in own[:40]:
        rows.append(f"<tr><td>{_e(e.rule)}</td><td>{_e(location(e.labels))}</td><td>{_e(_t(e.start_ns))}</td>"
                    f"<td>{_e(_t(e.firing_ns) or '-')}</td><td>{_e(_t(e.end_ns) or '-')}</td>"
                    f"<td>{_e(_t(e.notified_ns) or '-')}</td></tr>")
    if len(own) > 40:
        rows.append(f'<tr><td colspan="6" class="muted">{len(own) - 40} more: see the timeline</td></tr>')
    folded: dict[tuple[str, str], list[Episode]] = {}
    for e in eps:
        if e.inhibited:
            folded.setdefault((e.rule, ", ".join(e.inhibited_by)), []).append(e)
    for (rule, by), group in sorted(folded.items(), key=lambda kv: min(e.start_ns for e in kv[1])):
        ends = [e.end_ns for e in group]
        last = None if any(x is None for x in ends) else max(ends)  # type: ignore[type-var]
        where = location(group[0].labels) if len(group) == 1 else f"{len(group)} alerts"
        rows.append(f'<tr class="inh"><td>{_e(rule)}</td><td>{_e(where)}</td>'
                    f"<td>{_e(_t(min(e.start_ns for e in group)))}</td>"
                    f"<td>{_e(_t(min(e.firing_ns for e in group if e.firing_ns is not None)))}</td>"
                    f"<td>{_e(_t(last) or '-')}</td><td>inhibited by {_e(by)}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def write_report(out: str | Path, *, header: Header, recording: str, rules_name: str, rules: Sequence[Any],
                 stats: ReplayStats, transitions: Sequence[Any], batches: Callable[[], Iterable[list[Record]]],
                 whatif: WhatIf | None = None, problems: Sequence[str] = (), actions: Sequence[Any] = ()) -> list[Path]:
    """Write the HTML report and one PNG per incident beside it; returns the PNG paths.

    ``batches`` reads the recording again: the plots need the samples, which the replay did not keep.
    """
    out = Path(out)
    by_name = {r.name: r for r in rules}
    end = stats.last_ns or 0
    incs = whatif.incidents if whatif is not None else incidents(episodes(transitions), horizon_ns=end)
    incs = incs[:MAX_INCIDENTS]
    plans: list[tuple[Incident, list[Panel]]] = []
    for inc in incs:
        panels = panels_for(inc, by_name)
        inc_end = inc.end_ns if inc.end_ns is not None else end
        pad = max(60_000_000_000, (inc_end - inc.start_ns) // 3)
        lo, hi = max(stats.first_ns or 0, inc.start_ns - pad), min(end, inc_end + pad)
        for p in panels:
            p.window = (lo, hi)
        plans.append((inc, panels))
    if plans:
        collect([p for _, ps in plans for p in ps], batches())
    figures: list[tuple[Incident, bytes, str]] = []
    pngs: list[Path] = []
    for inc, panels in plans:
        png = plot_incident(inc, panels, compare=whatif is not None) if panels else b""
        name = f"{out.stem}-incident-{inc.number}.png"
        if png:
            path = out.with_name(name)
            path.write_bytes(png)
            pngs.append(path)
        figures.append((inc, png, name))
    page = render_html(header=header, recording=recording, rules_name=rules_name, stats=stats,
                       transitions=transitions, figures=figures, whatif=whatif, problems=problems, actions=actions)
    out.write_text(page, encoding="utf-8")
    return pngs
