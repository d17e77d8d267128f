"""What the GPU agent reads, declared as data: schema field, NVML source, unit conversion, /metrics name.

Two kinds of rows. ``FieldRead``: one value of the batched ``nvmlDeviceGetFieldValues`` call, whose
own ``nvmlReturn`` is checked per value. ``CallRead``: one NVML function whose result gives one or
more fields. ``static`` rows are read once per GPU (limits); ``mig_hidden`` rows are not available
while MIG mode is on and are then reported as hidden rather than asked.

A new field is a new row here (and in dcim.schema), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pynvml as nv

Extract = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class FieldRead:
    """One schema field from one NVML field id (``nvmlDeviceGetFieldValues``)."""

    field: str
    field_id: int
    source: str  # NVML name, for docs and logs
    unit: str  # NVML's unit, for docs
    scale: float = 1.0  # multiply NVML's value by this to get the schema unit
    type: str = "float"  # float | int | bool
    per_link: bool = False  # summed over NVLink links (scopeId = link)
    static: bool = False
    mig_hidden: bool = False


@dataclass(frozen=True, slots=True)
class CallRead:
    """One NVML function call giving one or more schema fields."""

    call: str
    args: tuple
    outputs: tuple[tuple[str, Extract], ...]
    source: str  # for docs
    unit: str
    static: bool = False
    mig_hidden: bool = False
    #: used instead when the driver lacks this function (FUNCTION_NOT_FOUND); fields it lacks are unsupported
    fallback: CallRead | None = None

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

#: The NVLink link count, read once, tells how many scopes the per-link throughput fields have.
NVLINK_LINK_COUNT_ID = nv.NVML_FI_DEV_NVLINK_LINK_COUNT

FIELD_READS: tuple[FieldRead, ...] = (
    FieldRead("mem_temp_c", nv.NVML_FI_DEV_MEMORY_TEMP, "NVML_FI_DEV_MEMORY_TEMP", "degC"),
    FieldRead("power_instant_w", nv.NVML_FI_DEV_POWER_INSTANT, "NVML_FI_DEV_POWER_INSTANT", "mW", 1e-3),
    FieldRead("energy_j", nv.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
              "mJ", 1e-3),
    FieldRead("violation_power_s", nv.NVML_FI_DEV_PERF_POLICY_POWER, "NVML_FI_DEV_PERF_POLICY_POWER", "ns", 1e-9),
    FieldRead("violation_thermal_s", nv.NVML_FI_DEV_PERF_POLICY_THERMAL, "NVML_FI_DEV_PERF_POLICY_THERMAL",
              "ns", 1e-9),
    FieldRead("ecc_sbe_volatile_total", nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, "NVML_FI_DEV_ECC_SBE_VOL_TOTAL", "1",
              type="int"),
    FieldRead("ecc_dbe_volatile_total", nv.NVML_FI_DEV_ECC_DBE_VOL_TOTAL, "NVML_FI_DEV_ECC_DBE_VOL_TOTAL", "1",
              type="int"),
    FieldRead("ecc_sbe_aggregate_total", nv.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, "NVML_FI_DEV_ECC_SBE_AGG_TOTAL", "1",
              type="int"),
    FieldRead("ecc_dbe_aggregate_total", nv.NVML_FI_DEV_ECC_DBE_AGG_TOTAL, "NVML_FI_DEV_ECC_DBE_AGG_TOTAL", "1",
              type="int"),
    FieldRead("retired_pages_sbe", nv.NVML_FI_DEV_RETIRED_SBE, "NVML_FI_DEV_RETIRED_SBE", "1", type="int"),
    FieldRead("retired_pages_dbe", nv.NVML_FI_DEV_RETIRED_DBE, "NVML_FI_DEV_RETIRED_DBE", "1", type="int"),
    FieldRead("retired_pages_pending", nv.NVML_FI_DEV_RETIRED_PENDING, "NVML_FI_DEV_RETIRED_PENDING", "1",
              type="bool"),
    FieldRead("remapped_rows_correctable", nv.NVML_FI_DEV_REMAPPED_COR, "NVML_FI_DEV_REMAPPED_COR", "1",
              type="int", mig_hidden=True),
    FieldRead("remapped_rows_uncorrectable", nv.NVML_FI_DEV_REMAPPED_UNC, "NVML_FI_DEV_REMAPPED_UNC", "1",
              type="int", mig_hidden=True),
    FieldRead("remapped_rows_pending", nv.NVML_FI_DEV_REMAPPED_PENDING, "NVML_FI_DEV_REMAPPED_PENDING", "1",
              type="bool", mig_hidden=True),
    FieldRead("remapped_rows_failure", nv.NVML_FI_DEV_REMAPPED_FAILURE, "NVML_FI_DEV_REMAPPED_FAILURE", "1",
              type="bool", mig_hidden=True),
    FieldRead("pcie_replay_total", nv.NVML_FI_DEV_PCIE_REPLAY_COUNTER, "NVML_FI_DEV_PCIE_REPLAY_COUNTER", "1",
              type="int"),
    FieldRead("nvlink_tx_bytes_total", nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
              "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX (per link, summed)", "KiB", 1024, type="int", per_link=True),
    FieldRead("nvlink_rx_bytes_total", nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX,
              "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX (per link, summed)", "KiB", 1024, type="int", per_link=True),
    FieldRead("nvlink_crc_flit_errors_total", nv.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
              "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "1", type="int"),
    FieldRead("nvlink_crc_data_errors_total", nv.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
              "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "1", type="int"),
    FieldRead("nvlink_replay_errors_total", nv.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
              "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "1", type="int"),
    FieldRead("nvlink_recovery_errors_total", nv.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
              "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "1", type="int"),
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
             "nvmlDeviceGetUtilizationRates (.gpu, .memory)", "%", mig_hidden=True),
    CallRead("nvmlDeviceGetEncoderUtilization", (), (("enc_util_pct", lambda r: float(r[0])),),
             "nvmlDeviceGetEncoderUtilization", "%", mig_hidden=True),
    CallRead("nvmlDeviceGetDecoderUtilization", (), (("dec_util_pct", lambda r: float(r[0])),),
             "nvmlDeviceGetDecoderUtilization", "%", mig_hidden=True),
    CallRead("nvmlDeviceGetMemoryInfo", (nv.nvmlMemory_v2,),
             (("mem_used_bytes", lambda m: int(m.used)), ("mem_free_bytes", lambda m: int(m.free)),
              ("mem_reserved_bytes", lambda m: int(m.reserved))),
             "nvmlDeviceGetMemoryInfo(version=nvmlMemory_v2) (.used, .free, .reserved)", "B",
             # drivers before the _v2 symbol: used and free only
             fallback=CallRead("nvmlDeviceGetMemoryInfo", (),
                               (("mem_used_bytes", lambda m: int(m.used)), ("mem_free_bytes", lambda m: int(m.free))),
                               "nvmlDeviceGetMemoryInfo (.used, .free)", "B")),
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

#: Fields the agent computes itself (XID waiter, lost state), not read per poll.
AGENT_FIELDS: tuple[str, ...] = ("xid_total", "xid_last", "xid_last_time_s", "lost")

MIG_HIDDEN: frozenset[str] = frozenset(
    [r.field for r in FIELD_READS if r.mig_hidden] + [f for c in CALL_READS if c.mig_hidden for f in c.fields]
)


def all_read_fields() -> list[str]:
    """Every schema field the table reads, in table order (field values first, then calls, then MIG)."""
    return [r.field for r in FIELD_READS] + [f for c in CALL_READS for f in c.fields] + list(MIG_MODE.fields)
