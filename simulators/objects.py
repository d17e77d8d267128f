"""The hall's state objects (what the simulated NVML and SNMP devices read), refreshed from its physics.

``StateObjects.sync`` writes the arrays into the long-lived ``GpuState`` / ``PduState`` /
``LoopState`` objects; ``pull`` hands back what a device simulator or a test changed on them since
(a power limit set through NVML, ``answering`` or ``lost`` set by hand).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from dcim.simulators.physics import LOOP_FLOATS, PHASES
from dcim.simulators.state import GpuState, HallState, LoopState, OutletState, PduState, PhaseState

if TYPE_CHECKING:
    from dcim.simulators.physics import HallPhysics

_PCI_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB, 0x19, 0x2B, 0x3B, 0x5E, 0x9B, 0xAC, 0xBB, 0xDC)


class StateObjects:
    """The state objects of one hall and what was last written into them."""

    def __init__(self, hall: HallPhysics) -> None:
        self.gpus: list[GpuState] = []
        self.pdus: list[PduState] = []
        self.loops: list[LoopState] = []
        self.state = self._build(hall)
        self._synced_limit: list[float] = []
        self._synced_flags: dict[tuple[str, int], bool] = {}

    def _build(self, hall: HallPhysics) -> HallState:
        gpus: dict[tuple[str, int], GpuState] = {}
        for i in range(hall.n_gpus):
            node = hall.node_names[hall.gpu_node[i]]
            g = hall.gpu_index[i]
            spec = hall.gpu_specs[i]
            uid = uuid.uuid5(uuid.NAMESPACE_URL, f"dcim-sim/{hall.site.site}/{node}/{g}")
            obj = GpuState(
                node=node,
                index=g,
                uuid=f"GPU-{uid}",
                model=spec.name,
                serial=f"{1650000000000 + (uid.int % 10**12):013d}",
                pci_bus_id=f"00000000:{_PCI_BUSES[g % len(_PCI_BUSES)]:02X}:00.0",
                tdp_w=spec.tdp_w,
                power_limit_w=spec.tdp_w,
                power_limit_default_w=spec.tdp_w,
                temp_slowdown_c=spec.slowdown_temp_c,
                temp_shutdown_c=spec.shutdown_temp_c,
                temp_max_operating_c=spec.max_operating_temp_c,
                mem_temp_max_c=spec.mem_max_temp_c,
                memory_total_bytes=spec.memory_bytes,
                max_sm_clock_mhz=spec.max_sm_clock_mhz,
            )
            gpus[(node, g)] = obj
            self.gpus.append(obj)
        pdus: dict[tuple[str, str], PduState] = {}
        oi = 0
        for pi, (rack, name) in enumerate(hall.pdu_keys):
            cfg = hall.pdu_cfgs[pi]
            outlets = []
            for _ in range(cfg.outlets):
                node = hall.outlet_node[oi]
                outlets.append(OutletState(
                    number=hall.outlet_num[oi],
                    phase=PHASES[hall.outlet_phase[oi] % 3],
                    node=hall.node_names[node] if node >= 0 else None,
                ))
                oi += 1
            phases = [PhaseState(phase=PHASES[k], voltage_v=cfg.voltage_v, breaker_a=cfg.breaker_a) for k in range(cfg.phases)]
            obj = PduState(
                name=name, rack=rack, feed=cfg.feed, vendor=cfg.vendor, power_factor=cfg.power_factor,
                outlets=outlets, phases=phases,
            )
            pdus[(rack, name)] = obj
            self.pdus.append(obj)
        loops: dict[str, LoopState] = {}
        for lp in hall.loop_cfgs:
            obj = LoopState(
                name=lp.name, cdu=lp.cdu, racks=list(lp.racks), vendor=lp.vendor, setpoint_c=lp.setpoint_c,
                supply_temp_c=lp.setpoint_c, return_temp_c=lp.setpoint_c, flow_lpm=lp.nominal_flow_lpm,
                pump_speed_pct=lp.nominal_pump_pct, supply_pressure_kpa=lp.supply_pressure_kpa,
                return_pressure_kpa=lp.supply_pressure_kpa - lp.diff_pressure_kpa,
            )
            loops[lp.name] = obj
            self.loops.append(obj)
        return HallState(time_ns=hall.start_ns, gpus=gpus, pdus=pdus, loops=loops)

    def pull(self, hall: HallPhysics) -> None:
        """Pick up what a device simulator or a test changed on the objects since the last refresh.

        A power limit set through NVML sticks. ``answering`` of a PDU or loop and ``lost`` of a GPU
        set by hand override the scenario until set back to what the scenario says.
        """
        for i, o in enumerate(self.gpus):
            if o.power_limit_w != self._synced_limit[i]:
                hall.power_limit[i] = o.power_limit_w
            if o.lost != self._synced_flags[("gpu", i)]:
                hall.override("gpu", i, o.lost)
        for i, o in enumerate(self.pdus):
            if o.answering != self._synced_flags[("pdu", i)]:
                hall.override("pdu", i, o.answering)
        for i, o in enumerate(self.loops):
            if o.answering != self._synced_flags[("loop", i)]:
                hall.override("loop", i, o.answering)


    def sync(self, hall: HallPhysics) -> None:
        """Refresh every state object from the hall's arrays (and remember what was written, for ``pull``)."""
        st = self.state
        st.time_ns = hall.time_ns
        st.events = hall.take_events()
        by_name = {name: a.tolist() for name, a in hall.gpu_readings().items()}
        for name, col in by_name.items():  # a field at a time: one setattr per value, no indexing
            for o, v in zip(self.gpus, col):
                setattr(o, name, v)
        self._synced_limit = by_name["power_limit_w"]
        flags = self._synced_flags
        for i, v in enumerate(by_name["lost"]):
            flags[("gpu", i)] = v
        for i, v in enumerate(hall.pdu_answering.tolist()):
            flags[("pdu", i)] = v
        for i, v in enumerate(hall.loop_answering.tolist()):
            flags[("loop", i)] = v
        o_cur = (hall.outlet_power / (hall.phase_volt[hall.outlet_phase] * hall.outlet_pf)).tolist()
        o_pw = hall.outlet_power.tolist()
        o_en = hall.outlet_energy.tolist()
        ph_pw = hall.phase_power.tolist()
        ph_cur = hall.phase_current_a().tolist()
        ph_en = hall.phase_energy.tolist()
        ph_v = hall.phase_volt.tolist()
        oi = 0
        for pi, o in enumerate(self.pdus):
            for out in o.outlets:
                out.power_w = o_pw[oi]
                out.current_a = o_cur[oi]
                out.energy_j = o_en[oi]
                oi += 1
            for k, ph in enumerate(o.phases):
                s = pi * 3 + k
                ph.power_w = ph_pw[s]
                ph.current_a = ph_cur[s]
                ph.voltage_v = ph_v[s]
                ph.apparent_power_va = ph_v[s] * ph_cur[s]
                ph.energy_j = ph_en[s]
            o.power_w = float(hall.pdu_power[pi])
            o.apparent_power_va = float(hall.pdu_power[pi] / hall.pdu_pf[pi])
            o.peak_power_w = float(hall.pdu_peak[pi])
            o.energy_j = float(hall.pdu_energy[pi])
            o.temp_c = float(hall.env_temp[pi])
            o.humidity_pct = float(hall.env_hum[pi])
            o.answering = bool(hall.pdu_answering[pi])
        rep = hall.loop_reported.tolist()
        for li, o in enumerate(self.loops):
            r = dict(zip(LOOP_FLOATS, rep[li]))
            o.supply_temp_c = r["supply_temp_c"]
            o.return_temp_c = r["return_temp_c"]
            o.setpoint_c = r["setpoint_c"]
            o.flow_lpm = r["flow_lpm"]
            o.pump_speed_pct = r["pump_speed_pct"]
            o.supply_pressure_kpa = r["supply_pressure_kpa"]
            o.return_pressure_kpa = r["return_pressure_kpa"]
            o.heat_w = r["heat_w"]
            o.facility_supply_temp_c = r["facility_supply_temp_c"]
            o.leak = bool(hall.loop_leak[li])
            o.answering = bool(hall.loop_answering[li])
