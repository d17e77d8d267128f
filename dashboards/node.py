"""Node and GPU: power and limit, temperatures against slowdown, clocks, utilization, throttling, XID/ECC, lost state."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dcim.dashboards.common import Context, Panels, Var, bool_mappings, dashboard, steps
from dcim.dashboards.influxql import Influx, fld, tag_match, where
from dcim.dashboards.units import unit_of
from dcim.schema import GPU, GPU_XID, field_names

CHAIN = [Var("site"), Var("room"), Var("row"), Var("rack"), Var("node"), Var("gpu", multi=True, include_all=True)]
LOC = ("site", "room", "row", "rack", "node", "gpu")
BY_GPU = 'GROUP BY time($__interval), "gpu" fill(none)'


def build(ctx: Context) -> db.Dashboard:
    th = ctx.thresholds
    p = Panels(ctx)
    w = where(*tag_match(*LOC))
    g = f'"{GPU.name}"'

    p.row("Power and thermals")
    p.timeseries(
        "GPU power and limit", unit_of(GPU, "power_w"),
        [Influx(f'SELECT mean({fld(GPU, "power_w")}) AS "power", last({fld(GPU, "power_limit_w")}) AS "limit" '
                f"FROM {g} {w} {BY_GPU}").alias("GPU $tag_gpu $col")],
        w=12, h=9, min=0, description="Power draw against the enforced power limit of each GPU.",
    )
    p.timeseries(
        "Temperatures against slowdown", unit_of(GPU, "temp_c"),
        [Influx(f'SELECT mean({fld(GPU, "temp_c")}) AS "die", mean({fld(GPU, "mem_temp_c")}) AS "hbm", '
                f'last({fld(GPU, "temp_slowdown_c")}) AS "slowdown" FROM {g} {w} {BY_GPU}').alias("GPU $tag_gpu $col")],
        w=12, h=9, lines=True, thresholds=steps("green", (th.gpu_temp_alert_c, "orange"), (th.gpu_slowdown_fallback_c, "red")),
        description="Die and memory temperature with the GPU's own slowdown threshold; dashed at the rule "
                    f"pack's fallback ({th.gpu_slowdown_fallback_c:g} °C) for GPUs that do not report one, and "
                    f"{-th.gpu_temp_alert_offset_c:g} K below it, where the alert fires ({th.gpu_temp_alert_c:g} °C).",
    )
    p.timeseries(
        "Clocks", unit_of(GPU, "sm_clock_mhz"),
        [Influx(f'SELECT mean({fld(GPU, "sm_clock_mhz")}) AS "sm", mean({fld(GPU, "mem_clock_mhz")}) AS "mem" '
                f"FROM {g} {w} {BY_GPU}").alias("GPU $tag_gpu $col")],
        w=12, h=8,
    )
    p.timeseries(
        "Utilization and activity", unit_of(GPU, "util_pct"),
        [Influx(f'SELECT mean({fld(GPU, "activity_pct")}) AS "activity", mean({fld(GPU, "util_pct")}) AS "util", '
                f'mean({fld(GPU, "mem_util_pct")}) AS "mem" FROM {g} {w} {BY_GPU}').alias("GPU $tag_gpu $col")],
        w=12, h=8, min=0, max=100,
        description="activity: SM activity (NVML GPM) where the GPU has it, else the same as util; util: NVML "
                    "utilization, time in which any kernel ran (a stalled job reads 100 %); mem: memory controller.",
    )
    p.row("Throttling and errors")
    reasons = [f for f in field_names(GPU) if f.startswith("throttle_")]
    sel = ", ".join(f'last({fld(GPU, f)}) AS "{f.removeprefix("throttle_")}"' for f in reasons)
    p.timeline(
        "Throttle reasons", [Influx(f"SELECT {sel} FROM {g} {w} {BY_GPU}").alias("GPU $tag_gpu $col")],
        w=24, h=12, mappings=bool_mappings("active", "orange", "-", "transparent"),
        description="Why clocks were lowered, reason by reason (NVML clock-event reasons).",
    )
    p.timeseries(
        "XID errors by code", "none",
        [Influx(f'SELECT last({fld(GPU_XID, "count_total")}) FROM "{GPU_XID.name}" {w} '
                'GROUP BY time($__interval), "gpu", "xid" fill(none)').alias("GPU $tag_gpu XID $tag_xid")],
        w=12, h=8, min=0, no_value="no XIDs",
        description="XID errors per code since the agent started; a series appears with a GPU's first XID.",
    )
    p.timeseries(
        "ECC errors and remapped rows", "none",
        [Influx(f'SELECT last({fld(GPU, "ecc_sbe_volatile_total")}) AS "ecc corrected", '
                f'last({fld(GPU, "ecc_dbe_volatile_total")}) AS "ecc uncorrected", '
                f'last({fld(GPU, "remapped_rows_uncorrectable")}) AS "remapped rows" FROM {g} {w} {BY_GPU}')
         .alias("GPU $tag_gpu $col")],
        w=12, h=8, min=0, description="Volatile ECC counters (since driver load) and rows remapped for "
                                      "uncorrectable errors.",
    )
    p.timeline(
        "Lost (fell off the bus)",
        [Influx(f'SELECT last({fld(GPU, "lost")}) AS "lost" FROM {g} {w} {BY_GPU}').alias("GPU $tag_gpu")],
        w=24, h=6, mappings=bool_mappings("LOST", "red"),
        description="NVML GPU_IS_LOST: the GPU needs a reset or a node reboot.",
    )
    return p.into(dashboard(
        ctx, "node", "DCIM / Node and GPU", "One node's GPUs: power, thermals, clocks, throttling, errors.",
        CHAIN, LOC[:-1],
    ))
