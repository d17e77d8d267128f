"""The data hall's physics: GPUs, PDUs and coolant loops advanced together in numpy arrays.

One entry per GPU, node, outlet, phase and loop; it knows nothing of how it is read out (the state
objects in ``objects``, the line protocol in ``emit``). Equations and parameters: docs/simulator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dcim.config import SiteConfig
from dcim.simulators import scenarios as sc
from dcim.simulators.throttle import GPU_IDLE, HW_SLOWDOWN, HW_THERMAL, SW_POWER_CAP, SW_THERMAL
from dcim.simulators.workload import CODE, Workloads

#: The fixed default start, 2026-01-01T00:00:00Z, so output is reproducible.
DEFAULT_START_NS = 1_767_225_600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Params:
    """Model constants (see docs/simulator.md); tests and what-if tools may pass their own."""

    dynamic_headroom: float = 1.10  # dynamic power at 100 % util = headroom x (TDP - idle): training hits the cap
    gpu_tau_s: float = 10.0  # die temperature time constant
    mem_tau_s: float = 30.0  # HBM temperature time constant
    util_tau_s: float = 2.0  # utilization follows its target this fast
    mem_offset_c: float = 2.0  # HBM sits a little above the die at the same coolant temperature
    mem_r_fraction: float = 0.8  # ... with a smaller share of the board power
    cold_plate_flow_exp: float = 0.5  # cold-plate resistance ~ (nominal flow / flow) ** exp
    gpu_coolant_position: float = 0.5  # a GPU sees supply + this fraction of the loop's rise
    node_liquid_fraction: float = 0.7  # share of a node's non-GPU power (CPUs, memory) that goes to liquid
    node_base_idle_fraction: float = 0.6  # node base power at idle, as a fraction of base_power_w
    supply_tau_s: float = 60.0  # CDU supply temperature follows setpoint (+drift) this fast
    return_tau_s: float = 5.0  # transport lag of the return temperature
    air_cooled_offset_c: float = 10.0  # without a loop, GPUs see ambient + this
    idle_clock_mhz: float = 345.0
    hw_slowdown_power_fraction: float = 0.5  # hardware slowdown halves the board power
    frequency_hz: float = 50.0
    nvlink_busy_fraction: float = 1 / 3  # a training job's all-reduce traffic at 100 % util, of the GPU's NVLink bandwidth
    near_overload_fraction: float = 0.8  # phase current / breaker: near_overload (NEC 80 % rule)
    overload_fraction: float = 0.95
    low_fraction: float = 0.05


PHASES = ("L1", "L2", "L3")

#: The columns of ``HallPhysics.loop_reported``: what a CDU reports, in this order.
LOOP_FLOATS = (
    "supply_temp_c", "return_temp_c", "setpoint_c", "flow_lpm", "supply_pressure_kpa", "return_pressure_kpa",
    "diff_pressure_kpa", "pump_speed_pct", "heat_w", "facility_supply_temp_c",
)



def _alpha(dt_s: float, tau_s: float) -> float:
    """Exact first-order step: the fraction of the gap closed in ``dt_s``."""
    return 1.0 - math.exp(-dt_s / tau_s) if tau_s > 0 else 1.0


class HallPhysics:
    """A deterministic, seeded model of a GPU hall: ``advance`` moves it on, its arrays are the readings."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        seed: int = 42,
        scenario: sc.Scenario | None = None,
        start_ns: int | None = None,
        params: Params | None = None,
    ) -> None:
        self.site = site
        self.seed = seed
        self.scenario = scenario
        self.p = params or Params()
        self.start_ns = DEFAULT_START_NS if start_ns is None else int(start_ns)
        self.t_s = 0.0  # simulated seconds since start
        self.rng = np.random.default_rng(seed)
        self.ambient_c = site.simulator.ambient_c
        if scenario is not None:
            scenario.check_site(site)
        self._build_topology()
        self._pending_events: list[tuple[int, str]] = []
        self._timeline = self._make_timeline()
        self._fired = 0
        self._stuck: dict[int, float] = {}
        #: (GPU, XID code) -> [count, unix time s of the last]; keys are only ever added
        self.xid_counts: dict[tuple[int, int], list] = {}
        self._new_xids: list[tuple[int, int, float]] = []
        self._overrides: dict[tuple[str, int], bool] = {}
        self._fire_events(0.0)
        self._physics(0.0, settle=True)

    # --- topology ----------------------------------------------------------------------------

    def _build_topology(self) -> None:
        site = self.site
        self.rack_names: list[str] = []
        self.rack_tags: list[dict[str, str]] = []
        gpu_rack, gpu_node, gpu_index, gpu_model = [], [], [], []
        self.node_names: list[str] = []
        node_rack, node_base, node_profile = [], [], []
        self.pdu_keys: list[tuple[str, str]] = []
        self.pdu_cfgs = []
        pdu_rack = []
        outlet_pdu, outlet_num, outlet_phase, outlet_node = [], [], [], []
        pair_node, pair_outlet = [], []
        over_outlet, over_share = [], []
        self.node_of_name: dict[str, int] = {}
        self.gpu_of: dict[tuple[str, int], int] = {}
        self.pdu_of: dict[tuple[str, str], int] = {}
        self.rack_of_name: dict[str, int] = {}
        self.rack_budget_w: list[float] = []
        self.rack_overhead_w: list[float] = []
        for ri, (_room, _row, rack) in enumerate(site.locations()):
            self.rack_names.append(rack.name)
            self.rack_of_name[rack.name] = ri
            self.rack_tags.append(site.rack_tags(rack.name))
            self.rack_budget_w.append(rack.budget_w)
            self.rack_overhead_w.append(rack.overhead_w)
            first_outlet = len(outlet_pdu)
            outlet_index: dict[tuple[str, int], int] = {}
            for pdu in rack.pdus:
                pi = len(self.pdu_keys)
                self.pdu_keys.append((rack.name, pdu.name))
                self.pdu_of[(rack.name, pdu.name)] = pi
                self.pdu_cfgs.append(pdu)
                pdu_rack.append(ri)
                for o in range(1, pdu.outlets + 1):
                    outlet_index[(pdu.name, o)] = len(outlet_pdu)
                    outlet_pdu.append(pi)
                    outlet_num.append(o)
                    outlet_phase.append(pi * 3 + PHASES.index(pdu.phase_of(o)))
                    outlet_node.append(-1)
            for node in rack.nodes:
                ni = len(self.node_names)
                self.node_names.append(node.name)
                self.node_of_name[node.name] = ni
                node_rack.append(ri)
                node_base.append(node.base_power_w)
                node_profile.append(CODE.get(node.workload, CODE["training"]))
                for pdu_name, outlets in node.outlets.items():
                    for o in outlets:
                        oi = outlet_index[(pdu_name, o)]
                        outlet_node[oi] = ni
                        pair_node.append(ni)
                        pair_outlet.append(oi)
                for g in range(node.gpus):
                    self.gpu_of[(node.name, g)] = len(gpu_rack)
                    gpu_rack.append(ri)
                    gpu_node.append(ni)
                    gpu_index.append(g)
                    gpu_model.append(node.gpu_model)
            # rack overhead (switches, fans): on one free outlet per phase of each PDU, split evenly
            slots = []
            for pdu in rack.pdus:
                for ph in PHASES[: pdu.phases]:
                    free = [
                        outlet_index[(pdu.name, o)]
                        for o in range(pdu.outlets, 0, -1)
                        if pdu.phase_of(o) == ph and outlet_node[outlet_index[(pdu.name, o)]] == -1
                    ]
                    if free:
                        slots.append(free[0])
            if not slots:
                slots = list(range(first_outlet, len(outlet_pdu)))
            for s in slots:
                over_outlet.append(s)
                over_share.append(rack.overhead_w / len(slots))

        self.n_gpus = len(gpu_rack)
        self.n_nodes = len(self.node_names)
        self.n_pdus = len(self.pdu_keys)
        self.n_outlets = len(outlet_pdu)
        self.gpu_rack = np.array(gpu_rack, dtype=np.int64)
        self.gpu_node = np.array(gpu_node, dtype=np.int64)
        self.gpu_index = gpu_index
        self.node_rack = np.array(node_rack, dtype=np.int64)
        self.node_base_w = np.array(node_base, dtype=float)
        self.node_profile = np.array(node_profile, dtype=np.int64)
        self.outlet_pdu = np.array(outlet_pdu, dtype=np.int64)
        self.outlet_num = outlet_num
        self.outlet_phase = np.array(outlet_phase, dtype=np.int64)
        self.outlet_node = outlet_node
        self.pair_node = np.array(pair_node, dtype=np.int64)
        self.pair_outlet = np.array(pair_outlet, dtype=np.int64)
        self.pair_pdu = self.outlet_pdu[self.pair_outlet] if len(pair_outlet) else np.zeros(0, dtype=np.int64)
        self.over_outlet = np.array(over_outlet, dtype=np.int64)
        self.over_w = np.array(over_share, dtype=float)
        self.pdu_rack = np.array(pdu_rack, dtype=np.int64)
        self.pdu_pf = np.array([p.power_factor for p in self.pdu_cfgs], dtype=float)
        # phases: 3 slots per PDU; single-phase PDUs use only L1
        self.phase_v = np.repeat([p.voltage_v for p in self.pdu_cfgs], 3).astype(float)
        self.phase_breaker_a = np.repeat([p.breaker_a for p in self.pdu_cfgs], 3).astype(float)
        self.phase_pf = np.repeat(self.pdu_pf, 3)
        self.phase_used = np.array(
            [k < p.phases for p in self.pdu_cfgs for k in range(3)], dtype=bool
        )
        self.outlet_pf = self.phase_pf[self.outlet_phase]

        # GPU model constants as arrays
        specs = [site.gpu_models[m] for m in gpu_model]
        self.gpu_specs = specs
        self.tdp_w = np.array([s.tdp_w for s in specs], dtype=float)
        self.idle_w = np.array([s.idle_w for s in specs], dtype=float)
        # cold plates and dies differ a little: +-5 % (1 sigma) thermal resistance, fixed per GPU
        spread = np.clip(1.0 + 0.05 * self.rng.standard_normal(len(specs)), 0.85, 1.15)
        self.r_c_per_w = np.array([s.thermal_resistance_c_per_w for s in specs], dtype=float) * spread
        self.maxop_c = np.array([s.max_operating_temp_c for s in specs], dtype=float)
        self.slowdown_c = np.array([s.slowdown_temp_c for s in specs], dtype=float)
        self.max_clock = np.array([s.max_sm_clock_mhz for s in specs], dtype=float)
        self.mem_clock = np.array([s.mem_clock_mhz for s in specs], dtype=float)
        self.mem_total = np.array([s.memory_bytes for s in specs], dtype=np.int64)
        self.nvlink_bps = np.array([s.nvlink_bytes_per_s for s in specs], dtype=float) * self.p.nvlink_busy_fraction
        self.dynamic_w = self.p.dynamic_headroom * (self.tdp_w - self.idle_w)

        # loops
        self.loop_cfgs = list(site.loops)
        self.n_loops = len(self.loop_cfgs)
        self.loop_of_name = {lp.name: i for i, lp in enumerate(self.loop_cfgs)}
        rack_loop = np.full(len(self.rack_names), -1, dtype=np.int64)
        for li, lp in enumerate(self.loop_cfgs):
            for r in lp.racks:
                rack_loop[self.rack_of_name[r]] = li
        self.rack_loop = rack_loop
        self.gpu_loop = rack_loop[self.gpu_rack]
        self.node_loop = rack_loop[self.node_rack]
        lc = self.loop_cfgs
        self.loop_nominal_flow = np.array([lp.nominal_flow_lpm for lp in lc], dtype=float)
        self.loop_nominal_pump = np.array([lp.nominal_pump_pct for lp in lc], dtype=float)
        self.loop_setpoint = np.array([lp.setpoint_c for lp in lc], dtype=float)
        self.loop_dp_nominal = np.array([lp.diff_pressure_kpa for lp in lc], dtype=float)
        self.loop_static_kpa = np.array([lp.supply_pressure_kpa - lp.diff_pressure_kpa for lp in lc], dtype=float)
        self.loop_cp = np.array([lp.fluid_cp_j_per_kg_k for lp in lc], dtype=float)
        self.loop_rho = np.array([lp.fluid_density_kg_per_l for lp in lc], dtype=float)

        # dynamic state arrays
        rng = self.rng
        n = self.n_gpus
        self.workloads = Workloads(n, self.gpu_rack, rng)
        self.util = np.zeros(n)
        self.power = self.idle_w.copy()
        self.power_limit = self.tdp_w.copy()
        self.temp = np.full(n, self.ambient_c)
        self.mem_temp = np.full(n, self.ambient_c)
        self.sm_clock = self.max_clock.copy()
        self.mask = np.zeros(n, dtype=np.int64)
        self.gpu_energy = rng.uniform(1e8, 5e8, n).round(0)  # since driver load, some days ago
        self.viol_power_s = np.zeros(n)
        self.viol_thermal_s = np.zeros(n)
        self.power_instant = self.power.copy()
        self.lost = np.zeros(n, dtype=bool)
        self.ecc_sbe = np.zeros(n, dtype=np.int64)
        self.ecc_dbe = np.zeros(n, dtype=np.int64)
        self.ecc_frac = np.zeros(n)
        self.nvlink_tx = np.zeros(n)  # bytes, all links; a training job's all-reduce traffic
        self.nvlink_rx = np.zeros(n)
        self.gpu_coolant_c = np.full(n, self.ambient_c + self.p.air_cooled_offset_c)
        self.r_eff = self.r_c_per_w.copy()
        self.node_power = self.node_base_w.copy()
        self.outlet_power = np.zeros(self.n_outlets)
        self.outlet_energy = rng.uniform(1e9, 5e9, self.n_outlets).round(0)
        self.outlet_on = np.ones(self.n_outlets, dtype=bool)
        self.phase_power = np.zeros(self.n_pdus * 3)
        self.phase_energy = np.bincount(self.outlet_phase, weights=self.outlet_energy, minlength=self.n_pdus * 3)
        self.phase_volt = self.phase_v.copy()
        self.pdu_power = np.zeros(self.n_pdus)
        self.pdu_energy = self.phase_energy.reshape(-1, 3).sum(axis=1)
        self.pdu_peak = np.zeros(self.n_pdus)
        self.pdu_live = np.ones(self.n_pdus, dtype=bool)
        self.pdu_answering = np.ones(self.n_pdus, dtype=bool)
        self.env_temp = np.full(self.n_pdus, self.ambient_c + 2.0)
        self.env_hum = np.full(self.n_pdus, 40.0)
        self.extra_outlet_w = np.zeros(self.n_outlets)
        nl = self.n_loops
        self.loop_pump = self.loop_nominal_pump.copy()
        self.loop_flow = self.loop_nominal_flow.copy()
        self.loop_supply = self.loop_setpoint.copy()
        self.loop_return = self.loop_setpoint + 8.0
        self.loop_heat = np.zeros(nl)
        self.loop_drift = np.zeros(nl)
        self.loop_leak = np.zeros(nl, dtype=bool)
        self.loop_leak_loss = np.zeros(nl)
        self.loop_answering = np.ones(nl, dtype=bool)
        self.loop_facility = self.loop_setpoint - 5.0  # facility water ~5 K below the secondary supply
        self.loop_reported = np.zeros((nl, len(LOOP_FLOATS)))

    # --- scenario --------------------------------------------------------------------------

    def _make_timeline(self) -> list[tuple[float, int, str, str]]:
        """(time_s, fault index, what, text) for every start, full strength, recovery start and end."""
        out = []
        if self.scenario is None:
            return out
        for i, f in enumerate(self.scenario.faults):
            label = f"{f.kind.replace('_', ' ')} ({f.target()})"
            note = f" - {f.note}" if f.note else ""
            out.append((f.at, i, "start", f"{label} begins{note}"))
            if f.ramp > 0:
                out.append((f.at + f.ramp, i, "full", f"{label} at full strength"))
            if f.until is not None:
                end = f.end_s()
                if end is not None and end > f.until:
                    out.append((f.until, i, "recover", f"{label} recovery begins"))
                    out.append((end, i, "end", f"{label} recovered"))
                else:
                    out.append((f.until, i, "end", f"{label} ends"))
        out.sort(key=lambda e: (e[0], e[1]))
        return out

    def _fire_events(self, t_s: float) -> None:
        while self._fired < len(self._timeline) and self._timeline[self._fired][0] <= t_s + 1e-9:
            at_s, i, what, text = self._timeline[self._fired]
            self._fired += 1
            t_ns = self.start_ns + round(at_s * 1e9)
            self._pending_events.append((t_ns, text))
            f = self.scenario.faults[i]
            if what == "start":
                if f.kind == "gpu_lost":
                    self._xid(self.gpu_of[(f.node, f.gpu)], 79, at_s)
                elif f.kind == "xid":
                    self._xid(self.gpu_of[(f.node, f.gpu)], f.code, at_s)
                elif f.kind == "ecc_errors" and f.dbe:
                    gi = self.gpu_of[(f.node, f.gpu)]
                    self.ecc_dbe[gi] += f.dbe
                    for _ in range(f.dbe):
                        self._xid(gi, 48, at_s)
                elif f.kind == "stuck_sensor":
                    li = self.loop_of_name[f.loop]
                    col = LOOP_FLOATS.index(f.sensor)
                    self._stuck[i] = float(self.loop_reported[li, col])

    def _xid(self, gi: int, code: int, at_s: float) -> None:
        t_unix = self.start_ns / 1e9 + at_s
        self._new_xids.append((gi, code, t_unix))
        entry = self.xid_counts.setdefault((gi, code), [0, 0.0])
        entry[0] += 1
        entry[1] = t_unix

    def _apply_faults(self, t_s: float, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fault effects for this step: returns (utilization target per GPU, flow fraction per loop)."""
        self.loop_drift[:] = 0.0
        self.loop_leak[:] = False
        self.loop_leak_loss[:] = 0.0
        self.loop_answering[:] = True
        self.pdu_answering[:] = True
        self.pdu_live[:] = True
        self.extra_outlet_w[:] = 0.0
        self.lost[:] = False
        self.loop_pump = self.loop_nominal_pump.copy()
        health = np.ones(self.n_loops)
        util_target = targets[self.node_profile[self.gpu_node], np.arange(self.n_gpus)]
        for f in self.scenario.faults if self.scenario is not None else ():
            s = f.strength(t_s)
            active = f.at <= t_s and (f.end_s() is None or t_s < f.end_s())
            k = f.kind
            if k == "workload":
                if s <= 0:
                    continue
                idx = self._workload_gpus(f)
                util_target[idx] = (1 - s) * util_target[idx] + s * targets[CODE[f.profile], idx]
            elif k == "pump_degradation":
                health[self.loop_of_name[f.loop]] *= 1.0 - s * (1.0 - f.flow_fraction)
            elif k == "pump_speed":
                li = self.loop_of_name[f.loop]
                self.loop_pump[li] += s * (f.pump_speed_pct - self.loop_pump[li])
            elif k == "setpoint_drift":
                self.loop_drift[self.loop_of_name[f.loop]] += s * f.delta_c
            elif k == "leak":
                if active:
                    li = self.loop_of_name[f.loop]
                    self.loop_leak[li] = t_s < (f.until if f.until is not None else math.inf)
                    self.loop_leak_loss[li] += s * f.pressure_loss_kpa
            elif k == "not_answering":
                if active and (f.until is None or t_s < f.until):
                    if f.loop is not None:
                        self.loop_answering[self.loop_of_name[f.loop]] = False
                    else:
                        self.pdu_answering[self.pdu_of[(f.rack, f.pdu)]] = False
            elif k == "feed_loss":
                if active and (f.until is None or t_s < f.until):
                    self.pdu_live[self.pdu_of[(f.rack, f.pdu)]] = False
            elif k == "extra_load":
                if s > 0:
                    pi = self.pdu_of[(f.rack, f.pdu)]
                    self.extra_outlet_w[self._phase_outlet(pi, f.phase)] += s * f.power_w
            elif k == "gpu_lost":
                if active and (f.until is None or t_s < f.until):
                    self.lost[self.gpu_of[(f.node, f.gpu)]] = True
            elif k == "ecc_errors":
                if active and f.sbe_per_min > 0:
                    gi = self.gpu_of[(f.node, f.gpu)]
                    self.ecc_frac[gi] += f.sbe_per_min * self._dt / 60.0
        self._apply_overrides()
        # a job on a node with a lost GPU crashes: its other GPUs go idle until the node is back
        if self.lost.any():
            crashed = np.isin(self.gpu_node, self.gpu_node[self.lost])
            util_target[crashed] = 0.0
        return util_target, health

    def _workload_gpus(self, f) -> np.ndarray:
        if f.node is not None:
            ni = self.node_of_name[f.node]
            if f.gpu is not None:
                return np.array([self.gpu_of[(f.node, f.gpu)]])
            return np.flatnonzero(self.gpu_node == ni)
        return np.flatnonzero(self.gpu_rack == self.rack_of_name[f.rack])

    def _phase_outlet(self, pi: int, phase: str) -> int:
        """The outlet an extra load plugs into: the last outlet of that phase (a free one if any)."""
        slot = pi * 3 + PHASES.index(phase)
        cand = np.flatnonzero(self.outlet_phase == slot)
        free = [c for c in cand if self.outlet_node[c] == -1]
        return int((free or list(cand))[-1])

    # --- physics ---------------------------------------------------------------------------

    def _physics(self, dt_s: float, *, settle: bool = False) -> None:
        p = self.p
        self._dt = dt_s
        rng = self.rng
        targets = self.workloads.targets(self.t_s, max(dt_s, 1e-9), rng)
        util_target, health = self._apply_faults(self.t_s, targets)
        noise = rng.standard_normal((4, self.n_gpus))
        loop_noise = rng.standard_normal((2, len(LOOP_FLOATS), self.n_loops))
        pdu_noise = rng.standard_normal((3, self.n_pdus))

        # GPUs: utilization, demanded power, limits
        a_util = 1.0 if settle else _alpha(dt_s, p.util_tau_s)
        self.util += a_util * (util_target - self.util)
        np.clip(self.util, 0.0, 100.0, out=self.util)
        lost = self.lost
        demand = self.idle_w + self.dynamic_w * self.util / 100.0
        power_capped = demand > self.power_limit
        power = np.minimum(demand, self.power_limit)
        thermal_cap = (self.maxop_c - self.gpu_coolant_c) / self.r_eff
        thermal = (self.temp >= self.maxop_c - 1.0) & (power > thermal_cap)
        power = np.where(thermal, np.maximum(self.idle_w, np.minimum(power, thermal_cap)), power)
        hw_slow = self.temp >= self.slowdown_c
        power = np.where(hw_slow, np.minimum(power, p.hw_slowdown_power_fraction * self.tdp_w), power)
        power = np.where(lost, 0.5 * self.idle_w, power)  # still powered, no longer measurable
        self.power = power
        self.power_instant = np.maximum(0.0, power * (1.0 + 0.03 * noise[0]))
        idle = self.util < 5.0
        # the power cap bit only while the power limit is what binds (not the thermal controller)
        mask = np.where(idle, GPU_IDLE, 0) | np.where(power_capped & ~idle & ~thermal & ~hw_slow, SW_POWER_CAP, 0)
        mask |= np.where(thermal, SW_THERMAL, 0) | np.where(hw_slow, HW_SLOWDOWN | HW_THERMAL, 0)
        self.mask = np.where(lost, 0, mask)
        dyn_ratio = np.clip((power - self.idle_w) / np.maximum(demand - self.idle_w, 1.0), 0.2, 1.0)
        clock = np.where(power < demand - 1e-6, self.max_clock * np.sqrt(dyn_ratio), self.max_clock)
        self.sm_clock = np.where(idle, p.idle_clock_mhz, clock)
        if not settle:
            self.gpu_energy += power * dt_s
            self.viol_power_s += np.where(power_capped & ~thermal & ~hw_slow & ~lost, dt_s, 0.0)
            self.viol_thermal_s += np.where((thermal | hw_slow) & ~lost, dt_s, 0.0)
            whole = np.floor(self.ecc_frac)
            self.ecc_sbe += whole.astype(np.int64)
            self.ecc_frac -= whole
            traffic = np.where(lost, 0.0, self.nvlink_bps * self.util / 100.0 * dt_s)
            self.nvlink_tx += traffic
            self.nvlink_rx += traffic

        # nodes -> outlets -> phases -> PDUs; a node's supplies share its load evenly across live feeds
        gpu_sum = np.bincount(self.gpu_node, weights=power, minlength=self.n_nodes)
        node_util = np.bincount(self.gpu_node, weights=self.util, minlength=self.n_nodes) / np.maximum(
            np.bincount(self.gpu_node, minlength=self.n_nodes), 1
        )
        base = self.node_base_w * (p.node_base_idle_fraction + (1 - p.node_base_idle_fraction) * node_util / 100.0)
        self.node_power = gpu_sum + base
        live_pair = self.pdu_live[self.pair_pdu]
        n_live = np.bincount(self.pair_node, weights=live_pair, minlength=self.n_nodes)
        share = np.where(live_pair, self.node_power[self.pair_node] / np.maximum(n_live[self.pair_node], 1), 0.0)
        outlet_w = np.bincount(self.pair_outlet, weights=share, minlength=self.n_outlets)
        over = self.over_w * self.pdu_live[self.outlet_pdu[self.over_outlet]]
        outlet_w += np.bincount(self.over_outlet, weights=over, minlength=self.n_outlets)
        outlet_w += self.extra_outlet_w * self.pdu_live[self.outlet_pdu]
        self.outlet_power = outlet_w
        self.phase_power = np.bincount(self.outlet_phase, weights=outlet_w, minlength=self.n_pdus * 3)
        self.pdu_power = self.phase_power.reshape(-1, 3).sum(axis=1)
        self.phase_volt = self.phase_v * (1.0 + 0.002 * np.repeat(pdu_noise[0], 3))
        self.env_temp = self.ambient_c + 2.0 + 0.1 * pdu_noise[1]
        self.env_hum = 40.0 + 0.5 * pdu_noise[2]
        if not settle:
            self.outlet_energy += outlet_w * dt_s
            self.phase_energy += self.phase_power * dt_s
            self.pdu_energy += self.pdu_power * dt_s
        self.pdu_peak = np.maximum(self.pdu_peak, self.pdu_power)

        # coolant loops: heat in from GPUs and most of each node, out through the CDU
        if self.n_loops:
            liquid = power + 0.0
            heat = np.zeros(self.n_loops)
            gl = self.gpu_loop >= 0
            heat += np.bincount(self.gpu_loop[gl], weights=liquid[gl], minlength=self.n_loops)
            nl = self.node_loop >= 0
            heat += np.bincount(self.node_loop[nl], weights=p.node_liquid_fraction * base[nl], minlength=self.n_loops)
            self.loop_heat = heat
            self.loop_flow = self.loop_nominal_flow * (self.loop_pump / self.loop_nominal_pump) * health
            flow = np.maximum(self.loop_flow, 0.01 * self.loop_nominal_flow)
            capacity_w_per_k = flow / 60.0 * self.loop_rho * self.loop_cp
            rise = heat / capacity_w_per_k
            a_sup = 1.0 if settle else _alpha(dt_s, p.supply_tau_s)
            a_ret = 1.0 if settle else _alpha(dt_s, p.return_tau_s)
            self.loop_supply += a_sup * (self.loop_setpoint + self.loop_drift - self.loop_supply)
            self.loop_return += a_ret * (self.loop_supply + rise - self.loop_return)
            dp = self.loop_dp_nominal * (self.loop_flow / self.loop_nominal_flow) ** 2
            ret_p = self.loop_static_kpa - self.loop_leak_loss
            phys = np.stack([
                self.loop_supply,
                self.loop_return,
                self.loop_setpoint,
                self.loop_flow,
                ret_p + dp,
                ret_p,
                dp,
                self.loop_pump,
                heat,
                self.loop_facility,
            ], axis=1)
            # sensors read with a little noise (never exactly constant: a stuck sensor is visible)
            sigma = np.array([0.05, 0.05, 0.0, 0.5, 0.5, 0.5, 0.3, 0.0, 0.0, 0.05])
            rep = phys + sigma[None, :] * loop_noise[0].T
            self._apply_sensor_faults(rep, loop_noise[1])
            # the CDU computes heat removed from its own (possibly wrong) flow meter and temperatures
            rep[:, 6] = rep[:, 4] - rep[:, 5]
            rep[:, 8] = rep[:, 3] / 60.0 * self.loop_rho * self.loop_cp * (rep[:, 1] - rep[:, 0])
            self.loop_reported = rep
            coolant = self.loop_supply + p.gpu_coolant_position * (self.loop_return - self.loop_supply)
            rel_flow = flow / self.loop_nominal_flow
            gpu_cool = np.where(gl, coolant[np.maximum(self.gpu_loop, 0)], self.ambient_c + p.air_cooled_offset_c)
            r_scale = np.where(gl, rel_flow[np.maximum(self.gpu_loop, 0)] ** -p.cold_plate_flow_exp, 1.0)
        else:
            gpu_cool = np.full(self.n_gpus, self.ambient_c + p.air_cooled_offset_c)
            r_scale = np.ones(self.n_gpus)
        self.gpu_coolant_c = gpu_cool
        self.r_eff = self.r_c_per_w * r_scale

        # GPU temperatures: first order toward coolant + R x P
        a_t = 1.0 if settle else _alpha(dt_s, p.gpu_tau_s)
        a_m = 1.0 if settle else _alpha(dt_s, p.mem_tau_s)
        self.temp += a_t * (gpu_cool + self.r_eff * power - self.temp)
        self.mem_temp += a_m * (gpu_cool + p.mem_r_fraction * self.r_eff * power + p.mem_offset_c - self.mem_temp)
        self._gpu_noise = noise

    def _apply_sensor_faults(self, rep: np.ndarray, loop_noise: np.ndarray) -> None:
        if self.scenario is None:
            return
        t = self.t_s
        for i, f in enumerate(self.scenario.faults):
            if f.kind not in ("stuck_sensor", "noisy_sensor"):
                continue
            end = f.end_s()
            if t < f.at or (end is not None and t >= end):
                continue
            li = self.loop_of_name[f.loop]
            col = LOOP_FLOATS.index(f.sensor)
            if f.kind == "stuck_sensor":
                if i not in self._stuck:
                    self._stuck[i] = float(rep[li, col])
                rep[li, col] = self._stuck[i]
            else:
                rep[li, col] += f.strength(t) * f.sigma * loop_noise[col, li]

    # --- public API ------------------------------------------------------------------------

    @property
    def time_ns(self) -> int:
        return self.start_ns + round(self.t_s * 1e9)

    def advance(self, dt_s: float = 1.0) -> None:
        """Move the model on by ``dt_s`` simulated seconds."""
        if dt_s <= 0:
            msg = f"dt_s must be positive, got {dt_s}"
            raise ValueError(msg)
        self.t_s += dt_s
        self._fire_events(self.t_s)
        self._physics(dt_s)

    def take_events(self) -> list[tuple[int, str]]:
        """Scenario events (time_ns, text) since the last call."""
        events = self._pending_events
        self._pending_events = []
        return events

    def take_xids(self) -> list[tuple[int, int, float]]:
        """XID errors (GPU, code, unix time s) raised since the last call, oldest first."""
        xids = self._new_xids
        self._new_xids = []
        return xids

    def override(self, kind: str, index: int, value: bool) -> None:
        """Hold a GPU ``lost`` or a PDU / loop ``answering`` (kind gpu, pdu, loop) at ``value``, whatever
        the scenario says, until the scenario says the same again."""
        if kind not in ("gpu", "pdu", "loop"):
            msg = f"override kind must be gpu, pdu or loop, got {kind!r}"
            raise ValueError(msg)
        self._overrides[(kind, index)] = value

    def _apply_overrides(self) -> None:
        arrays = {"gpu": self.lost, "pdu": self.pdu_answering, "loop": self.loop_answering}
        for key, value in list(self._overrides.items()):
            kind, i = key
            if arrays[kind][i] == value:
                del self._overrides[key]  # the scenario agrees again: hand back to it
            else:
                arrays[kind][i] = value

    def gpu_readings(self) -> dict[str, np.ndarray]:
        """The model's GPU readings under the names of their fields (dcim.gpu_fields), one entry per GPU:
        what the state objects are refreshed with and what the hall's ``gpu`` line writes."""
        util = self.util
        return {
            "temp_c": self.temp, "mem_temp_c": self.mem_temp, "power_w": self.power,
            "power_instant_w": self.power_instant, "energy_j": self.gpu_energy, "power_limit_w": self.power_limit,
            "sm_clock_mhz": self.sm_clock, "mem_clock_mhz": self.mem_clock, "util_pct": util,
            "mem_util_pct": self.mem_util_pct(), "violation_power_s": self.viol_power_s,
            "violation_thermal_s": self.viol_thermal_s, "mem_used_bytes": self.mem_used_bytes(),
            "processes": (util >= 5.0).astype(np.int64), "clock_event_mask": self.mask,
            # the driver is never reloaded: the aggregate ECC counts are the volatile ones
            "ecc_sbe_volatile_total": self.ecc_sbe, "ecc_dbe_volatile_total": self.ecc_dbe,
            "ecc_sbe_aggregate_total": self.ecc_sbe, "ecc_dbe_aggregate_total": self.ecc_dbe,
            "nvlink_tx_bytes_total": self.nvlink_tx.astype(np.int64),
            "nvlink_rx_bytes_total": self.nvlink_rx.astype(np.int64), "lost": self.lost,
        }

    def mem_util_pct(self) -> np.ndarray:
        """Memory-controller utilization per GPU (%)."""
        return np.clip(self.util * 0.45 + 2.0 * self._gpu_noise[1], 0.0, 100.0) * (self.util > 1.0)

    def mem_used_bytes(self) -> np.ndarray:
        """Framebuffer memory in use per GPU."""
        busy = self.util >= 5.0
        return np.where(busy, (self.mem_total * 0.85).astype(np.int64), 512 * 1024**2)

    def phase_current_a(self) -> np.ndarray:
        """Current per phase slot (3 per PDU): P / (V x power factor)."""
        return self.phase_power / (self.phase_volt * self.phase_pf)

    def load_state(self, current_a: np.ndarray, breaker_a: np.ndarray) -> list[str]:
        """The PDU's load state (low, normal, near_overload, overload) of each current against its breaker."""
        frac = current_a / breaker_a
        p = self.p
        states = np.where(
            frac >= p.overload_fraction, "overload",
            np.where(frac >= p.near_overload_fraction, "near_overload", np.where(frac < p.low_fraction, "low", "normal")),
        )
        return states.tolist()
