"""A compact read-out of the hall for people: totals against ratings, hottest GPUs, loops (used by ``dcim demo``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcim.simulators.hall import Hall
from dcim.simulators.throttle import THROTTLE_BITS

_REASON_NAMES = {bit: name.removeprefix("throttle_") for name, bit in THROTTLE_BITS.items()}


@dataclass(slots=True)
class RackView:
    name: str
    power_w: float
    budget_w: float
    max_temp_c: float
    throttled: int  # GPUs held back by thermal limits


@dataclass(slots=True)
class GpuView:
    node: str
    gpu: int
    temp_c: float
    power_w: float
    sm_clock_mhz: float
    reasons: str
    lost: bool


@dataclass(slots=True)
class LoopView:
    name: str
    supply_c: float
    return_c: float
    setpoint_c: float
    flow_lpm: float
    pump_pct: float
    heat_w: float
    leak: bool
    answering: bool


@dataclass(slots=True)
class Overview:
    time_ns: int
    t_s: float
    power_w: float
    budget_w: float
    racks: list[RackView]
    hottest: list[GpuView]
    loops: list[LoopView]
    thermal_throttled: int
    power_capped: int
    lost: int
    max_phase_load: float  # highest phase current / breaker rating
    util_pct: float = 0.0  # fleet GPU utilization: mean SM utilization of the GPUs not lost (the KPI)


def reasons(mask: int) -> str:
    """Names of the set clock-event bits, e.g. 'sw_power_cap,sw_thermal'."""
    return ",".join(name for bit, name in _REASON_NAMES.items() if mask & bit) or "-"


def overview(hall: Hall, *, top: int = 5) -> Overview:
    thermal_bits = THROTTLE_BITS["throttle_sw_thermal"] | THROTTLE_BITS["throttle_hw_thermal"]
    thermal = (hall.mask & thermal_bits) != 0
    rack_power = np.bincount(hall.pdu_rack, weights=hall.pdu_power, minlength=len(hall.rack_names))
    n_r = len(hall.rack_names)
    temps = np.where(hall.lost, -np.inf, hall.temp)
    rack_max = np.full(n_r, -np.inf)
    np.maximum.at(rack_max, hall.gpu_rack, temps)
    rack_thr = np.bincount(hall.gpu_rack, weights=thermal, minlength=n_r)
    racks = [
        RackView(hall.rack_names[i], float(rack_power[i]), float(hall.rack_budget_w[i]), float(rack_max[i]), int(rack_thr[i]))
        for i in range(n_r)
    ]
    order = np.argsort(-temps, kind="stable")[:top]
    lost_idx = np.flatnonzero(hall.lost).tolist()
    hottest = [
        GpuView(hall.node_names[hall.gpu_node[i]], hall.gpu_index[i], float(hall.temp[i]), float(hall.power[i]),
                float(hall.sm_clock[i]), reasons(int(hall.mask[i])), False)
        for i in order.tolist() if i not in lost_idx
    ]
    hottest = [GpuView(hall.node_names[hall.gpu_node[i]], hall.gpu_index[i], float("nan"), 0.0, 0.0, "lost", True)
               for i in lost_idx] + hottest
    rep = hall.loop_reported
    loops = [
        LoopView(lp.name, float(rep[i, 0]), float(rep[i, 1]), float(rep[i, 2]), float(rep[i, 3]), float(rep[i, 7]),
                 float(rep[i, 8]), bool(hall.loop_leak[i]), bool(hall.loop_answering[i]))
        for i, lp in enumerate(hall.loop_cfgs)
    ]
    load = hall.phase_power / (hall.phase_volt * hall.phase_pf) / hall.phase_breaker_a
    return Overview(
        time_ns=hall.time_ns,
        t_s=hall.t_s,
        power_w=float(hall.pdu_power.sum()),
        budget_w=float(sum(hall.rack_budget_w)),
        racks=racks,
        hottest=hottest[:top],
        loops=loops,
        thermal_throttled=int(thermal.sum()),
        power_capped=int(((hall.mask & THROTTLE_BITS["throttle_sw_power_cap"]) != 0).sum()),
        lost=int(hall.lost.sum()),
        max_phase_load=float(load.max()) if load.size else 0.0,
        util_pct=float(hall.util[~hall.lost].mean()) if (~hall.lost).any() else 0.0,
    )
