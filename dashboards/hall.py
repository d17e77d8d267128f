"""Hall overview: fleet utilization, energy and its cost, power against capacity, hot GPUs, loops, alerts, stale devices."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dcim.dashboards.common import UIDS, Context, Panels, Var, dashboard, link_to, steps
from dcim.dashboards.influxql import Influx, fld, number, optional_tag_match, tag_match, where
from dcim.dashboards.units import KWH, currency_unit, unit_of
from dcim.schema import AGENT, ALERT, COOLANT_LOOP, GPU, PDU

CHAIN = [Var("site"), Var("room", multi=True, include_all=True), Var("row", multi=True, include_all=True)]
LOC = ("site", "room", "row")
J_PER_KWH = 3_600_000


def _energy_kwh_per_rack(group: str) -> str:
    """kWh per rack and ``group`` bucket, from PDU energy counters (resets skipped, not subtracted)."""
    inner = (
        f'SELECT non_negative_difference(last({fld(PDU, "energy_j")})) AS "e" FROM "{PDU.name}" '
        f'{where(*tag_match(*LOC))} GROUP BY time($__interval), "rack", "pdu"'
    )
    return f'SELECT sum("e") / {J_PER_KWH} FROM ({inner}) {where()} GROUP BY time({group}), "rack" fill(none)'


def build(ctx: Context) -> db.Dashboard:
    p = Panels(ctx)
    loc = tag_match(*LOC)
    # Capacity is the site's: the summed rack budgets, whatever rows the variables select.
    capacity_w = sum(r.budget_w for r in ctx.site.racks())
    _fleet(ctx, p, loc, capacity_w)
    _power_and_energy(ctx, p, loc, capacity_w)
    _thermal_and_cooling(ctx, p, loc)
    _alerts_and_telemetry(p)
    return p.into(dashboard(
        ctx, "hall", "DCIM / Hall overview",
        "The whole hall at a glance: utilization, power, energy, cooling, alerts.", CHAIN, LOC,
    ))


def _fleet(ctx: Context, p: Panels, loc: list[str], capacity_w: float) -> None:
    cfg = ctx.cfg
    p.row("Fleet")
    # NVML's utilization counts time in which any kernel ran, so a stalled or memory-bound job reads
    # 100 %; the KPI is SM activity where the GPU measures it (GPM, Hopper and later). The second
    # value is SM activity alone: equal to the first when every GPU measures it, absent when none does.
    p.stat(
        "Fleet GPU activity", unit_of(GPU, "activity_pct"),
        [Influx(f'SELECT mean({fld(GPU, "activity_pct")}) FROM "{GPU.name}" {where(*loc)} '
                "GROUP BY time($__interval) fill(none)").alias("activity"),
         Influx(f'SELECT mean({fld(GPU, "sm_active_pct")}) FROM "{GPU.name}" {where(*loc)} '
                "GROUP BY time($__interval) fill(none)").alias("SM activity (GPM)")],
        w=6, h=6, calc="mean",
        thresholds=steps("red", (cfg.util_look_pct, "orange"), (cfg.util_good_pct, "green")),
        description=f"Mean activity of every GPU in the selection: SM activity (NVML GPM, as dcgm-exporter's "
                    f"DCGM_FI_PROF_SM_ACTIVE) where the GPU has it, NVML utilization (a kernel was running) "
                    f"elsewhere. 'SM activity (GPM)' is the mean over the GPUs that measure it: the same as "
                    f"'activity' when all do, absent when none does. At or "
                    f"above {cfg.util_good_pct:g} % is good; under {cfg.util_look_pct:g} % needs a look.",
        min=0, max=100,
    )
    total_power = (
        f'SELECT sum("p") FROM (SELECT mean({fld(PDU, "power_w")}) AS "p" FROM "{PDU.name}" {where(*loc)} '
        f'GROUP BY time($__interval), "rack", "pdu") {where()} GROUP BY time($__interval) fill(none)'
    )
    p.stat(
        "Total IT power", unit_of(PDU, "power_w"), [Influx(total_power).alias("IT power")], w=6, h=6,
        thresholds=steps("green", (0.8 * capacity_w, "orange"), (capacity_w, "red")),
        description=f"Sum of all rack PDUs; orange from 80 % of the site's capacity, {capacity_w / 1000:g} kW "
                    "(the summed rack budgets).",
    )
    p.stat(
        "IT power against capacity", "percent",
        [Influx(total_power.replace('SELECT sum("p")', f'SELECT sum("p") / {number(capacity_w)} * 100', 1))
         .alias("of capacity")],
        w=6, h=6, thresholds=steps("green", (80, "orange"), (100, "red")), min=0, max=100,
        description="Total IT power as a share of the summed rack budgets.",
    )
    p.stat(
        "Energy cost today", currency_unit(cfg.currency),
        [Influx(
            f'SELECT sum("e") / {J_PER_KWH} * {number(cfg.tariff_per_kwh)} FROM '
            f'(SELECT non_negative_difference(last({fld(PDU, "energy_j")})) AS "e" FROM "{PDU.name}" {where(*loc)} '
            f'GROUP BY time($__interval), "rack", "pdu") {where()} GROUP BY time(1d) fill(none)'
        ).alias("cost")],
        w=6, h=6,
        description=f"Energy of all rack PDUs per day at {cfg.tariff_per_kwh:g} {cfg.currency}/kWh "
                    "(DashboardsConfig.tariff_per_kwh).",
    )


def _power_and_energy(ctx: Context, p: Panels, loc: list[str], capacity_w: float) -> None:
    cfg = ctx.cfg
    p.row("Power and energy")
    racks = list(ctx.site.racks())
    rating_w = max((r.budget_w for r in racks), default=0.0)
    rack_power = p.bargauge(
        "Power per rack against its rating", unit_of(PDU, "power_w"),
        [Influx(f'SELECT sum("p") FROM (SELECT mean({fld(PDU, "power_w")}) AS "p" FROM "{PDU.name}" '
                f'{where(*loc)} GROUP BY time($__interval), "room", "row", "rack", "pdu") {where()} '
                'GROUP BY time($__interval), "room", "row", "rack" fill(none)').alias("$tag_rack")],
        w=12, h=10, min=0, max=rating_w,
        thresholds=steps("green", (0.8 * rating_w, "orange"), (rating_w, "red")),
        description="Both feeds summed per rack; the bar ends at the rack's budget (RackConfig.budget_w), "
                    "orange from 80 % of it. Click a rack for its dashboard.",
        data_links=[link_to(UIDS["rack"], "Rack ${__field.labels.rack}",
                            "var-site=${site}&var-room=${__field.labels.room}&var-row=${__field.labels.row}"
                            "&var-rack=${__field.labels.rack}")],
    )
    for r in racks:
        if r.budget_w != rating_w:
            # A rack with another budget gets its own scale and lines.
            rack_power.override_by_name(r.name, [
                dm.DynamicConfigValue(id_val="max", value=r.budget_w),
                dm.DynamicConfigValue(id_val="thresholds", value=steps(
                    "green", (0.8 * r.budget_w, "orange"), (r.budget_w, "red")).build()),
            ])
    p.timeseries(
        "Total IT power against capacity", unit_of(PDU, "power_w"),
        [Influx(f'SELECT sum("p") FROM (SELECT mean({fld(PDU, "power_w")}) AS "p" FROM "{PDU.name}" '
                f'{where(*loc)} GROUP BY time($__interval), "rack", "pdu") {where()} '
                "GROUP BY time($__interval) fill(none)").alias("IT power")],
        w=12, h=10, thresholds=steps("green", (0.8 * capacity_w, "orange"), (capacity_w, "red")), lines=True,
        description=f"Dashed lines: 80 % of capacity and capacity ({capacity_w / 1000:g} kW).",
    )
    p.bargauge(
        "Energy per rack today", KWH, [Influx(_energy_kwh_per_rack("1d")).alias("$tag_rack")], w=12, h=8,
        thresholds=steps("blue"),
        description="kWh per rack since midnight UTC, from the PDU energy counters (both feeds).",
    )
    p.timeseries(
        "Energy cost per rack and day", currency_unit(cfg.currency),
        [Influx(_energy_kwh_per_rack("1d").replace(
            f'sum("e") / {J_PER_KWH}', f'sum("e") / {J_PER_KWH} * {cfg.tariff_per_kwh:g}', 1)).alias("$tag_rack")],
        w=12, h=8, draw_style=cm.GraphDrawStyle.BARS,
        description=f"Energy per rack and day at the configured tariff, {cfg.tariff_per_kwh:g} {cfg.currency}/kWh "
                    "(DashboardsConfig.tariff_per_kwh).",
    )


def _thermal_and_cooling(ctx: Context, p: Panels, loc: list[str]) -> None:
    th = ctx.thresholds
    p.row("Thermal and cooling")
    p.table(
        "Hottest GPUs", unit_of(GPU, "temp_c"),
        [Influx(f'SELECT top("t", 10) AS "temp_c", "node", "gpu", "rack", "row", "room" FROM '
                f'(SELECT last({fld(GPU, "temp_c")}) AS "t" FROM "{GPU.name}" {where(*loc)} '
                'GROUP BY "room", "row", "rack", "node", "gpu")')],
        w=12, h=9, sort_by="temp_c",
        thresholds=steps("green", (th.gpu_temp_alert_c, "orange"), (th.gpu_slowdown_fallback_c, "red")),
        description=f"The ten hottest GPUs now. Orange where the rule pack's GPU temperature alert fires "
                    f"({th.gpu_temp_alert_c:g} °C), red at the slowdown fallback ({th.gpu_slowdown_fallback_c:g} °C). "
                    "Click a row for the node's dashboard.",
        data_links=[link_to(UIDS["node"], "Node ${__data.fields.node}",
                            "var-site=${site}&var-room=${__data.fields.room}&var-row=${__data.fields.row}"
                            "&var-rack=${__data.fields.rack}&var-node=${__data.fields.node}")],
    )
    loop_loc = tag_match("site", "room")
    p.stat(
        "Coolant supply temperature", unit_of(COOLANT_LOOP, "supply_temp_c"),
        [Influx(f'SELECT last({fld(COOLANT_LOOP, "supply_temp_c")}) FROM "{COOLANT_LOOP.name}" {where(*loop_loc)} '
                'GROUP BY time($__interval), "room", "loop" fill(none)').alias("$tag_loop")],
        w=4, h=9, thresholds=steps("green", (th.coolant_supply_max_c, "red")),
        description=f"Red at the supply class limit of the rule pack ({th.coolant_supply_max_c:g} °C).",
        data_links=[link_to(UIDS["coolant"], "Loop ${__field.labels.loop}",
                            "var-site=${site}&var-room=${__field.labels.room}&var-loop=${__field.labels.loop}")],
    )
    p.stat(
        "Coolant ΔT", unit_of(COOLANT_LOOP, "return_temp_c"),
        [Influx(f'SELECT last({fld(COOLANT_LOOP, "return_temp_c")}) - last({fld(COOLANT_LOOP, "supply_temp_c")}) '
                f'FROM "{COOLANT_LOOP.name}" {where(*loop_loc)} GROUP BY time($__interval), "loop" fill(none)')
         .alias("$tag_loop")],
        w=4, h=9,
        thresholds=steps("orange", (th.coolant_delta_t_min_k, "green"), (th.coolant_delta_t_max_k, "orange")),
        description=f"Return minus supply temperature per loop; green inside the rule pack's band "
                    f"({th.coolant_delta_t_min_k:g}-{th.coolant_delta_t_max_k:g} K).",
    )
    p.stat(
        "Coolant flow", unit_of(COOLANT_LOOP, "flow_lpm"),
        [Influx(f'SELECT last({fld(COOLANT_LOOP, "flow_lpm")}) FROM "{COOLANT_LOOP.name}" {where(*loop_loc)} '
                'GROUP BY time($__interval), "loop" fill(none)').alias("$tag_loop")],
        w=4, h=9, thresholds=steps("red", (th.coolant_flow_low_lpm, "green")),
        description=f"Red under the low-flow line of the rule pack ({th.coolant_flow_low_lpm:g} L/min).",
    )


def _alerts_and_telemetry(p: Panels) -> None:
    p.row("Alerts and telemetry")
    p.table(
        "Firing alerts", "none",
        [Influx(f'SELECT "state", "severity", "summary", "value" FROM (SELECT last({fld(ALERT, "state")}) AS "state", '
                f'last({fld(ALERT, "summary")}) AS "summary", last({fld(ALERT, "value")}) AS "value" '
                f'FROM "{ALERT.name}" {where(*optional_tag_match(*LOC))} GROUP BY *) '
                "WHERE \"state\" = 'firing' GROUP BY \"alertname\", \"severity\", \"rack\", \"node\", \"gpu\", \"pdu\", \"phase\", \"loop\"")],
        w=16, h=8, no_value="nothing firing",
        description="The last transition of each alert in the time range, where that is 'firing'.",
    )
    stale = (
        f'SELECT count("stale") FROM (SELECT last({fld(AGENT, "stale")}) AS "stale" FROM "{AGENT.name}" '
        f'{where(*optional_tag_match(*LOC))} GROUP BY "component", "host", "device") WHERE "stale" = true'
    )
    p.stat(
        "Stale devices", "none", [Influx(stale).alias("stale devices")], w=8, h=8, no_value="0",
        thresholds=steps("green", (1, "red")),
        description="Devices whose last agent health record says stale. Details on the telemetry-health dashboard.",
        data_links=[link_to(UIDS["health"], "Telemetry health")],
    )
