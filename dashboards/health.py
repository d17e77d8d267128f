"""Telemetry health: agent poll durations and errors, stale devices, queues and drops, samples stored per second.

Collector counters that live only on its Prometheus ``/metrics`` (rejects, spool bytes) are described
in docs/dashboards.md; every panel here reads InfluxDB, so every one is proven by the tests.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.common import Context, Panels, Var, dashboard, steps
from dashboards.influxql import Influx, fld, tag_match, where
from dashboards.units import unit_of
from dcim.schema import AGENT, COOLANT_LOOP, GPU, PDU_PHASE

A = AGENT.name
CHAIN = [Var("component", A, multi=True, include_all=True), Var("host", A, multi=True, include_all=True)]
LOC = ("component", "host")
BY_DEV = 'GROUP BY time($__interval), "component", "device" fill(none)'


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
        w=12, h=9,
    )
    p.timeseries(
        "Poll errors per minute", "none",
        [Influx(f'SELECT non_negative_derivative(max({fld(AGENT, "errors_total")}), 1m) FROM {a} {w} {BY_DEV}')
         .alias("$tag_component $tag_device")],
        w=12, h=9, min=0,
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
        w=8, h=8, min=0, thresholds=steps("green", (1, "red")),
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
    return p.into(dashboard(
        ctx, "health", "DCIM / Telemetry health", "Is the telemetry itself healthy: polls, staleness, queues.",
        CHAIN, (),
    ))
