"""Rack: PDU phases against the 80 % line, voltage and power, outlets, the rack's GPUs and its coolant loop."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dcim.dashboards.common import UIDS, Context, Panels, Var, dashboard, link_to, steps
from dcim.dashboards.influxql import Influx, fld, tag_match, where
from dcim.dashboards.units import unit_of
from dcim.schema import COOLANT_LOOP, GPU, PDU_OUTLET, PDU_PHASE

CHAIN = [Var("site"), Var("room"), Var("row"), Var("rack")]
LOC = ("site", "room", "row", "rack")


def build(ctx: Context) -> db.Dashboard:
    th = ctx.thresholds
    p = Panels(ctx)
    loc = tag_match(*LOC)
    # One line for the whole dashboard: the smallest breaker of the site is the conservative choice.
    breaker_a = min((pdu.breaker_a for r in ctx.site.racks() for pdu in r.pdus), default=0.0)
    line_a = th.phase_current_pct / 100 * breaker_a

    p.row("PDU phases")
    p.timeseries(
        "Phase current", unit_of(PDU_PHASE, "current_a"),
        [Influx(f'SELECT mean({fld(PDU_PHASE, "current_a")}) FROM "{PDU_PHASE.name}" {where(*loc)} '
                'GROUP BY time($__interval), "pdu", "phase" fill(none)').alias("$tag_pdu $tag_phase")],
        w=12, h=9, lines=True, min=0,
        thresholds=steps("green", (line_a, "orange"), (breaker_a, "red")),
        description=f"Dashed: {th.phase_current_pct:g} % of the {breaker_a:g} A breaker ({line_a:g} A, from the "
                    "rule pack) and the breaker rating itself.",
    )
    # The engine's formula (Raritan's): 100 x max|Li - mean| / mean, where max|Li - mean| is
    # max(max - mean, mean - min) = ((max - min) + |max + min - 2 mean|) / 2; InfluxQL has no greatest().
    p.timeseries(
        "Phase imbalance", "percent",
        [Influx('SELECT ((max("i") - min("i")) + abs(max("i") + min("i") - 2 * mean("i"))) / 2 / mean("i") * 100 '
                f'FROM (SELECT mean({fld(PDU_PHASE, "current_a")}) AS "i" FROM "{PDU_PHASE.name}" {where(*loc)} '
                f'GROUP BY time($__interval), "pdu", "phase") {where()} GROUP BY time($__interval), "pdu" fill(none)')
         .alias("$tag_pdu")],
        w=12, h=9, lines=True, min=0,
        thresholds=steps("green", (th.phase_imbalance_pct, "red")),
        description=f"100 x max|phase - mean| / mean of each PDU's phase currents, as the alert engine computes it; "
                    f"dashed at the rule pack's {th.phase_imbalance_pct:g} %.",
    )
    p.timeseries(
        "Phase voltage", unit_of(PDU_PHASE, "voltage_v"),
        [Influx(f'SELECT mean({fld(PDU_PHASE, "voltage_v")}) FROM "{PDU_PHASE.name}" {where(*loc)} '
                'GROUP BY time($__interval), "pdu", "phase" fill(none)').alias("$tag_pdu $tag_phase")],
        w=12, h=8,
    )
    p.timeseries(
        "Phase power", unit_of(PDU_PHASE, "power_w"),
        [Influx(f'SELECT mean({fld(PDU_PHASE, "power_w")}) FROM "{PDU_PHASE.name}" {where(*loc)} '
                'GROUP BY time($__interval), "pdu", "phase" fill(none)').alias("$tag_pdu $tag_phase")],
        w=12, h=8,
    )
    p.row("Outlets")
    p.bargauge(
        "Outlet power", unit_of(PDU_OUTLET, "power_w"),
        [Influx(f'SELECT last({fld(PDU_OUTLET, "power_w")}) FROM "{PDU_OUTLET.name}" {where(*loc)} '
                'GROUP BY time($__interval), "pdu", "outlet" fill(none)').alias("$tag_pdu #$tag_outlet")],
        w=12, h=12, thresholds=steps("green"),
    )
    p.timeseries(
        "Outlet current", unit_of(PDU_OUTLET, "current_a"),
        [Influx(f'SELECT mean({fld(PDU_OUTLET, "current_a")}) FROM "{PDU_OUTLET.name}" {where(*loc)} '
                'GROUP BY time($__interval), "pdu", "outlet" fill(none)').alias("$tag_pdu #$tag_outlet")],
        w=12, h=12,
    )
    p.row("GPUs")
    node_link = [link_to(UIDS["node"], "Node ${__field.labels.node}",
                         "var-site=${site}&var-room=${room}&var-row=${row}&var-rack=${rack}"
                         "&var-node=${__field.labels.node}")]
    p.timeseries(
        "GPU power", unit_of(GPU, "power_w"),
        [Influx(f'SELECT mean({fld(GPU, "power_w")}) FROM "{GPU.name}" {where(*loc)} '
                'GROUP BY time($__interval), "node", "gpu" fill(none)').alias("$tag_node/$tag_gpu")],
        w=12, h=9, data_links=node_link, description="Click a series for its node's dashboard.",
    )
    p.timeseries(
        "GPU temperature", unit_of(GPU, "temp_c"),
        [Influx(f'SELECT mean({fld(GPU, "temp_c")}) FROM "{GPU.name}" {where(*loc)} '
                'GROUP BY time($__interval), "node", "gpu" fill(none)').alias("$tag_node/$tag_gpu")],
        w=12, h=9, lines=True, data_links=node_link,
        thresholds=steps("green", (th.gpu_temp_alert_c, "orange"), (th.gpu_slowdown_fallback_c, "red")),
        description=f"Dashed where the rule pack's GPU temperature alert fires ({th.gpu_temp_alert_c:g} °C) and at "
                    f"its slowdown fallback ({th.gpu_slowdown_fallback_c:g} °C), for GPUs without their own.",
    )
    p.row("Coolant loop")
    # coolant_loop carries site/room/row, not rack: the rack's loop is found through its row.
    loop_loc = tag_match("site", "room", "row")
    p.timeseries(
        "Loop supply and return", unit_of(COOLANT_LOOP, "supply_temp_c"),
        [Influx(f'SELECT mean({fld(COOLANT_LOOP, "supply_temp_c")}) AS "supply", '
                f'mean({fld(COOLANT_LOOP, "return_temp_c")}) AS "return" FROM "{COOLANT_LOOP.name}" '
                f'{where(*loop_loc)} GROUP BY time($__interval), "loop" fill(none)').alias("$tag_loop $col")],
        w=12, h=8, lines=True, thresholds=steps("green", (th.coolant_supply_max_c, "red")),
        data_links=[link_to(UIDS["coolant"], "Loop ${__field.labels.loop}",
                            "var-site=${site}&var-room=${room}&var-loop=${__field.labels.loop}")],
    )
    p.timeseries(
        "Loop flow", unit_of(COOLANT_LOOP, "flow_lpm"),
        [Influx(f'SELECT mean({fld(COOLANT_LOOP, "flow_lpm")}) FROM "{COOLANT_LOOP.name}" {where(*loop_loc)} '
                'GROUP BY time($__interval), "loop" fill(none)').alias("$tag_loop")],
        w=12, h=8, lines=True, thresholds=steps("red", (th.coolant_flow_low_lpm, "green")),
    )
    return p.into(dashboard(
        ctx, "rack", "DCIM / Rack", "One rack: its PDUs phase by phase, outlets, GPUs and coolant loop.", CHAIN, LOC,
    ))
