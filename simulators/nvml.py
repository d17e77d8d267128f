"""A simulated NVML: answers the pynvml calls the GPU agent makes, from the simulated hall's GpuState objects.

Same names, same return shapes, same exceptions as nvidia-ml-py (``pynvml.NVMLError`` subclasses with
the real codes) and real ``c_nvmlFieldValue_t`` arrays with a return code per value, so the agent
code is identical for the real library and this one. What the simulated GPU lacks answers
NOT_SUPPORTED (``GpuState.unsupported``, ``fan_pct=None``); a lost GPU answers GPU_IS_LOST to
everything; XIDs queued in ``GpuState.xid_events`` come out of ``nvmlEventSetWait``.

Fault injection beyond the state: ``init_error`` (e.g. LIBRARY_NOT_FOUND at nvmlInit),
``call_errors[(index, function name)]`` and ``value_errors[(index, field id)]``.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pynvml as nv

from simulators.state import GpuState


def _err(code: int) -> nv.NVMLError:
    return nv.NVMLError(code)


@dataclass(slots=True, eq=False)
class SimHandle:
    """What nvmlDeviceGetHandleByIndex returns: an opaque handle (compared by identity)."""

    index: int
    generation: int


class SimEventSet:
    def __init__(self) -> None:
        self.handles: list[SimHandle] = []
        self.freed = False


# field id -> (GpuState attribute or callable, NVML unit factor, value type, schema name for ``unsupported``)
_I = nv.NVML_VALUE_TYPE_UNSIGNED_INT
_ULL = nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
_FIELDS: dict[int, tuple[str, float, int, str]] = {
    nv.NVML_FI_DEV_MEMORY_TEMP: ("mem_temp_c", 1, _I, "mem_temp_c"),
    nv.NVML_FI_DEV_POWER_INSTANT: ("power_instant_w", 1000, _I, "power_instant_w"),
    nv.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: ("energy_j", 1000, _ULL, "energy_j"),
    nv.NVML_FI_DEV_PERF_POLICY_POWER: ("violation_power_ns", 1, _ULL, "violation_power_s"),
    nv.NVML_FI_DEV_PERF_POLICY_THERMAL: ("violation_thermal_ns", 1, _ULL, "violation_thermal_s"),
    nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL: ("ecc_sbe_volatile", 1, _ULL, "ecc_sbe_volatile_total"),
    nv.NVML_FI_DEV_ECC_DBE_VOL_TOTAL: ("ecc_dbe_volatile", 1, _ULL, "ecc_dbe_volatile_total"),
    nv.NVML_FI_DEV_ECC_SBE_AGG_TOTAL: ("ecc_sbe_aggregate", 1, _ULL, "ecc_sbe_aggregate_total"),
    nv.NVML_FI_DEV_ECC_DBE_AGG_TOTAL: ("ecc_dbe_aggregate", 1, _ULL, "ecc_dbe_aggregate_total"),
    nv.NVML_FI_DEV_RETIRED_SBE: ("retired_pages_sbe", 1, _ULL, "retired_pages_sbe"),
    nv.NVML_FI_DEV_RETIRED_DBE: ("retired_pages_dbe", 1, _ULL, "retired_pages_dbe"),
    nv.NVML_FI_DEV_RETIRED_PENDING: ("retired_pages_pending", 1, _I, "retired_pages_pending"),
    nv.NVML_FI_DEV_REMAPPED_COR: ("remapped_rows_correctable", 1, _I, "remapped_rows_correctable"),
    nv.NVML_FI_DEV_REMAPPED_UNC: ("remapped_rows_uncorrectable", 1, _I, "remapped_rows_uncorrectable"),
    nv.NVML_FI_DEV_REMAPPED_PENDING: ("remapped_rows_pending", 1, _I, "remapped_rows_pending"),
    nv.NVML_FI_DEV_REMAPPED_FAILURE: ("remapped_rows_failure", 1, _I, "remapped_rows_failure"),
    nv.NVML_FI_DEV_PCIE_REPLAY_COUNTER: ("pcie_replay", 1, _ULL, "pcie_replay_total"),
    nv.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: ("nvlink_crc_flit_errors", 1, _ULL,
                                                      "nvlink_crc_flit_errors_total"),
    nv.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: ("nvlink_crc_data_errors", 1, _ULL,
                                                      "nvlink_crc_data_errors_total"),
    nv.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: ("nvlink_replay_errors", 1, _ULL, "nvlink_replay_errors_total"),
    nv.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: ("nvlink_recovery_errors", 1, _ULL,
                                                      "nvlink_recovery_errors_total"),
}
_NVLINK_TX = nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
_NVLINK_RX = nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
_MIG_HIDDEN_IDS = frozenset((nv.NVML_FI_DEV_REMAPPED_COR, nv.NVML_FI_DEV_REMAPPED_UNC,
                             nv.NVML_FI_DEV_REMAPPED_PENDING, nv.NVML_FI_DEV_REMAPPED_FAILURE))
_SETTERS = {
    nv.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
}


class SimNvml:
    """The simulated library. ``gpus`` are one node's GPUs in NVML index order.

    ``step(dt_s)``, when given, advances the model (e.g. ``hall.step``) by the wall-clock time
    since the last call, at most every ``step_min_s``, so readings move as time passes.
    """

    def __init__(
        self,
        gpus: Iterable[GpuState],
        *,
        driver_version: str = "570.124.06",
        nvlink_links: int = 18,
        step: Callable[[float], None] | None = None,
        step_min_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        event_poll_s: float = 0.005,
    ) -> None:
        self.gpus: list[GpuState] = list(gpus)
        self.driver_version = driver_version
        self.nvlink_links = nvlink_links
        self.init_error: int | None = None
        self.call_errors: dict[tuple[int, str], int] = {}
        self.value_errors: dict[tuple[int, int], int] = {}
        #: NVML C symbols this "driver" lacks: pynvml raises FUNCTION_NOT_FOUND for them
        self.missing_functions: set[str] = set()
        self.calls = 0  # every answered library call, for tests and the benchmark
        self.init_count = 0
        self._initialised = 0
        self._generation = 0
        self._step = step
        self._step_min_s = step_min_s
        self._clock = clock
        self._last_step = clock()
        self._event_poll_s = event_poll_s
        self._lock = threading.Lock()

    # -- library lifecycle -----------------------------------------------------------------

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise _err(self.init_error)
        self._initialised += 1
        self._generation += 1  # a re-init invalidates old handles, as the real library's do
        self.init_count += 1

    def nvmlInitWithFlags(self, flags: int) -> None:
        self.nvmlInit()

    def nvmlShutdown(self) -> None:
        self._need_init()
        self._initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._need_init()
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._need_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimHandle:
        self._need_init()
        if not 0 <= index < len(self.gpus):
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].lost:
            raise _err(nv.NVML_ERROR_GPU_IS_LOST)
        return SimHandle(index, self._generation)

    # -- identity --------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, h: SimHandle) -> str:
        return self._gpu(h, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, h: SimHandle) -> str:
        return self._gpu(h, "nvmlDeviceGetName").model

    def nvmlDeviceGetSerial(self, h: SimHandle) -> str:
        return self._gpu(h, "nvmlDeviceGetSerial").serial

    def nvmlDeviceGetPciInfo(self, h: SimHandle) -> Any:
        g = self._gpu(h, "nvmlDeviceGetPciInfo")
        info = nv.nvmlPciInfo_t()
        info.busId = g.pci_bus_id.encode()
        return info

    def nvmlDeviceGetMigMode(self, h: SimHandle) -> list[int]:
        g = self._gpu(h, "nvmlDeviceGetMigMode", "mig_mode")
        mode = nv.NVML_DEVICE_MIG_ENABLE if g.mig_mode else nv.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    # -- readings --------------------------------------------------------------------------

    def nvmlDeviceGetTemperature(self, h: SimHandle, sensor: int) -> int:
        g = self._gpu(h, "nvmlDeviceGetTemperature", "temp_c")
        self._symbol("nvmlDeviceGetTemperature")
        if sensor != nv.NVML_TEMPERATURE_GPU:
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        return round(g.temp_c)

    def nvmlDeviceGetTemperatureV(self, h: SimHandle, sensor: int, version: int = nv.nvmlTemperature_v1) -> int:
        g = self._gpu(h, "nvmlDeviceGetTemperatureV", "temp_c")
        self._symbol("nvmlDeviceGetTemperatureV")
        if sensor != nv.NVML_TEMPERATURE_GPU:
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        return round(g.temp_c)

    def nvmlDeviceGetTemperatureThreshold(self, h: SimHandle, threshold: int) -> int:
        attr = {
            nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: ("slowdown_temp_c", "temp_slowdown_c"),
            nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: ("shutdown_temp_c", "temp_shutdown_c"),
            nv.NVML_TEMPERATURE_THRESHOLD_GPU_MAX: ("max_operating_temp_c", "temp_max_operating_c"),
            nv.NVML_TEMPERATURE_THRESHOLD_MEM_MAX: ("mem_max_temp_c", "mem_temp_max_c"),
        }.get(threshold)
        if attr is None:
            self._gpu(h, "nvmlDeviceGetTemperatureThreshold")
            raise _err(nv.NVML_ERROR_NOT_SUPPORTED)
        g = self._gpu(h, "nvmlDeviceGetTemperatureThreshold", attr[1])
        return round(getattr(g, attr[0]))

    def nvmlDeviceGetPowerUsage(self, h: SimHandle) -> int:
        return round(self._gpu(h, "nvmlDeviceGetPowerUsage", "power_w").power_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: SimHandle) -> int:
        return round(self._gpu(h, "nvmlDeviceGetEnforcedPowerLimit", "power_limit_w").power_limit_w * 1000)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: SimHandle) -> int:
        g = self._gpu(h, "nvmlDeviceGetPowerManagementDefaultLimit", "power_limit_default_w")
        return round(g.power_limit_default_w * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: SimHandle) -> int:
        return round(self._gpu(h, "nvmlDeviceGetTotalEnergyConsumption", "energy_j").energy_j * 1000)

    def nvmlDeviceGetClockInfo(self, h: SimHandle, clock_type: int) -> int:
        if clock_type == nv.NVML_CLOCK_SM:
            return round(self._gpu(h, "nvmlDeviceGetClockInfo", "sm_clock_mhz").sm_clock_mhz)
        if clock_type == nv.NVML_CLOCK_MEM:
            return round(self._gpu(h, "nvmlDeviceGetClockInfo", "mem_clock_mhz").mem_clock_mhz)
        self._gpu(h, "nvmlDeviceGetClockInfo")
        raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetUtilizationRates(self, h: SimHandle) -> nv.c_nvmlUtilization_t:
        g = self._gpu(h, "nvmlDeviceGetUtilizationRates", "util_pct", mig_hidden=True)
        u = nv.c_nvmlUtilization_t()
        u.gpu = round(g.util_pct)
        u.memory = round(g.mem_util_pct)
        return u

    def nvmlDeviceGetEncoderUtilization(self, h: SimHandle) -> list[int]:
        g = self._gpu(h, "nvmlDeviceGetEncoderUtilization", "enc_util_pct", mig_hidden=True)
        return [round(g.enc_util_pct), 167000]

    def nvmlDeviceGetDecoderUtilization(self, h: SimHandle) -> list[int]:
        g = self._gpu(h, "nvmlDeviceGetDecoderUtilization", "dec_util_pct", mig_hidden=True)
        return [round(g.dec_util_pct), 167000]

    def nvmlDeviceGetMemoryInfo(self, h: SimHandle, version: int | None = None) -> Any:
        g = self._gpu(h, "nvmlDeviceGetMemoryInfo", "mem_used_bytes")
        self._symbol("nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo")
        if version:
            m = nv.c_nvmlMemory_v2_t()
            m.version = version
            m.reserved = g.mem_reserved_bytes
        else:
            m = nv.c_nvmlMemory_t()
        m.total = g.memory_total_bytes
        m.used = g.mem_used_bytes
        m.free = g.memory_total_bytes - g.mem_used_bytes - (g.mem_reserved_bytes if version else 0)
        return m

    def nvmlDeviceGetComputeRunningProcesses(self, h: SimHandle) -> list[Any]:
        g = self._gpu(h, "nvmlDeviceGetComputeRunningProcesses", "processes")
        share = g.mem_used_bytes // g.processes if g.processes else 0
        return [nv.nvmlFriendlyObject({"pid": 10_000 + i, "usedGpuMemory": share, "gpuInstanceId": 0xFFFFFFFF,
                                       "computeInstanceId": 0xFFFFFFFF}) for i in range(g.processes)]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: SimHandle) -> int:
        g = self._gpu(h, "nvmlDeviceGetCurrentClocksEventReasons", "clock_event_mask")
        self._symbol("nvmlDeviceGetCurrentClocksEventReasons")
        return g.clock_event_mask

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: SimHandle) -> int:
        g = self._gpu(h, "nvmlDeviceGetCurrentClocksThrottleReasons", "clock_event_mask")
        self._symbol("nvmlDeviceGetCurrentClocksThrottleReasons")
        return g.clock_event_mask

    def nvmlDeviceGetFanSpeed(self, h: SimHandle) -> int:
        g = self._gpu(h, "nvmlDeviceGetFanSpeed", "fan_pct")
        if g.fan_pct is None:
            raise _err(nv.NVML_ERROR_NOT_SUPPORTED)
        return round(g.fan_pct)

    def nvmlDeviceGetPerformanceState(self, h: SimHandle) -> int:
        return self._gpu(h, "nvmlDeviceGetPerformanceState", "pstate").pstate

    def nvmlDeviceGetPcieReplayCounter(self, h: SimHandle) -> int:
        return self._gpu(h, "nvmlDeviceGetPcieReplayCounter", "pcie_replay_total").pcie_replay

    def nvmlDeviceGetFieldValues(self, h: SimHandle, field_ids: list) -> Any:
        g = self._gpu(h, "nvmlDeviceGetFieldValues")
        values = (nv.c_nvmlFieldValue_t * len(field_ids))()
        now_us = int(time.time() * 1e6)
        filled = 0
        for i, fid in enumerate(field_ids):
            v = values[i]
            try:
                v.fieldId, v.scopeId = fid
            except TypeError:
                v.fieldId = fid
            v.timestamp = now_us
            v.nvmlReturn = self._field_value(h.index, g, v)
            filled += v.nvmlReturn == nv.NVML_SUCCESS
        if field_ids and not filled:  # the call fails only when no value was filled
            raise _err(values[0].nvmlReturn)
        return values

    def _field_value(self, index: int, g: GpuState, v: Any) -> int:
        fid = v.fieldId
        injected = self.value_errors.get((index, fid))
        if injected is not None:
            return injected
        if fid == nv.NVML_FI_DEV_NVLINK_LINK_COUNT:
            if "nvlink_tx_bytes_total" in g.unsupported:
                return nv.NVML_ERROR_NOT_SUPPORTED
            v.valueType = _I
            v.value.uiVal = self.nvlink_links
            return nv.NVML_SUCCESS
        if fid in (_NVLINK_TX, _NVLINK_RX):
            name = "nvlink_tx_bytes_total" if fid == _NVLINK_TX else "nvlink_rx_bytes_total"
            if name in g.unsupported or v.scopeId >= self.nvlink_links:
                return nv.NVML_ERROR_NOT_SUPPORTED if name in g.unsupported else nv.NVML_ERROR_INVALID_ARGUMENT
            total_kib = (g.nvlink_tx_bytes if fid == _NVLINK_TX else g.nvlink_rx_bytes) // 1024
            # Spread the total over the links; link 0 takes the remainder so the sum is exact.
            share = total_kib // self.nvlink_links
            v.valueType = _ULL
            v.value.ullVal = share + (total_kib - share * self.nvlink_links if v.scopeId == 0 else 0)
            return nv.NVML_SUCCESS
        spec = _FIELDS.get(fid)
        if spec is None:
            return nv.NVML_ERROR_INVALID_ARGUMENT
        attr, factor, vtype, name = spec
        if name in g.unsupported or (g.mig_mode and fid in _MIG_HIDDEN_IDS):
            return nv.NVML_ERROR_NOT_SUPPORTED
        raw = getattr(g, attr)
        v.valueType = vtype
        setattr(v.value, _SETTERS[vtype], round(float(raw) * factor))
        return nv.NVML_SUCCESS

    # -- events ----------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> SimEventSet:
        self._need_init()
        return SimEventSet()

    def nvmlDeviceRegisterEvents(self, h: SimHandle, event_types: int, event_set: SimEventSet) -> None:
        self._gpu(h, "nvmlDeviceRegisterEvents", "xid_total")
        if event_types & nv.nvmlEventTypeXidCriticalError:
            event_set.handles.append(h)

    def nvmlEventSetWait_v2(self, event_set: SimEventSet, timeout_ms: int) -> nv.c_nvmlEventData_t:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._need_init()
            lost = False
            for h in event_set.handles:
                g = self.gpus[h.index]
                with self._lock:
                    if g.xid_events:  # events that happened before a GPU was lost still come out
                        code, _ = g.xid_events.pop(0)
                        data = nv.c_nvmlEventData_t()
                        data.eventType = nv.nvmlEventTypeXidCriticalError
                        data.eventData = code
                        data.gpuInstanceId = 0xFFFFFFFF
                        data.computeInstanceId = 0xFFFFFFFF
                        return _EventData(h, data)
                lost = lost or g.lost
            if lost:
                raise _err(nv.NVML_ERROR_GPU_IS_LOST)
            if time.monotonic() >= deadline:
                raise _err(nv.NVML_ERROR_TIMEOUT)
            time.sleep(self._event_poll_s)

    def nvmlEventSetWait(self, event_set: SimEventSet, timeout_ms: int) -> Any:
        return self.nvmlEventSetWait_v2(event_set, timeout_ms)

    def nvmlEventSetFree(self, event_set: SimEventSet) -> None:
        event_set.freed = True

    # -- helpers ---------------------------------------------------------------------------

    def _need_init(self) -> None:
        if self._initialised <= 0:
            raise _err(nv.NVML_ERROR_UNINITIALIZED)

    def _symbol(self, name: str) -> None:
        if name in self.missing_functions:
            raise _err(nv.NVML_ERROR_FUNCTION_NOT_FOUND)

    def _gpu(self, h: SimHandle, fn: str, field: str | None = None, *, mig_hidden: bool = False) -> GpuState:
        self._need_init()
        self._maybe_step()
        self.calls += 1
        if not isinstance(h, SimHandle) or h.generation != self._generation:
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)  # a handle from before a re-init
        g = self.gpus[h.index]
        if g.lost:
            raise _err(nv.NVML_ERROR_GPU_IS_LOST)
        injected = self.call_errors.get((h.index, fn))
        if injected is not None:
            raise _err(injected)
        if field is not None and (field in g.unsupported or (mig_hidden and g.mig_mode)):
            raise _err(nv.NVML_ERROR_NOT_SUPPORTED)
        return g

    def _maybe_step(self) -> None:
        if self._step is None:
            return
        now = self._clock()
        if now - self._last_step >= self._step_min_s:
            dt, self._last_step = now - self._last_step, now
            self._step(dt)


class _EventData:
    """nvmlEventSetWait's answer: a c_nvmlEventData_t whose ``device`` is our opaque handle."""

    __slots__ = ("_data", "device")

    def __init__(self, device: SimHandle, data: nv.c_nvmlEventData_t) -> None:
        self.device = device
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)


# --- building a simulated node ----------------------------------------------------------------


def synthetic_gpus(node: str, count: int = 8, *, model: str = "NVIDIA H100 80GB HBM3", tdp_w: float = 700.0,
                   seed: int = 0) -> list[GpuState]:
    """A node of busy H100-like GPUs with plausible values, for tests and for ``--simulate`` without a hall."""
    gpus = []
    for i in range(count):
        k = (seed * 31 + i * 7) % 10
        util = 60.0 + 4 * k
        power = 120.0 + (tdp_w - 150.0) * util / 100.0
        g = GpuState(
            node=node, index=i, uuid=f"GPU-{zlib.crc32(f'{node}/{i}/{seed}'.encode()):08x}-5130-4000-8000-{i:012d}",
            model=model, serial=f"1650{seed:04d}{i:05d}", pci_bus_id=f"00000000:{0x18 + 0x10 * i:02X}:00.0",
            tdp_w=tdp_w, power_limit_w=tdp_w, power_limit_default_w=tdp_w, slowdown_temp_c=87.0,
            shutdown_temp_c=92.0, max_operating_temp_c=85.0, mem_max_temp_c=95.0,
            memory_total_bytes=80 * 1024**3, max_sm_clock_mhz=1980.0,
            util_pct=util, mem_util_pct=util / 2, power_w=power, power_instant_w=power + 3.0,
            energy_j=3.6e6 + 1000.0 * i, temp_c=45.0 + k, mem_temp_c=50.0 + k, sm_clock_mhz=1755.0,
            mem_clock_mhz=2619.0, mem_used_bytes=(40 + k) * 1024**3, mem_reserved_bytes=512 * 1024**2,
            processes=1, clock_event_mask=0, pstate=0, fan_pct=None,
            nvlink_tx_bytes=10**12 + i, nvlink_rx_bytes=2 * 10**12 + i,
        )
        gpus.append(g)
    return gpus


def node_gpus(gpus: Mapping[tuple[str, int], GpuState], node: str) -> list[GpuState]:
    """One node's GPUs from a hall's ``state.gpus``, in index order."""
    found = sorted((k[1], g) for k, g in gpus.items() if k[0] == node)
    return [g for _, g in found]


def backend_for_node(site: Any, node: str, *, seed: int = 42, scenario: str | None = None) -> SimNvml:
    """A SimNvml for ``node`` of ``site``: driven by the hall model when it is available, else synthetic."""
    try:
        from simulators.hall import Hall  # the hall model may not be importable on a trimmed install
    except ImportError:
        Hall = None  # noqa: N806
    if Hall is not None:
        from simulators.scenarios import load_scenario

        hall = Hall(site, seed=seed, scenario=load_scenario(scenario) if scenario else None)
        gpus = node_gpus(hall.state.gpus, node)
        if gpus:
            return SimNvml(gpus, step=hall.step)
    count = 8
    for rack in site.racks():
        for n in rack.nodes:
            if n.name == node:
                count = n.gpus
    return SimNvml(synthetic_gpus(node, count, seed=seed))
