"""What the GPU agent reads, declared as data: schema field, NVML source, real value type, unit conversion.

Two kinds of rows. ``FieldRead``: one value of the batched ``nvmlDeviceGetFieldValues`` call, whose
own ``nvmlReturn`` and ``timestamp`` are checked per value and whose bits are decoded by the type
the value really has (``ctype``), not by the type NVML declares for it (see ``reader.decode_value``).
``CallRead``: one NVML function whose result gives one or more fields. ``static`` rows are read once
per GPU (limits); ``mig`` says what MIG hides: ``"mode"`` (NVML refuses while MIG mode is on) or
``"instances"`` (NVML refuses only while GPU instances exist).

Constants that older nvidia-ml-py releases lack are taken from NVML's header (nvml.h) by value,
so the agent imports on the lowest nvidia-ml-py that pyproject.toml allows.

A new field is a new row here (and in dcim.schema), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pynvml as nv

Extract = Callable[[Any], Any]
CType = Literal["u32", "u64", "s64", "f64"]
Mig = Literal["mode", "instances"] | None


def nvml_const(name: str, value: int) -> int:
    """``pynvml.<name>``, or its value from nvml.h when this nvidia-ml-py release predates it."""
    return getattr(nv, name, value)


#: nvml.h: NVML_VALUE_TYPE_UNSIGNED_SHORT (nvidia-ml-py 12.560 and later define it).
VALUE_TYPE_UNSIGNED_SHORT = nvml_const("NVML_VALUE_TYPE_UNSIGNED_SHORT", 6)
#: nvml.h: "NVLink throughput counters field values ... A scopeId of UINT_MAX returns aggregate
#: value summed up across all links for the specified counter type in fieldId."
SCOPE_ALL_LINKS = 0xFFFFFFFF
#: nvml.h: nvmlInitWithFlags flag "Don't fail nvmlInit() when no GPUs are found".
INIT_FLAG_NO_GPUS = nvml_const("NVML_INIT_FLAG_NO_GPUS", 1)


@dataclass(frozen=True, slots=True)
class FieldRead:
    """One schema field from one NVML field id (``nvmlDeviceGetFieldValues``)."""

    field: str
    field_id: int
    source: str  # NVML name, for docs and logs
    unit: str  # NVML's unit, for docs
    ctype: CType  # the C type the value really has (nvml.h), whatever valueType says
    scale: float = 1.0  # multiply NVML's value by this to get the schema unit
    type: str = "float"  # schema type: float | int | bool
    links: bool = False  # an NVLink counter: read summed over links (scope UINT_MAX), else per link
    static: bool = False
    mig: Mig = None
    #: read instead when this id is unsupported on the GPU (e.g. Blackwell's NVLink5 counters)
    fallback: FieldRead | None = None


@dataclass(frozen=True, slots=True)
class CallRead:
    """One NVML function call giving one or more schema fields."""

    call: str
    args: tuple
    outputs: tuple[tuple[str, Extract], ...]
    source: str  # for docs
    unit: str
    static: bool = False
    mig: Mig = None
    #: used instead when the driver or the binding lacks this function; fields it lacks are unsupported
    fallback: CallRead | None = None
    #: said once in the log when the fallback is taken (what changes for the reader)
    fallback_note: str = ""

    @property
    def key(self) -> str:
        return f"{self.call}{self.args!r}" if self.args else self.call

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.outputs)


def _mw(v: Any) -> float:
    return int(v) / 1000.0


def _bit(mask: int) -> Extract:
    return lambda v: bool(int(v) & mask)


#: Clock-event (throttle) reason bits -> schema field (NVML nvmlClocksEventReason*).
CLOCK_EVENT_BITS: tuple[tuple[str, int], ...] = (
    ("throttle_gpu_idle", nv.nvmlClocksEventReasonGpuIdle),
    ("throttle_clocks_setting", nv.nvmlClocksEventReasonApplicationsClocksSetting),
    ("throttle_sw_power_cap", nv.nvmlClocksEventReasonSwPowerCap),
    ("throttle_hw_slowdown", nv.nvmlClocksEventReasonHwSlowdown),
    ("throttle_sync_boost", nv.nvmlClocksEventReasonSyncBoost),
    ("throttle_sw_thermal", nv.nvmlClocksEventReasonSwThermalSlowdown),
    ("throttle_hw_thermal", nv.nvmlClocksEventReasonHwThermalSlowdown),
    ("throttle_hw_power_brake", nv.nvmlClocksEventReasonHwPowerBrakeSlowdown),
    ("throttle_display_clocks", nv.nvmlClocksEventReasonDisplayClockSetting),
)

_CLOCK_EVENT_OUTPUTS = (("clock_event_mask", int), *((name, _bit(bit)) for name, bit in CLOCK_EVENT_BITS))

#: The NVLink link count, read only when a summed NVLink read must fall back to one read per link.
NVLINK_LINK_COUNT_ID = nv.NVML_FI_DEV_NVLINK_LINK_COUNT

#: NVLink5 (Blackwell) counters, nvml.h field ids 201-222. Left out: 205 and 216-218 ("Deprecated,
#: do not use") and the BER values 220 and 222, which nvml.h packs as mantissa/exponent.
_NVLINK5: tuple[tuple[str, str, int], ...] = (
    ("nvlink_tx_packets_total", "NVML_FI_DEV_NVLINK_COUNT_XMIT_PACKETS", 201),
    ("nvlink_rx_packets_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_PACKETS", 203),
    ("nvlink_malformed_packet_errors_total", "NVML_FI_DEV_NVLINK_COUNT_MALFORMED_PACKET_ERRORS", 206),
    ("nvlink_buffer_overrun_errors_total", "NVML_FI_DEV_NVLINK_COUNT_BUFFER_OVERRUN_ERRORS", 207),
    ("nvlink_rx_errors_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_ERRORS", 208),
    ("nvlink_rx_remote_errors_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_REMOTE_ERRORS", 209),
    ("nvlink_rx_general_errors_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_GENERAL_ERRORS", 210),
    ("nvlink_local_link_integrity_errors_total", "NVML_FI_DEV_NVLINK_COUNT_LOCAL_LINK_INTEGRITY_ERRORS", 211),
    ("nvlink_tx_discards_total", "NVML_FI_DEV_NVLINK_COUNT_XMIT_DISCARDS", 212),
    ("nvlink_link_recovery_successful_total", "NVML_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_SUCCESSFUL_EVENTS", 213),
    ("nvlink_link_recovery_failed_total", "NVML_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_FAILED_EVENTS", 214),
    ("nvlink_link_recovery_events_total", "NVML_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_EVENTS", 215),
    ("nvlink_effective_errors_total", "NVML_FI_DEV_NVLINK_COUNT_EFFECTIVE_ERRORS", 219),
    ("nvlink_symbol_errors_total", "NVML_FI_DEV_NVLINK_COUNT_SYMBOL_ERRORS", 221),
)
NVLINK5_IDS: dict[str, int] = {name: nvml_const(name, fid) for _, name, fid in _NVLINK5}
_XMIT_BYTES = nvml_const("NVML_FI_DEV_NVLINK_COUNT_XMIT_BYTES", 202)
_RCV_BYTES = nvml_const("NVML_FI_DEV_NVLINK_COUNT_RCV_BYTES", 204)


def _fr(field: str, name: str, unit: str, ctype: CType, scale: float = 1.0, type: str = "float",
        **kw: Any) -> FieldRead:
    return FieldRead(field, getattr(nv, name), name, unit, ctype, scale, type, **kw)


# Real types from nvml.h's field documentation and the structs the same values come from in the
# direct calls (temperatures unsigned int, counters unsigned long long). DCGM carries the same
# knowledge as workarounds: NVML_FI_DEV_MEMORY_TEMP is labelled double while its bits are an
# integer (NVIDIA nvbug 4300930), ECC counters carry a wrong valueType (nvbug 2032468), and values
# NVML did not fill are left with timestamp 0 (NVIDIA/DCGM dcgmlib/src/DcgmCacheManager.cpp).
FIELD_READS: tuple[FieldRead, ...] = (
    _fr("mem_temp_c", "NVML_FI_DEV_MEMORY_TEMP", "degC", "u32"),
    _fr("power_instant_w", "NVML_FI_DEV_POWER_INSTANT", "mW", "u32", 1e-3),
    _fr("energy_j", "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "mJ", "u64", 1e-3),
    _fr("violation_power_s", "NVML_FI_DEV_PERF_POLICY_POWER", "ns", "u64", 1e-9),
    _fr("violation_thermal_s", "NVML_FI_DEV_PERF_POLICY_THERMAL", "ns", "u64", 1e-9),
    _fr("ecc_sbe_volatile_total", "NVML_FI_DEV_ECC_SBE_VOL_TOTAL", "1", "u64", type="int"),
    _fr("ecc_dbe_volatile_total", "NVML_FI_DEV_ECC_DBE_VOL_TOTAL", "1", "u64", type="int"),
    _fr("ecc_sbe_aggregate_total", "NVML_FI_DEV_ECC_SBE_AGG_TOTAL", "1", "u64", type="int"),
    _fr("ecc_dbe_aggregate_total", "NVML_FI_DEV_ECC_DBE_AGG_TOTAL", "1", "u64", type="int"),
    _fr("retired_pages_sbe", "NVML_FI_DEV_RETIRED_SBE", "1", "u64", type="int"),
    _fr("retired_pages_dbe", "NVML_FI_DEV_RETIRED_DBE", "1", "u64", type="int"),
    _fr("retired_pages_pending", "NVML_FI_DEV_RETIRED_PENDING", "1", "u32", type="bool"),
    _fr("remapped_rows_correctable", "NVML_FI_DEV_REMAPPED_COR", "1", "u32", type="int", mig="instances"),
    _fr("remapped_rows_uncorrectable", "NVML_FI_DEV_REMAPPED_UNC", "1", "u32", type="int", mig="instances"),
    _fr("remapped_rows_pending", "NVML_FI_DEV_REMAPPED_PENDING", "1", "u32", type="bool", mig="instances"),
    _fr("remapped_rows_failure", "NVML_FI_DEV_REMAPPED_FAILURE", "1", "u32", type="bool", mig="instances"),
    _fr("pcie_replay_total", "NVML_FI_DEV_PCIE_REPLAY_COUNTER", "1", "u64", type="int"),
    _fr("nvlink_tx_bytes_total", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX", "KiB", "u64", 1024, "int", links=True,
        fallback=FieldRead("nvlink_tx_bytes_total", _XMIT_BYTES, "NVML_FI_DEV_NVLINK_COUNT_XMIT_BYTES", "B", "u64",
                           1, "int", links=True)),
    _fr("nvlink_rx_bytes_total", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX", "KiB", "u64", 1024, "int", links=True,
        fallback=FieldRead("nvlink_rx_bytes_total", _RCV_BYTES, "NVML_FI_DEV_NVLINK_COUNT_RCV_BYTES", "B", "u64",
                           1, "int", links=True)),
    _fr("nvlink_crc_flit_errors_total", "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "1", "u64", type="int"),
    _fr("nvlink_crc_data_errors_total", "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "1", "u64", type="int"),
    _fr("nvlink_replay_errors_total", "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "1", "u64", type="int"),
    _fr("nvlink_recovery_errors_total", "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "1", "u64", type="int"),
    *(FieldRead(field, NVLINK5_IDS[name], name, "1", "u64", 1, "int", links=True) for field, name, _ in _NVLINK5),
)

CALL_READS: tuple[CallRead, ...] = (
    CallRead("nvmlDeviceGetTemperature", (nv.NVML_TEMPERATURE_GPU,), (("temp_c", float),),
             "nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)", "degC",
             # deprecated in NVML 13: a driver that drops it still answers the versioned call
             fallback=CallRead("nvmlDeviceGetTemperatureV", (nv.NVML_TEMPERATURE_GPU,), (("temp_c", float),),
                               "nvmlDeviceGetTemperatureV(NVML_TEMPERATURE_GPU)", "degC")),
    CallRead("nvmlDeviceGetPowerUsage", (), (("power_w", _mw),), "nvmlDeviceGetPowerUsage", "mW"),
    CallRead("nvmlDeviceGetEnforcedPowerLimit", (), (("power_limit_w", _mw),),
             "nvmlDeviceGetEnforcedPowerLimit", "mW"),
    CallRead("nvmlDeviceGetPowerManagementDefaultLimit", (), (("power_limit_default_w", _mw),),
             "nvmlDeviceGetPowerManagementDefaultLimit", "mW", static=True),
    CallRead("nvmlDeviceGetClockInfo", (nv.NVML_CLOCK_SM,), (("sm_clock_mhz", float),),
             "nvmlDeviceGetClockInfo(NVML_CLOCK_SM)", "MHz"),
    CallRead("nvmlDeviceGetClockInfo", (nv.NVML_CLOCK_MEM,), (("mem_clock_mhz", float),),
             "nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)", "MHz"),
    CallRead("nvmlDeviceGetUtilizationRates", (),
             (("util_pct", lambda u: float(u.gpu)), ("mem_util_pct", lambda u: float(u.memory))),
             "nvmlDeviceGetUtilizationRates (.gpu, .memory)", "%", mig="mode"),
    CallRead("nvmlDeviceGetEncoderUtilization", (), (("enc_util_pct", lambda r: float(r[0])),),
             "nvmlDeviceGetEncoderUtilization", "%", mig="mode"),
    CallRead("nvmlDeviceGetDecoderUtilization", (), (("dec_util_pct", lambda r: float(r[0])),),
             "nvmlDeviceGetDecoderUtilization", "%", mig="mode"),
    CallRead("nvmlDeviceGetMemoryInfo", (nv.nvmlMemory_v2,),
             (("mem_used_bytes", lambda m: int(m.used)), ("mem_free_bytes", lambda m: int(m.free)),
              ("mem_reserved_bytes", lambda m: int(m.reserved)), ("mem_info_version", lambda m: 2)),
             "nvmlDeviceGetMemoryInfo(version=nvmlMemory_v2) (.used, .free, .reserved)", "B",
             fallback=CallRead("nvmlDeviceGetMemoryInfo", (),
                               (("mem_used_bytes", lambda m: int(m.used)), ("mem_free_bytes", lambda m: int(m.free)),
                                ("mem_info_version", lambda m: 1)),
                               "nvmlDeviceGetMemoryInfo (.used, .free)", "B"),
             # nvml.h nvmlMemory_v2_t: "used ... = total - free - reserved"; v1 has no reserved, so
             # its used counts the driver's reservation: the values differ, and mem_info_version says so
             fallback_note="mem_used_bytes now counts memory reserved by the driver (mem_info_version=1)"),
    CallRead("nvmlDeviceGetComputeRunningProcesses", (), (("processes", len),),
             "nvmlDeviceGetComputeRunningProcesses (count)", "1"),
    CallRead("nvmlDeviceGetCurrentClocksEventReasons", (), _CLOCK_EVENT_OUTPUTS,
             "nvmlDeviceGetCurrentClocksEventReasons (mask, one bool per bit)", "bitmask",
             # drivers before r535 only have the older name of the same call
             fallback=CallRead("nvmlDeviceGetCurrentClocksThrottleReasons", (), _CLOCK_EVENT_OUTPUTS,
                               "nvmlDeviceGetCurrentClocksThrottleReasons", "bitmask")),
    CallRead("nvmlDeviceGetFanSpeed", (), (("fan_pct", float),), "nvmlDeviceGetFanSpeed", "%"),
    CallRead("nvmlDeviceGetPerformanceState", (), (("pstate", int),), "nvmlDeviceGetPerformanceState", "P-state"),
    CallRead("nvmlDeviceGetTemperatureThreshold", (nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,),
             (("temp_slowdown_c", float),), "nvmlDeviceGetTemperatureThreshold(SLOWDOWN)", "degC", static=True),
    CallRead("nvmlDeviceGetTemperatureThreshold", (nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,),
             (("temp_shutdown_c", float),), "nvmlDeviceGetTemperatureThreshold(SHUTDOWN)", "degC", static=True),
    CallRead("nvmlDeviceGetTemperatureThreshold", (nv.NVML_TEMPERATURE_THRESHOLD_GPU_MAX,),
             (("temp_max_operating_c", float),), "nvmlDeviceGetTemperatureThreshold(GPU_MAX)", "degC",
             static=True),
    CallRead("nvmlDeviceGetTemperatureThreshold", (nv.NVML_TEMPERATURE_THRESHOLD_MEM_MAX,),
             (("mem_temp_max_c", float),), "nvmlDeviceGetTemperatureThreshold(MEM_MAX)", "degC", static=True),
)

#: MIG mode is read first on every poll: it decides which rows are asked.
MIG_MODE = CallRead("nvmlDeviceGetMigMode", (), (("mig_mode", lambda r: int(r[0]) == nv.NVML_DEVICE_MIG_ENABLE),),
                    "nvmlDeviceGetMigMode (current)", "bool")


@dataclass(frozen=True, slots=True)
class GpmRead:
    """One GPU Performance Monitoring metric (``nvmlGpmMetricsGet``, Hopper and later)."""

    field: str
    metric_id: int
    source: str
    unit: str
    scale: float  # NVML's value -> schema unit


_MIB = 1024 * 1024

#: nvml.h NVML_GPM_METRIC_*; dcgm-exporter's names for the same quantities are in metrics.PROF.
GPM_READS: tuple[GpmRead, ...] = (
    GpmRead("gr_engine_active_pct", nv.NVML_GPM_METRIC_GRAPHICS_UTIL, "NVML_GPM_METRIC_GRAPHICS_UTIL", "%", 1),
    GpmRead("sm_active_pct", nv.NVML_GPM_METRIC_SM_UTIL, "NVML_GPM_METRIC_SM_UTIL", "%", 1),
    GpmRead("sm_occupancy_pct", nv.NVML_GPM_METRIC_SM_OCCUPANCY, "NVML_GPM_METRIC_SM_OCCUPANCY", "%", 1),
    GpmRead("tensor_active_pct", nv.NVML_GPM_METRIC_ANY_TENSOR_UTIL, "NVML_GPM_METRIC_ANY_TENSOR_UTIL", "%", 1),
    GpmRead("dram_active_pct", nv.NVML_GPM_METRIC_DRAM_BW_UTIL, "NVML_GPM_METRIC_DRAM_BW_UTIL", "%", 1),
    GpmRead("pcie_tx_bytes_per_s", nv.NVML_GPM_METRIC_PCIE_TX_PER_SEC, "NVML_GPM_METRIC_PCIE_TX_PER_SEC", "MiB/s",
            _MIB),
    GpmRead("pcie_rx_bytes_per_s", nv.NVML_GPM_METRIC_PCIE_RX_PER_SEC, "NVML_GPM_METRIC_PCIE_RX_PER_SEC", "MiB/s",
            _MIB),
    GpmRead("nvlink_tx_bytes_per_s", nv.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC,
            "NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC", "MiB/s", _MIB),
    GpmRead("nvlink_rx_bytes_per_s", nv.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC,
            "NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC", "MiB/s", _MIB),
)

#: Fields the agent computes itself (XID waiter, lost state, the activity KPI), not read per poll.
AGENT_FIELDS: tuple[str, ...] = ("xid_total", "xid_last", "xid_last_time_s", "lost", "activity_pct",
                                 "activity_source")

def all_read_fields() -> list[str]:
    """Every schema field the table reads, in table order (field values, calls, MIG, GPM)."""
    fields = [r.field for r in FIELD_READS] + [f for c in CALL_READS for f in c.fields] + list(MIG_MODE.fields)
    return list(dict.fromkeys(fields)) + [g.field for g in GPM_READS]
