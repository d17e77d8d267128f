"""Every GPU field as one row: its schema entry, how the agent reads it from NVML, its /metrics name,
and whether the simulated GPU holds it.

``dcim.schema.GPU`` is built from these rows, the GPU agent's read plan (``agents/gpu/fields.py``)
and its dcgm-style ``/metrics`` names (``agents/gpu/metrics.py``) likewise, and the simulated NVML
(``simulators/nvml.py``) serves every ``FieldId`` row (but the NVLink counters, derived per link)
and every temperature threshold from the ``GpuState`` attribute of the same name. A new GPU field is a new row here; a test holds the four uses to the table.

NVML names are kept as text with their nvml.h values (NVIDIA nvml.h, NVML_API_VERSION 13), so this
core module needs no NVML binding and the agent runs on nvidia-ml-py releases that predate a name.
/metrics names, types and help follow dcgm-exporter's etc/default-counters.csv and DCGM's field
names (NVIDIA/dcgm-exporter, NVIDIA/DCGM dcgm_fields.h); fields dcgm-exporter lacks get snake_case
``dcim_gpu_*`` names in base units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from dcim.schema import FieldKind, FieldType

CType = Literal["u32", "u64", "s64", "f64"]
#: What MIG hides: "mode" (NVML refuses while MIG mode is on) or "instances" (only while GPU
#: instances exist).
Mig = Literal["mode", "instances"] | None


@dataclass(frozen=True, slots=True)
class FieldId:
    """One value of the batched ``nvmlDeviceGetFieldValues`` call."""

    name: str  # NVML_FI_* (nvml.h)
    id: int  # its value in nvml.h, used where the installed nvidia-ml-py lacks the name
    ctype: CType  # the C type the value really has (nvml.h), whatever valueType says
    unit: str  # NVML's unit
    scale: float = 1.0  # NVML's value x scale = the schema unit
    links: bool = False  # an NVLink counter: summed over links (scope UINT_MAX), else read link by link
    mig: Mig = None
    #: read instead when this id is unsupported on the GPU (e.g. Blackwell's NVLink5 counters)
    fallback: FieldId | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """A value from one NVML function; rows naming the same call and args share one call per poll."""

    call: str  # nvidia-ml-py function
    args: tuple[str, ...] = ()  # nvml.h constants passed after the handle, by name
    #: what of the result: "" the result, ".x" its attribute, "[i]" its item, "len" its length,
    #: "&0x4" one bit of it, "=2" a constant (which variant of the call answered)
    take: str = ""
    unit: str = ""  # NVML's unit
    scale: float = 1.0
    static: bool = False  # read once per GPU (limits)
    mig: Mig = None
    #: used instead when the driver or the binding lacks this function; a row without one is unsupported then
    fallback: Call | None = None
    #: said once in the log when the fallback is taken (what changes for the reader)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Gpm:
    """One GPU Performance Monitoring metric (``nvmlGpmMetricsGet``, Hopper and later)."""

    name: str  # NVML_GPM_METRIC_*
    unit: str
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class Agent:
    """A value the agent works out itself (XID waiter, lost state, the activity KPI)."""

    how: str


@dataclass(frozen=True, slots=True)
class Metric:
    """The field on the agent's /metrics: ``DCGM_FI_*`` (dcgm-exporter's) or ``dcim_gpu_*`` (ours)."""

    name: str
    factor: float  # schema unit -> /metrics unit
    type: Literal["gauge", "counter"]
    help: str
    #: one more label (name, value) for fields that share a family, e.g. ("reason", "gpu_idle")
    label: tuple[str, str] | None = None

    @property
    def dcgm(self) -> bool:
        return self.name.startswith("DCGM_")


@dataclass(frozen=True, slots=True)
class GpuField:
    """One GPU field: schema entry, NVML read, /metrics name, simulated value."""

    name: str
    type: FieldType
    unit: str
    description: str
    kind: FieldKind
    read: FieldId | Call | Gpm | Agent
    metric: Metric | None  # None: not on /metrics under a name of its own
    #: the simulated GPU holds it as the GpuState attribute of the same name; False: derived there
    #: (bits of a mask, a model, the agent's own state)
    sim: bool = True


_MIB = 1024 * 1024


def _dcgm(name: str, help: str, factor: float = 1, type: Literal["gauge", "counter"] = "gauge") -> Metric:  # noqa: A002
    return Metric(name, factor, type, help)


def _own(name: str, help: str, factor: float = 1, type: Literal["gauge", "counter"] = "gauge",  # noqa: A002
         label: tuple[str, str] | None = None) -> Metric:
    return Metric(name, factor, type, help, label)


def _fv(name: str, fid: int, ctype: CType, unit: str = "1", scale: float = 1.0, **kw) -> FieldId:
    return FieldId(name, fid, ctype, unit, scale, **kw)


_UTIL = "nvmlDeviceGetUtilizationRates"
_MEM = Call("nvmlDeviceGetMemoryInfo", ("nvmlMemory_v2",), unit="B")
_MEM_V1 = Call("nvmlDeviceGetMemoryInfo", unit="B")
# nvml.h nvmlMemory_v2_t: "used ... = total - free - reserved"; v1 has no reserved, so its used counts
# the driver's reservation: the values differ, and mem_info_version says so
_MEM_NOTE = "mem_used_bytes now counts memory reserved by the driver (mem_info_version=1)"


def _mem(take: str, fallback: str | None) -> Call:
    fb = None if fallback is None else Call(_MEM_V1.call, take=fallback, unit="B")
    return Call(_MEM.call, _MEM.args, take=take, unit="B", fallback=fb, note=_MEM_NOTE)


_CLOCK_EVENTS = "nvmlDeviceGetCurrentClocksEventReasons"
#: drivers before r535 only have the older name of the same call
_CLOCK_THROTTLE = "nvmlDeviceGetCurrentClocksThrottleReasons"


def _clock_bit(bit: int) -> Call:
    take = f"&{bit:#x}"
    return Call(_CLOCK_EVENTS, take=take, unit="bitmask", fallback=Call(_CLOCK_THROTTLE, take=take, unit="bitmask"))


def _throttle(name: str, bit: int, what: str) -> GpuField:
    # nvml.h nvmlClocksEventReason* (formerly nvmlClocksThrottleReason*)
    reason = name.removeprefix("throttle_")
    return GpuField(name, "bool", "1", f"clocks lowered: {what}", "state", _clock_bit(bit),
                    _own("dcim_gpu_clock_event_active", "1 while this clock-event (throttle) reason holds the clocks "
                         "down.", label=("reason", reason)), sim=False)


def _threshold(name: str, threshold: str, description: str, dcgm: str, help: str) -> GpuField:  # noqa: A002
    return GpuField(name, "float", "degC", description, "info",
                    Call("nvmlDeviceGetTemperatureThreshold", (f"NVML_TEMPERATURE_THRESHOLD_{threshold}",),
                         unit="degC", static=True), _dcgm(dcgm, help))


def _nvlink5(name: str, nvml: str, fid: int, description: str) -> GpuField:
    # NVLink5 (Blackwell) counters, nvml.h field ids 201-222: summed over links, else per link; not on
    # /metrics (dcgm-exporter has no name for them)
    return GpuField(name, "int", "1", description, "counter", _fv(nvml, fid, "u64", links=True), None, sim=False)


def _gpm(name: str, nvml: str, unit: str, description: str, dcgm: str, help: str) -> GpuField:  # noqa: A002
    # dcgm-exporter reads these from DCGM's profiling module; the agent reads the same quantities
    # from NVML's GPM and gives them as DCGM does: ratios 0-1 and bytes/s
    scale, factor = (_MIB, 1) if unit == "MiB/s" else (1, 0.01)
    return GpuField(name, "float", "B/s" if unit == "MiB/s" else "%", description, "gauge", Gpm(nvml, unit, scale),
                    _dcgm(dcgm, help, factor), sim=False)


F = GpuField

# Real C types from nvml.h's field documentation and the structs the same values come from in the
# direct calls (temperatures unsigned int, counters unsigned long long). DCGM carries the same
# knowledge as workarounds: NVML_FI_DEV_MEMORY_TEMP is labelled double while its bits are an
# integer (NVIDIA nvbug 4300930), ECC counters carry a wrong valueType (nvbug 2032468), and values
# NVML did not fill are left with timestamp 0 (NVIDIA/DCGM dcgmlib/src/DcgmCacheManager.cpp).
GPU_FIELDS: tuple[GpuField, ...] = (
    F("temp_c", "float", "degC", "GPU die temperature", "gauge",
      # deprecated in NVML 13: a driver that drops it still answers the versioned call
      Call("nvmlDeviceGetTemperature", ("NVML_TEMPERATURE_GPU",), unit="degC",
           fallback=Call("nvmlDeviceGetTemperatureV", ("NVML_TEMPERATURE_GPU",), unit="degC")),
      _dcgm("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).")),
    F("mem_temp_c", "float", "degC", "HBM / memory temperature (NVML_FI_DEV_MEMORY_TEMP)", "gauge",
      _fv("NVML_FI_DEV_MEMORY_TEMP", 82, "u32", "degC"),
      _dcgm("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).")),
    F("power_w", "float", "W", "power draw, averaged by the driver over ~1 s", "gauge",
      Call("nvmlDeviceGetPowerUsage", unit="mW", scale=1e-3),
      _dcgm("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).")),
    F("power_instant_w", "float", "W", "instantaneous power draw (NVML_FI_DEV_POWER_INSTANT)", "gauge",
      _fv("NVML_FI_DEV_POWER_INSTANT", 186, "u32", "mW", 1e-3),
      _dcgm("DCGM_FI_DEV_POWER_USAGE_INSTANT", "Current instantaneous power usage (in W).")),
    F("energy_j", "float", "J", "total energy since driver load", "counter",
      _fv("NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 83, "u64", "mJ", 1e-3),
      _dcgm("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", 1000, "counter")),
    F("power_limit_w", "float", "W", "enforced power limit", "gauge",
      Call("nvmlDeviceGetEnforcedPowerLimit", unit="mW", scale=1e-3),
      _dcgm("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "Effective power limit (in W).")),
    F("power_limit_default_w", "float", "W", "default power-management limit", "gauge",
      Call("nvmlDeviceGetPowerManagementDefaultLimit", unit="mW", scale=1e-3, static=True),
      _dcgm("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "Default power limit (in W).")),
    F("sm_clock_mhz", "float", "MHz", "SM clock", "gauge",
      Call("nvmlDeviceGetClockInfo", ("NVML_CLOCK_SM",), unit="MHz"),
      _dcgm("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).")),
    F("mem_clock_mhz", "float", "MHz", "memory clock", "gauge",
      Call("nvmlDeviceGetClockInfo", ("NVML_CLOCK_MEM",), unit="MHz"),
      _dcgm("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).")),
    F("util_pct", "float", "%", "GPU (SM) utilization", "gauge",
      Call(_UTIL, take=".gpu", unit="%", mig="mode"),
      _dcgm("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).")),
    F("mem_util_pct", "float", "%", "memory-controller utilization", "gauge",
      Call(_UTIL, take=".memory", unit="%", mig="mode"),
      _dcgm("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).")),
    F("enc_util_pct", "float", "%", "encoder utilization", "gauge",
      Call("nvmlDeviceGetEncoderUtilization", take="[0]", unit="%", mig="mode"),
      _dcgm("DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %).")),
    F("dec_util_pct", "float", "%", "decoder utilization", "gauge",
      Call("nvmlDeviceGetDecoderUtilization", take="[0]", unit="%", mig="mode"),
      _dcgm("DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %).")),
    F("mem_used_bytes", "int", "B", "framebuffer memory used", "gauge", _mem(".used", ".used"),
      _dcgm("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", 1 / _MIB)),
    F("mem_free_bytes", "int", "B", "framebuffer memory free", "gauge", _mem(".free", ".free"),
      _dcgm("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", 1 / _MIB), sim=False),
    F("mem_reserved_bytes", "int", "B", "framebuffer memory reserved by the driver", "gauge", _mem(".reserved", None),
      _dcgm("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", 1 / _MIB)),
    F("mem_info_version", "int", "1", "nvmlDeviceGetMemoryInfo version behind mem_used_bytes: 2 excludes, 1 "
      "includes the memory reserved by the driver", "info", _mem("=2", "=1"),
      _own("dcim_gpu_memory_info_version",
           "nvmlDeviceGetMemoryInfo version behind FB_USED: 1 counts driver-reserved memory as used."), sim=False),
    F("processes", "int", "1", "compute processes running on the GPU (allocated when > 0)", "gauge",
      Call("nvmlDeviceGetComputeRunningProcesses", take="len", unit="1"),
      _own("dcim_gpu_processes", "Compute processes running on the GPU.")),
    F("clock_event_mask", "int", "1", "raw clock-event (throttle) reasons bit mask", "state",
      Call(_CLOCK_EVENTS, unit="bitmask", fallback=Call(_CLOCK_THROTTLE, unit="bitmask")),
      _dcgm("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "Current clock event reasons (bitmask).")),
    _throttle("throttle_gpu_idle", 0x1, "GPU idle"),
    _throttle("throttle_clocks_setting", 0x2, "application clocks setting"),
    _throttle("throttle_sw_power_cap", 0x4, "software power cap"),
    _throttle("throttle_hw_slowdown", 0x8, "hardware slowdown"),
    _throttle("throttle_sync_boost", 0x10, "sync boost"),
    _throttle("throttle_sw_thermal", 0x20, "software thermal slowdown"),
    _throttle("throttle_hw_thermal", 0x40, "hardware thermal slowdown"),
    _throttle("throttle_hw_power_brake", 0x80, "hardware power brake"),
    _throttle("throttle_display_clocks", 0x100, "display clock setting"),
    F("violation_power_s", "float", "s", "time held below clocks by the power limit", "counter",
      _fv("NVML_FI_DEV_PERF_POLICY_POWER", 74, "u64", "ns", 1e-9),
      _dcgm("DCGM_FI_DEV_POWER_VIOLATION", "Throttling duration due to power constraints (in ns).", 1e9, "counter")),
    F("violation_thermal_s", "float", "s", "time held below clocks by thermal limits", "counter",
      _fv("NVML_FI_DEV_PERF_POLICY_THERMAL", 75, "u64", "ns", 1e-9),
      _dcgm("DCGM_FI_DEV_THERMAL_VIOLATION", "Throttling duration due to thermal constraints (in ns).", 1e9,
            "counter")),
    F("ecc_sbe_volatile_total", "int", "1", "corrected (single-bit) ECC errors since driver load", "counter",
      _fv("NVML_FI_DEV_ECC_SBE_VOL_TOTAL", 3, "u64"),
      _dcgm("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors.", type="counter")),
    F("ecc_dbe_volatile_total", "int", "1", "uncorrected (double-bit) ECC errors since driver load", "counter",
      _fv("NVML_FI_DEV_ECC_DBE_VOL_TOTAL", 4, "u64"),
      _dcgm("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors.", type="counter")),
    F("ecc_sbe_aggregate_total", "int", "1", "corrected ECC errors over the GPU's life", "counter",
      _fv("NVML_FI_DEV_ECC_SBE_AGG_TOTAL", 5, "u64"),
      _dcgm("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "Total number of single-bit persistent ECC errors.", type="counter")),
    F("ecc_dbe_aggregate_total", "int", "1", "uncorrected ECC errors over the GPU's life", "counter",
      _fv("NVML_FI_DEV_ECC_DBE_AGG_TOTAL", 6, "u64"),
      _dcgm("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent ECC errors.", type="counter")),
    F("retired_pages_sbe", "int", "1", "pages retired for single-bit errors", "counter",
      _fv("NVML_FI_DEV_RETIRED_SBE", 29, "u64"),
      _dcgm("DCGM_FI_DEV_RETIRED_SBE", "Total number of retired pages due to single-bit errors.", type="counter")),
    F("retired_pages_dbe", "int", "1", "pages retired for double-bit errors", "counter",
      _fv("NVML_FI_DEV_RETIRED_DBE", 30, "u64"),
      _dcgm("DCGM_FI_DEV_RETIRED_DBE", "Total number of retired pages due to double-bit errors.", type="counter")),
    F("retired_pages_pending", "bool", "1", "a page retirement waits for a reset", "state",
      _fv("NVML_FI_DEV_RETIRED_PENDING", 31, "u32"),
      _dcgm("DCGM_FI_DEV_RETIRED_PENDING", "Total number of pages pending retirement.", type="counter")),
    F("remapped_rows_correctable", "int", "1", "rows remapped for correctable errors", "counter",
      _fv("NVML_FI_DEV_REMAPPED_COR", 142, "u32", mig="instances"),
      _dcgm("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors", type="counter")),
    F("remapped_rows_uncorrectable", "int", "1", "rows remapped for uncorrectable errors", "counter",
      _fv("NVML_FI_DEV_REMAPPED_UNC", 143, "u32", mig="instances"),
      _dcgm("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors",
            type="counter")),
    F("remapped_rows_pending", "bool", "1", "a row remap waits for a reset", "state",
      _fv("NVML_FI_DEV_REMAPPED_PENDING", 144, "u32", mig="instances"),
      _dcgm("DCGM_FI_DEV_ROW_REMAP_PENDING", "Whether remapping of rows is pending")),
    F("remapped_rows_failure", "bool", "1", "a row remap failed", "state",
      _fv("NVML_FI_DEV_REMAPPED_FAILURE", 145, "u32", mig="instances"),
      _dcgm("DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed")),
    F("pcie_replay_total", "int", "1", "PCIe replay counter", "counter",
      _fv("NVML_FI_DEV_PCIE_REPLAY_COUNTER", 94, "u64"),
      _dcgm("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", type="counter")),
    F("nvlink_tx_bytes_total", "int", "B", "NVLink bytes transmitted, all links", "counter",
      _fv("NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX", 138, "u64", "KiB", 1024, links=True,
          fallback=_fv("NVML_FI_DEV_NVLINK_COUNT_XMIT_BYTES", 202, "u64", "B", links=True)),
      _own("dcim_gpu_nvlink_tx_bytes", "NVLink data bytes sent, all links.", type="counter")),
    F("nvlink_rx_bytes_total", "int", "B", "NVLink bytes received, all links", "counter",
      _fv("NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX", 139, "u64", "KiB", 1024, links=True,
          fallback=_fv("NVML_FI_DEV_NVLINK_COUNT_RCV_BYTES", 204, "u64", "B", links=True)),
      _own("dcim_gpu_nvlink_rx_bytes", "NVLink data bytes received, all links.", type="counter")),
    F("nvlink_crc_flit_errors_total", "int", "1", "NVLink CRC flit errors, all links", "counter",
      _fv("NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", 38, "u64"),
      _dcgm("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "Total number of NVLink flow-control CRC errors.",
            type="counter")),
    F("nvlink_crc_data_errors_total", "int", "1", "NVLink CRC data errors, all links", "counter",
      _fv("NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", 45, "u64"),
      _dcgm("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "Total number of NVLink data CRC errors.",
            type="counter")),
    F("nvlink_replay_errors_total", "int", "1", "NVLink replay errors, all links", "counter",
      _fv("NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", 52, "u64"),
      _dcgm("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "Total number of NVLink retries.", type="counter")),
    F("nvlink_recovery_errors_total", "int", "1", "NVLink recovery errors, all links", "counter",
      _fv("NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", 59, "u64"),
      _dcgm("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "Total number of NVLink recovery errors.",
            type="counter")),
    # Left out of the NVLink5 counters: 205 and 216-218 ("Deprecated, do not use") and the BER values
    # 220 and 222, which nvml.h packs as mantissa/exponent.
    _nvlink5("nvlink_tx_packets_total", "NVML_FI_DEV_NVLINK_COUNT_XMIT_PACKETS", 201,
             "NVLink packets transmitted, all links (NVLink5)"),
    _nvlink5("nvlink_rx_packets_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_PACKETS", 203,
             "NVLink packets received, all links (NVLink5)"),
    _nvlink5("nvlink_malformed_packet_errors_total", "NVML_FI_DEV_NVLINK_COUNT_MALFORMED_PACKET_ERRORS", 206,
             "NVLink malformed packet errors (NVLink5)"),
    _nvlink5("nvlink_buffer_overrun_errors_total", "NVML_FI_DEV_NVLINK_COUNT_BUFFER_OVERRUN_ERRORS", 207,
             "NVLink buffer overrun errors (NVLink5)"),
    _nvlink5("nvlink_rx_errors_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_ERRORS", 208, "NVLink receive errors (NVLink5)"),
    _nvlink5("nvlink_rx_remote_errors_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_REMOTE_ERRORS", 209,
             "NVLink remote receive errors (NVLink5)"),
    _nvlink5("nvlink_rx_general_errors_total", "NVML_FI_DEV_NVLINK_COUNT_RCV_GENERAL_ERRORS", 210,
             "NVLink general receive errors (NVLink5)"),
    _nvlink5("nvlink_local_link_integrity_errors_total", "NVML_FI_DEV_NVLINK_COUNT_LOCAL_LINK_INTEGRITY_ERRORS", 211,
             "NVLink local link integrity errors (NVLink5)"),
    _nvlink5("nvlink_tx_discards_total", "NVML_FI_DEV_NVLINK_COUNT_XMIT_DISCARDS", 212,
             "NVLink transmit discards (NVLink5)"),
    _nvlink5("nvlink_link_recovery_successful_total", "NVML_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_SUCCESSFUL_EVENTS", 213,
             "NVLink successful link recoveries (NVLink5)"),
    _nvlink5("nvlink_link_recovery_failed_total", "NVML_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_FAILED_EVENTS", 214,
             "NVLink failed link recoveries (NVLink5)"),
    _nvlink5("nvlink_link_recovery_events_total", "NVML_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_EVENTS", 215,
             "NVLink link recovery events (NVLink5)"),
    _nvlink5("nvlink_effective_errors_total", "NVML_FI_DEV_NVLINK_COUNT_EFFECTIVE_ERRORS", 219,
             "NVLink effective errors (NVLink5)"),
    _nvlink5("nvlink_symbol_errors_total", "NVML_FI_DEV_NVLINK_COUNT_SYMBOL_ERRORS", 221,
             "NVLink symbol errors (NVLink5)"),
    _gpm("gr_engine_active_pct", "NVML_GPM_METRIC_GRAPHICS_UTIL", "%",
         "graphics/compute engine active time (GPM, Hopper and later)",
         "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active."),
    _gpm("sm_active_pct", "NVML_GPM_METRIC_SM_UTIL", "%", "SMs busy (GPM NVML_GPM_METRIC_SM_UTIL, Hopper and later)",
         "DCGM_FI_PROF_SM_ACTIVE", "The ratio of cycles an SM has at least 1 warp assigned."),
    _gpm("sm_occupancy_pct", "NVML_GPM_METRIC_SM_OCCUPANCY", "%", "warps resident vs the maximum (GPM, Hopper and later)",
         "DCGM_FI_PROF_SM_OCCUPANCY", "The ratio of number of warps resident on an SM."),
    _gpm("tensor_active_pct", "NVML_GPM_METRIC_ANY_TENSOR_UTIL", "%",
         "tensor pipes active (GPM ANY_TENSOR_UTIL, Hopper and later)",
         "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles the tensor (HMMA) pipe is active."),
    _gpm("dram_active_pct", "NVML_GPM_METRIC_DRAM_BW_UTIL", "%",
         "DRAM bandwidth used vs the maximum (GPM, Hopper and later)", "DCGM_FI_PROF_DRAM_ACTIVE",
         "Ratio of cycles the device memory interface is active sending or receiving data."),
    _gpm("pcie_tx_bytes_per_s", "NVML_GPM_METRIC_PCIE_TX_PER_SEC", "MiB/s",
         "PCIe bytes sent per second (GPM, Hopper and later)", "DCGM_FI_PROF_PCIE_TX_BYTES",
         "The rate of data transmitted over the PCIe bus in bytes per second."),
    _gpm("pcie_rx_bytes_per_s", "NVML_GPM_METRIC_PCIE_RX_PER_SEC", "MiB/s",
         "PCIe bytes received per second (GPM, Hopper and later)", "DCGM_FI_PROF_PCIE_RX_BYTES",
         "The rate of data received over the PCIe bus in bytes per second."),
    _gpm("nvlink_tx_bytes_per_s", "NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC", "MiB/s",
         "NVLink bytes sent per second, all links (GPM)", "DCGM_FI_PROF_NVLINK_TX_BYTES",
         "The rate of data transmitted over NVLink in bytes per second."),
    _gpm("nvlink_rx_bytes_per_s", "NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC", "MiB/s",
         "NVLink bytes received per second, all links (GPM)", "DCGM_FI_PROF_NVLINK_RX_BYTES",
         "The rate of data received over NVLink in bytes per second."),
    F("activity_pct", "float", "%", "useful-work KPI: sm_active_pct where GPM exists, else util_pct", "gauge",
      Agent("sm_active_pct where GPM gives it, else util_pct"),
      _own("dcim_gpu_activity_ratio",
           "Useful-work KPI: GPM SM activity where the GPU has it, else NVML utilization (see source).", 0.01),
      sim=False),
    F("activity_source", "str", "1", "what activity_pct is: gpm_sm_active or nvml_util", "info",
      Agent("which one activity_pct is"), None, sim=False),  # the ``source`` label of dcim_gpu_activity_ratio
    F("fan_pct", "float", "%", "fan speed (air-cooled GPUs only)", "gauge",
      Call("nvmlDeviceGetFanSpeed", unit="%"), _dcgm("DCGM_FI_DEV_FAN_SPEED", "Fan speed (in %).")),
    F("pstate", "int", "1", "performance state (0 = P0, fastest)", "state",
      Call("nvmlDeviceGetPerformanceState", unit="P-state"),
      _dcgm("DCGM_FI_DEV_PSTATE", "Performance state (P-state) 0-15. 0=highest")),
    _threshold("temp_slowdown_c", "SLOWDOWN", "the GPU's own slowdown temperature threshold",
               "DCGM_FI_DEV_SLOWDOWN_TEMP", "Slowdown temperature threshold (in C)."),
    _threshold("temp_shutdown_c", "SHUTDOWN", "the GPU's own shutdown temperature threshold",
               "DCGM_FI_DEV_SHUTDOWN_TEMP", "Shutdown temperature threshold (in C)."),
    _threshold("temp_max_operating_c", "GPU_MAX", "the GPU's maximum operating temperature",
               "DCGM_FI_DEV_GPU_MAX_OP_TEMP", "Maximum operating temperature (in C)."),
    _threshold("mem_temp_max_c", "MEM_MAX", "the GPU's maximum memory temperature",
               "DCGM_FI_DEV_MEM_MAX_OP_TEMP", "Maximum memory operating temperature (in C)."),
    # XID counts per code are on /metrics as dcim_gpu_xid_errors_total{xid}
    F("xid_total", "int", "1", "XID errors seen by the agent since it started", "counter",
      Agent("XID event waiter (nvmlEventSetWait_v2, nvmlEventTypeXidCriticalError)"), None, sim=False),
    F("xid_last", "int", "1", "code of the last XID error", "state", Agent("XID event waiter"),
      _dcgm("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered."), sim=False),
    F("xid_last_time_s", "float", "s", "unix time of the last XID error", "state",
      Agent("XID event waiter (time of receipt)"),
      _own("dcim_gpu_xid_last_time_seconds", "Unix time of the last XID error."), sim=False),
    F("mig_mode", "bool", "1", "MIG mode enabled (some fields are hidden)", "state",
      Call("nvmlDeviceGetMigMode", take="[0]", unit="bool"),  # (current, pending); NVML_DEVICE_MIG_ENABLE is 1
      _own("dcim_gpu_mig_mode", "1 when MIG mode is enabled (some fields are hidden).")),
    F("lost", "bool", "1", "GPU fell off the bus (NVML GPU_IS_LOST)", "state", Agent("GPU_IS_LOST from any call"),
      _own("dcim_gpu_agent_gpu_lost", "1 while the GPU is lost (fell off the bus).")),
)

BY_NAME: dict[str, GpuField] = {f.name: f for f in GPU_FIELDS}
