"""Coolant loop: supply and return temperature, ΔT, flow, pressure, and heat removed against its racks' power."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dcim.dashboards.common import Context, Panels, Var, bool_mappings, dashboard, steps
from dcim.dashboards.influxql import Influx, fld, tag_match, where
from dcim.dashboards.units import unit_of
from dcim.schema import COOLANT_LOOP, PDU

M = COOLANT_LOOP.name
CHAIN = [Var("site", M), Var("room", M), Var("loop", M, multi=True, include_all=True)]
LOC = ("site", "room", "loop")
BY_LOOP = 'GROUP BY time($__interval), "loop" fill(none)'


def build(ctx: Context) -> db.Dashboard:
    th = ctx.thresholds
    p = Panels(ctx)
    w = where(*tag_match(*LOC))
    c = f'"{M}"'

    p.row("Temperatures")
    p.timeseries(
        "Supply and return temperature", unit_of(COOLANT_LOOP, "supply_temp_c"),
        [Influx(f'SELECT mean({fld(COOLANT_LOOP, "supply_temp_c")}) AS "supply", '
                f'mean({fld(COOLANT_LOOP, "return_temp_c")}) AS "return", '
                f'last({fld(COOLANT_LOOP, "setpoint_c")}) AS "setpoint" FROM {c} {w} {BY_LOOP}')
         .alias("$tag_loop $col")],
        w=12, h=9, lines=True, thresholds=steps("green", (th.coolant_supply_max_c, "red")),
        description=f"Dashed at the rule pack's supply class limit ({th.coolant_supply_max_c:g} °C).",
    )
    p.timeseries(
        "ΔT (return - supply)", unit_of(COOLANT_LOOP, "return_temp_c"),
        [Influx(f'SELECT mean({fld(COOLANT_LOOP, "return_temp_c")}) - mean({fld(COOLANT_LOOP, "supply_temp_c")}) '
                f"FROM {c} {w} {BY_LOOP}").alias("$tag_loop")],
        w=12, h=9, lines=True,
        thresholds=steps("orange", (th.coolant_delta_t_min_k, "green"), (th.coolant_delta_t_max_k, "orange")),
        description=f"A rising ΔT at constant load means less flow. Dashed at the rule pack's band "
                    f"({th.coolant_delta_t_min_k:g}-{th.coolant_delta_t_max_k:g} K).",
    )
    p.row("Hydraulics")
    p.timeseries(
        "Flow", unit_of(COOLANT_LOOP, "flow_lpm"),
        [Influx(f'SELECT mean({fld(COOLANT_LOOP, "flow_lpm")}) FROM {c} {w} {BY_LOOP}').alias("$tag_loop")],
        w=8, h=8, lines=True, min=0, thresholds=steps("red", (th.coolant_flow_low_lpm, "green")),
        description=f"Dashed at the rule pack's low-flow line ({th.coolant_flow_low_lpm:g} L/min).",
    )
    p.timeseries(
        "Differential pressure", unit_of(COOLANT_LOOP, "diff_pressure_kpa"),
        [Influx(f'SELECT mean({fld(COOLANT_LOOP, "diff_pressure_kpa")}) FROM {c} {w} {BY_LOOP}').alias("$tag_loop")],
        w=8, h=8, lines=True, thresholds=steps("red", (th.coolant_dp_low_kpa, "green")),
        description=f"Dashed at the rule pack's low line ({th.coolant_dp_low_kpa:g} kPa): a failing pump.",
    )
    p.timeseries(
        "Pump speed", unit_of(COOLANT_LOOP, "pump_speed_pct"),
        [Influx(f'SELECT mean({fld(COOLANT_LOOP, "pump_speed_pct")}) FROM {c} {w} {BY_LOOP}').alias("$tag_loop")],
        w=8, h=8, min=0, max=100,
    )
    p.row("Heat balance")
    queries = [
        Influx(f'SELECT mean({fld(COOLANT_LOOP, "heat_w")}) FROM {c} {w} {BY_LOOP}').alias("$tag_loop heat removed")
    ]
    for loop in ctx.site.loops:
        # Which racks a loop cools is configuration, not a tag: one query per configured loop.
        its_racks = '"rack" =~ /^(' + "|".join(loop.racks) + ')$/'
        queries.append(Influx(
            f'SELECT sum("p") FROM (SELECT mean({fld(PDU, "power_w")}) AS "p" FROM "{PDU.name}" '
            f'{where(its_racks)} GROUP BY time($__interval), "rack", "pdu") {where()} '
            "GROUP BY time($__interval) fill(none)"
        ).alias(f"{loop.name} electrical"))
    p.timeseries(
        "Heat removed against electrical power of its racks", unit_of(COOLANT_LOOP, "heat_w"), queries,
        w=16, h=9, min=0,
        description="Heat the loop carries away (flow x cp x ΔT) against the PDU power of the racks it cools "
                    "(from the site configuration). The gap is heat left to the room air.",
    )
    p.timeline(
        "Leak", [Influx(f'SELECT last({fld(COOLANT_LOOP, "leak")}) AS "leak" FROM {c} {w} {BY_LOOP}').alias("$tag_loop")],
        w=8, h=9, mappings=bool_mappings("LEAK", "red"),
    )
    return p.into(dashboard(
        ctx, "coolant", "DCIM / Coolant loop", "Secondary coolant loops: temperatures, hydraulics, heat balance.",
        CHAIN, ("site", "room", "loop"),
    ))
