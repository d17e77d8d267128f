"""Telemetry health: agent poll durations and errors, stale devices, queues and drops, the collectors' spools
and dead letters, samples stored per second.

The collector reports on itself in the ``agent`` measurement (component ``collector``: spool fill, dead
letters, queue); every panel here reads InfluxDB, so every one is proven by the tests.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dcim.dashboards.common import Context, Panels, Var, dashboard, steps
from dcim.dashboards.influxql import Influx, fld, tag_match, where
from dcim.dashboards.units import unit_of
from dcim.schema import AGENT, COOLANT_LOOP, GPU, PDU_PHASE

A = AGENT.name
CHAIN = [Var("component", A, multi=True, include_all=True), Var("host", A, multi=True, include_all=True)]
LOC = ("component", "host")
BY_DEV = 'GROUP BY time($__interval), "component", "device" fill(none)'
#: what a poll panel says for a component that polls nothing (a collector)
NOT_POLLING = "no polls (not a poller)"


def build(ctx: Context) -> db.Dashboard:
    p = Panels(ctx)
    w = where(*tag_match(*LOC))
    a = f'"{A}"'
    stale_inner = (f'SELECT last({fld(AGENT, "stale")}) AS "stale" FROM {a} {w} '
                   'GROUP BY "component", "host", "device"')

    p.row("Devices")
    p.stat(
        "Stale devices", "none", [Influx(f'SELECT count("stale") FROM ({stale_inner}) WHERE "stale" = true')
                                  .alias("stale")],
        w=6, h=8, no_value="0", thresholds=steps("green", (1, "red")),
    )
    p.table(
        "Stale devices, by name", "none",
        [Influx(f'SELECT "stale" FROM ({stale_inner}) WHERE "stale" = true GROUP BY "component", "host", "device"')],
        w=18, h=8, no_value="none stale",
        description="Devices whose last health record says no fresh data within their timeout.",
    )
    p.row("Polling")
    p.timeseries(
        "Poll duration", unit_of(AGENT, "poll_duration_s"),
        [Influx(f'SELECT max({fld(AGENT, "poll_duration_s")}) FROM {a} {w} {BY_DEV}').alias("$tag_component $tag_device")],
        w=12, h=9, no_value=NOT_POLLING,
    )
    p.timeseries(
        "Poll errors per minute", "none",
        [Influx(f'SELECT non_negative_derivative(max({fld(AGENT, "errors_total")}), 1m) FROM {a} {w} {BY_DEV}')
         .alias("$tag_component $tag_device")],
        w=12, h=9, min=0, no_value=NOT_POLLING,
    )
    p.row("Queues and throughput")
    p.timeseries(
        "Agent queue depth", "none",
        [Influx(f'SELECT max({fld(AGENT, "queue_depth")}) FROM {a} {w} '
                'GROUP BY time($__interval), "component", "host" fill(none)').alias("$tag_component $tag_host")],
        w=8, h=8, min=0,
    )
    p.timeseries(
        "Dropped messages per minute", "none",
        [Influx(f'SELECT non_negative_derivative(max({fld(AGENT, "dropped_total")}), 1m) FROM {a} {w} '
                'GROUP BY time($__interval), "component", "host" fill(none)').alias("$tag_component $tag_host")],
        w=8, h=8, min=0, thresholds=steps("green", (1, "red")), no_value="not reported",
        description="Agents count what their bounded queue had to drop; a collector spools instead (below).",
    )
    # What reached the store, end to end: samples per second of the busiest measurements.
    stored = [
        Influx(f'SELECT count({fld(m, f)}) / ($__interval_ms / 1000) FROM "{m.name}" {where()} '
               "GROUP BY time($__interval) fill(0)").alias(m.name)
        for m, f in ((GPU, "power_w"), (PDU_PHASE, "current_a"), (COOLANT_LOOP, "flow_lpm"))
    ]
    p.timeseries(
        "Samples stored per second", "cps", stored, w=8, h=8, min=0,
        description="Points that reached InfluxDB, per measurement: the collector's throughput as the store sees it.",
    )
    p.row("Collectors")
    p.timeseries(
        "Collector spool used", unit_of(AGENT, "spool_used_pct"),
        [Influx(f'SELECT max({fld(AGENT, "spool_used_pct")}) FROM {a} {w} '
                'GROUP BY time($__interval), "host" fill(none)').alias("$tag_host")],
        w=12, h=8, min=0, max=100, thresholds=steps("green", (80, "orange"), (95, "red")), lines=True,
        no_value="no collector selected",
        description="How full each collector's fullest disk spool is, from its own reports: it fills while "
                    "the store is down and empties when it is back.",
    )
    p.timeseries(
        "Dead letters per minute", "none",
        [Influx(f'SELECT non_negative_derivative(max({fld(AGENT, "dead_letters_total")}), 1m) FROM {a} {w} '
                'GROUP BY time($__interval), "host" fill(none)').alias("$tag_host")],
        w=12, h=8, min=0, no_value="no collector selected",
        description="Lines each collector refused (bad line protocol, unknown fields, schema violations) and "
                    "wrote to its dead-letter file.",
    )
    return p.into(dashboard(
        ctx, "health", "DCIM / Telemetry health", "Is the telemetry itself healthy: polls, staleness, queues.",
        CHAIN, (),
    ))
