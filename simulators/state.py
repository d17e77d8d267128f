"""The simulated hall's state at one instant: what the simulated devices (NVML, SNMP, MQTT) serve.

The hall (``dcim.simulators.hall``) refreshes these long-lived objects from its physics after each
step (``dcim.simulators.objects``); the simulated NVML backend and SNMP agents read them through the same interfaces real hardware uses. Units are SI
(W, J, °C, A, V, L/min, kPa) unless a name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class GpuState:
    """One simulated GPU: identity and limits, then its readings, each named as its field in
    ``dcim.gpu_fields`` and in that field's unit (the simulated NVML converts to NVML's units)."""

    node: str
    index: int
    uuid: str
    model: str  # marketing name, as nvmlDeviceGetName returns
    serial: str
    pci_bus_id: str
    # limits (read once by agents)
    tdp_w: float
    power_limit_w: float
    power_limit_default_w: float
    temp_slowdown_c: float
    temp_shutdown_c: float
    temp_max_operating_c: float
    mem_temp_max_c: float
    memory_total_bytes: int
    max_sm_clock_mhz: float
    # live values
    util_pct: float = 0.0
    mem_util_pct: float = 0.0
    enc_util_pct: float = 0.0
    dec_util_pct: float = 0.0
    power_w: float = 0.0
    power_instant_w: float = 0.0
    energy_j: float = 0.0
    temp_c: float = 30.0
    mem_temp_c: float = 32.0
    sm_clock_mhz: float = 0.0
    mem_clock_mhz: float = 0.0
    mem_used_bytes: int = 0
    mem_reserved_bytes: int = 0
    processes: int = 0
    clock_event_mask: int = 0
    violation_power_s: float = 0.0
    violation_thermal_s: float = 0.0
    ecc_sbe_volatile_total: int = 0
    ecc_dbe_volatile_total: int = 0
    ecc_sbe_aggregate_total: int = 0
    ecc_dbe_aggregate_total: int = 0
    retired_pages_sbe: int = 0
    retired_pages_dbe: int = 0
    retired_pages_pending: bool = False
    remapped_rows_correctable: int = 0
    remapped_rows_uncorrectable: int = 0
    remapped_rows_pending: bool = False
    remapped_rows_failure: bool = False
    pcie_replay_total: int = 0
    nvlink_tx_bytes_total: int = 0
    nvlink_rx_bytes_total: int = 0
    nvlink_crc_flit_errors_total: int = 0
    nvlink_crc_data_errors_total: int = 0
    nvlink_replay_errors_total: int = 0
    nvlink_recovery_errors_total: int = 0
    pstate: int = 0
    fan_pct: float | None = None  # None: liquid-cooled, NVML answers NOT_SUPPORTED
    mig_mode: bool = False
    lost: bool = False  # fell off the bus: every NVML call answers GPU_IS_LOST
    #: XID events not yet delivered to an NVML event set: (code, unix time s)
    xid_events: list[tuple[int, float]] = field(default_factory=list)
    #: NVML field names this GPU answers NOT_SUPPORTED for (e.g. {"power_instant_w"})
    unsupported: set[str] = field(default_factory=set)


@dataclass(slots=True)
class OutletState:
    number: int
    phase: str
    node: str | None  # the node plugged in, if any
    current_a: float = 0.0
    power_w: float = 0.0
    energy_j: float = 0.0
    on: bool = True


@dataclass(slots=True)
class PhaseState:
    phase: str
    voltage_v: float
    breaker_a: float
    current_a: float = 0.0
    power_w: float = 0.0
    apparent_power_va: float = 0.0
    energy_j: float = 0.0


@dataclass(slots=True)
class PduState:
    name: str
    rack: str
    feed: str
    vendor: str
    power_factor: float
    outlets: list[OutletState]
    phases: list[PhaseState]
    power_w: float = 0.0
    apparent_power_va: float = 0.0
    peak_power_w: float = 0.0
    energy_j: float = 0.0
    temp_c: float = 25.0  # inlet-air probe
    humidity_pct: float = 40.0
    answering: bool = True  # False: the device stops answering SNMP


@dataclass(slots=True)
class LoopState:
    name: str
    cdu: str
    racks: list[str]
    vendor: str
    setpoint_c: float
    supply_temp_c: float
    return_temp_c: float
    flow_lpm: float
    pump_speed_pct: float
    supply_pressure_kpa: float
    return_pressure_kpa: float
    heat_w: float = 0.0
    facility_supply_temp_c: float = 18.0
    leak: bool = False
    answering: bool = True


@dataclass(slots=True)
class HallState:
    """Everything at time ``time_ns``; dict keys are device names (GPU key: (node, index))."""

    time_ns: int
    gpus: dict[tuple[str, int], GpuState]
    pdus: dict[tuple[str, str], PduState]  # (rack, pdu name)
    loops: dict[str, LoopState]
    #: scenario events that happened since the previous step, newest last: (time_ns, text)
    events: list[tuple[int, str]] = field(default_factory=list)
