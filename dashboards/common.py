"""Pieces every dashboard shares: the build context, template variables, alert annotations, links, panels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common as cb, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dcim.dashboards.influxql import DATASOURCE_TYPE, Influx, optional_tag_match, where
from dcim.dashboards.thresholds import Thresholds
from dcim.config import DashboardsConfig, SiteConfig
from dcim.schema import ALERT, GPU

#: Dashboard uids: stable, so links, provisioning and ``push`` overwrite the same dashboard.
UIDS: dict[str, str] = {
    "hall": "dcim-hall",
    "rack": "dcim-rack",
    "node": "dcim-node",
    "coolant": "dcim-coolant",
    "health": "dcim-health",
}
TAG = "dcim"


@dataclass(frozen=True, slots=True)
class Context:
    """What a dashboard is built from: the site (topology, settings) and the rule pack's thresholds."""

    site: SiteConfig
    thresholds: Thresholds

    @property
    def cfg(self) -> DashboardsConfig:
        return self.site.dashboards

    @property
    def ds(self) -> dm.DataSourceRef:
        return dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=self.cfg.datasource_uid)


def steps(base: str, *levels: tuple[float, str]) -> db.ThresholdsConfig:
    """Absolute threshold steps: ``base`` colour below the first level, then each (value, colour)."""
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=None, color=base), *(dm.Threshold(value=v, color=c) for v, c in levels)]
    )


def link_to(uid: str, title: str, params: str = "") -> db.DashboardLink:
    """A data link to another dashboard that keeps the time range; ``params`` are ``var-x=...`` pairs."""
    query = "&".join(q for q in (params, "${__url_time_range}") if q)
    return db.DashboardLink(title).url(f"/d/{uid}/?{query}").type(dm.DashboardLinkType.LINK)


# --- template variables ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Var:
    """One template variable: a tag of ``measurement``, chained under the variables before it."""

    tag: str
    measurement: str = GPU.name
    multi: bool = False
    include_all: bool = False


def variables(ctx: Context, chain: Sequence[Var]) -> list[db.QueryVariable]:
    """Query variables from ``SHOW TAG VALUES``, each filtered by every variable above it."""
    out = []
    for i, v in enumerate(chain):
        above = [f'"{u.tag}" =~ /^${u.tag}$/' for u in chain[:i]]
        q = f'SHOW TAG VALUES FROM "{v.measurement}" WITH KEY = "{v.tag}"'
        if above:
            q += " WHERE " + " AND ".join(above)
        out.append(
            db.QueryVariable(v.tag)
            .label(v.tag)
            .datasource(ctx.ds)
            .query(q)
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(v.multi)
            .include_all(v.include_all)
        )
        out[-1].id(v.tag)
        if v.include_all:
            # Open on everything; a regex of all values is what Grafana sends for All.
            out[-1].current(dm.VariableOption(selected=True, text="All", value="$__all"))
    return out


# --- alert annotations -------------------------------------------------------------------------


class InfluxAnnotationQuery(dm.AnnotationQuery):
    """An annotation from an InfluxQL query (the SDK's model has no InfluxDB fields)."""

    def __init__(self, query: str, text_column: str, tags_column: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        # Grafana 10 reads the query from ``target``; the top-level copy serves older versions,
        # which Grafana itself migrates into ``target`` on load.
        payload["query"] = self.query
        payload["textColumn"] = self.text_column
        payload["tagsColumn"] = self.tags_column
        payload["target"] = {
            "refId": "Anno",
            "datasource": self.datasource,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": "table",
            "fromAnnotations": True,
            "textColumn": self.text_column,
            "tagsColumn": self.tags_column,
        }
        return payload


class InfluxAnnotation(cogbuilder.Builder[dm.AnnotationQuery]):
    def __init__(self, model: InfluxAnnotationQuery) -> None:
        self._internal = model

    def build(self) -> dm.AnnotationQuery:
        return self._internal


def alert_annotations(ctx: Context, location_tags: Sequence[str]) -> list[InfluxAnnotation]:
    """Alert transitions from the ``alert`` measurement: firing in red, resolved in green."""
    cols = '"state", "summary", "value", "alertname", "severity"'
    out = []
    for state, color in (("firing", "red"), ("resolved", "green")):
        conds = [f"\"state\" = '{state}'", *optional_tag_match(*location_tags)]
        q = f'SELECT {cols} FROM "{ALERT.name}" {where(*conds)}'
        model = InfluxAnnotationQuery(
            q, "summary", "alertname,severity,state",
            name=f"Alerts {state}", datasource=ctx.ds, enable=True, hide=False, icon_color=color,
        )
        out.append(InfluxAnnotation(model))
    return out


# --- dashboard assembly ------------------------------------------------------------------------


def dashboard(ctx: Context, key: str, title: str, description: str, chain: Sequence[Var],
              location_tags: Sequence[str]) -> db.Dashboard:
    """A dashboard with our uid, tags, time settings, variables, alert annotations and nav links."""
    d = (
        db.Dashboard(title)
        .uid(UIDS[key])
        .description(description)
        .tags([TAG])
        .timezone("utc")
        .time("now-1h", "now")
        .refresh("30s")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .variables(variables(ctx, chain))
        .link(
            db.DashboardLink("DCIM").type(dm.DashboardLinkType.DASHBOARDS).tags([TAG])
            .as_dropdown(True).include_vars(True).keep_time(True)
        )
    )
    for a in alert_annotations(ctx, location_tags):
        d.annotation(a)
    return d


class Panels:
    """Collects a dashboard's panels and numbers them 1, 2, 3... in order (ids unique per dashboard)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.items: list[tuple[str, Any]] = []

    def row(self, title: str) -> None:
        self.items.append(("row", db.Row(title)))

    def add(self, panel: Any) -> Any:
        self.items.append(("panel", panel))
        return panel

    def into(self, d: db.Dashboard) -> db.Dashboard:
        for i, (kind, item) in enumerate(self.items, start=1):
            item.id(i)
            if kind == "row":
                d.with_row(item)
            else:
                d.with_panel(item)
        return d

    # -- panel kinds; every one gets the datasource, a unit, and its targets --

    def _targets(self, panel: Any, queries: Sequence[Influx]) -> Any:
        for ref, q in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", queries, strict=False):
            panel.with_target(q.ref_id(ref).datasource(self.ctx.ds))
        return panel.datasource(self.ctx.ds)

    def timeseries(self, title: str, unit: str, queries: Sequence[Influx], *, w: int = 12, h: int = 8,
                   thresholds: db.ThresholdsConfig | None = None, description: str = "",
                   lines: bool = False, **extra: Any) -> timeseries.Panel:
        p = (
            timeseries.Panel().title(title).description(description).unit(unit).span(w).height(h)
            .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
                    .placement(cm.LegendPlacement.BOTTOM).show_legend(True))
            .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
            .fill_opacity(10).line_width(1).span_nulls(True)
        )
        if thresholds is not None:
            p.thresholds(thresholds)
            if lines:
                p.thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.DASHED))
        return self.add(self._apply(self._targets(p, queries), extra))

    def stat(self, title: str, unit: str, queries: Sequence[Influx], *, w: int = 6, h: int = 4,
             thresholds: db.ThresholdsConfig | None = None, description: str = "", calc: str = "lastNotNull",
             no_value: str | None = None, **extra: Any) -> stat.Panel:
        p = (
            stat.Panel().title(title).description(description).unit(unit).span(w).height(h)
            .reduce_options(cb.ReduceDataOptions().calcs([calc]).values(False))
            .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.AREA)
            .text_mode(cm.BigValueTextMode.AUTO).orientation(cm.VizOrientation.AUTO)
        )
        if thresholds is not None:
            p.thresholds(thresholds)
        if no_value is not None:
            p.no_value(no_value)
        return self.add(self._apply(self._targets(p, queries), extra))

    def bargauge(self, title: str, unit: str, queries: Sequence[Influx], *, w: int = 12, h: int = 8,
                 thresholds: db.ThresholdsConfig | None = None, description: str = "",
                 **extra: Any) -> bargauge.Panel:
        p = (
            bargauge.Panel().title(title).description(description).unit(unit).span(w).height(h)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .display_mode(cm.BarGaugeDisplayMode.GRADIENT).orientation(cm.VizOrientation.HORIZONTAL)
            .show_unfilled(True)
        )
        if thresholds is not None:
            p.thresholds(thresholds)
        return self.add(self._apply(self._targets(p, queries), extra))

    def table(self, title: str, unit: str, queries: Sequence[Influx], *, w: int = 12, h: int = 8,
              description: str = "", sort_by: str | None = None, no_value: str | None = None,
              thresholds: db.ThresholdsConfig | None = None, **extra: Any) -> table.Panel:
        p = table.Panel().title(title).description(description).unit(unit).span(w).height(h).show_header(True)
        if sort_by:
            p.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(True)])
        if no_value is not None:
            p.no_value(no_value)
        if thresholds is not None:
            p.thresholds(thresholds)
        return self.add(self._apply(self._targets(p, [q.table() for q in queries]), extra))

    def timeline(self, title: str, queries: Sequence[Influx], *, w: int = 12, h: int = 8,
                 description: str = "", mappings: list[Any] | None = None, **extra: Any) -> statetimeline.Panel:
        p = (
            statetimeline.Panel().title(title).description(description).unit("bool").span(w).height(h)
            .show_value(cm.VisibilityMode.NEVER).merge_values(True).fill_opacity(80)
        )
        if mappings:
            p.mappings(mappings)
        return self.add(self._apply(self._targets(p, queries), extra))

    @staticmethod
    def _apply(panel: Any, extra: dict[str, Any]) -> Any:
        # Extra builder calls by name, e.g. max=..., min=..., data_links=[...].
        for name, value in extra.items():
            getattr(panel, name)(value)
        return panel


def bool_mappings(true_text: str, true_color: str, false_text: str = "ok", false_color: str = "green") -> list[Any]:
    """Value mappings that show a boolean state as words and colours."""
    return [
        dm.ValueMap(
            options={
                "true": dm.ValueMappingResult(text=true_text, color=true_color, index=0),
                "false": dm.ValueMappingResult(text=false_text, color=false_color, index=1),
            },
        )
    ]
