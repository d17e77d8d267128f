"""A simulated NVML: answers the pynvml calls the GPU agent makes, from the simulated hall's GpuState objects.

Same names, same return shapes, same exceptions as nvidia-ml-py (``pynvml.NVMLError`` subclasses with
the real codes) and real ``c_nvmlFieldValue_t`` arrays with a return code per value, so the agent
code is identical for the real library and this one. What the simulated GPU lacks answers
NOT_SUPPORTED (``GpuState.unsupported``, ``fan_pct=None``); a lost GPU answers GPU_IS_LOST to
everything; XIDs queued in ``GpuState.xid_events`` come out of ``nvmlEventSetWait``.

``real_library=True`` (the default) also behaves like the real library where it is awkward:
- handles are ctypes pointers, a new Python object on every call (and on every read of an event's
  ``device``), equal only by pointer value;
- ``NVML_FI_DEV_MEMORY_TEMP`` is labelled DOUBLE while its bits are an integer (NVIDIA nvbug
  4300930) and the ECC totals carry the same wrong label (nvbug 2032468), as DCGM works around;
- a GPU with ECC off (``ecc_off``) leaves its ECC and retired-page entries untouched: nvmlReturn 0,
  timestamp 0;
- NVLink throughput answers the summed read (scopeId UINT_MAX, nvml.h) unless ``aggregate_scope``
  is off, and links in ``dead_links`` answer NOT_SUPPORTED per link; Blackwell GPUs answer the
  NVLink5 counters (field ids 201-222) and not the older throughput ids;
- ``nvmlInit`` without NVML_INIT_FLAG_NO_GPUS fails when no GPU is usable;
- remapped rows answer NOT_SUPPORTED only while MIG instances exist (``mig_instances``);
- GPM metrics (``nvmlGpmMetricsGet``) on Hopper and later, modelled from the GPU's workload.
``real_library=False`` keeps the tidy behaviour (identity handles, honest value types).

Fault injection beyond the state: ``init_error`` (e.g. LIBRARY_NOT_FOUND at nvmlInit),
``call_errors[(index, function name)]`` (an NVML code), ``raise_errors[(index, function name)]``
(any exception, e.g. ``NVMLLibraryMismatchError`` or ``TypeError``) and
``value_errors[(index, field id)]``.
"""

from __future__ import annotations

import ctypes
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pynvml as nv

from dcim.gpu_fields import GPU_FIELDS, Call, FieldId
from dcim.simulators.state import GpuState


def _err(code: int) -> nv.NVMLError:
    return nv.NVMLError(code)


_GPU_NOT_FOUND = getattr(nv, "NVML_ERROR_GPU_NOT_FOUND", 28)  # nvml.h: "No GPUs were found"
_INIT_FLAG_NO_GPUS = getattr(nv, "NVML_INIT_FLAG_NO_GPUS", 1)
_TEMPERATURE_V1 = getattr(nv, "nvmlTemperature_v1", 0x100000C)  # nvml.h: NVML_STRUCT_VERSION(Temperature, 1)
_UINT_MAX = 0xFFFFFFFF

#: Architecture of a GPU by its NVML name (nvmlDeviceGetName), for the features that depend on it.
_ARCH: tuple[tuple[str, str], ...] = (
    ("GB200", "blackwell"), ("GB300", "blackwell"), ("B200", "blackwell"), ("B300", "blackwell"),
    ("B100", "blackwell"), ("Blackwell", "blackwell"),
    ("GH200", "hopper"), ("H100", "hopper"), ("H200", "hopper"), ("H800", "hopper"), ("H20", "hopper"),
)


def architecture(model: str) -> str:
    """``hopper``, ``blackwell`` or ``other`` for an NVML device name."""
    for key, arch in _ARCH:
        if key in model:
            return arch
    return "other"


@dataclass(frozen=True, slots=True)
class SimHandle:
    """The tidy mode's handle: equal (and hashed) by GPU index and NVML generation."""

    index: int
    generation: int


class SimEventSet:
    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.freed = False


_D = nv.NVML_VALUE_TYPE_DOUBLE
_I = nv.NVML_VALUE_TYPE_UNSIGNED_INT
_ULL = nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
_SLL = nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG
_VALUE_TYPE = {"u32": _I, "u64": _ULL, "s64": _SLL, "f64": _D}
#: field id -> (GpuState attribute, NVML's unit per schema unit, value type): every field-value row
#: of the GPU field table the simulated GPU holds, under the row's name (the NVLink counters summed
#: over links are answered from the NVLink state below, per link and per generation).
_FIELDS: dict[int, tuple[str, int, int]] = {
    getattr(nv, f.read.name, f.read.id): (f.name, round(1 / f.read.scale), _VALUE_TYPE[f.read.ctype])
    for f in GPU_FIELDS if isinstance(f.read, FieldId) and f.sim and not f.read.links
}
#: nvmlDeviceGetTemperatureThreshold's threshold -> the field (and GpuState attribute) it answers
_THRESHOLDS: dict[int, str] = {
    getattr(nv, f.read.args[0]): f.name for f in GPU_FIELDS
    if isinstance(f.read, Call) and f.read.call == "nvmlDeviceGetTemperatureThreshold"
}
#: Entries a real driver mislabels as DOUBLE while writing integer bits (nvbug 4300930, 2032468).
_MISLABELLED = frozenset((nv.NVML_FI_DEV_MEMORY_TEMP, nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, nv.NVML_FI_DEV_ECC_DBE_VOL_TOTAL,
                          nv.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, nv.NVML_FI_DEV_ECC_DBE_AGG_TOTAL))
#: Entries left untouched while ECC is off.
_ECC_IDS = frozenset((nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, nv.NVML_FI_DEV_ECC_DBE_VOL_TOTAL, nv.NVML_FI_DEV_ECC_SBE_AGG_TOTAL,
                      nv.NVML_FI_DEV_ECC_DBE_AGG_TOTAL, nv.NVML_FI_DEV_RETIRED_SBE, nv.NVML_FI_DEV_RETIRED_DBE,
                      nv.NVML_FI_DEV_RETIRED_PENDING))
_NVLINK_TX = nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
_NVLINK_RX = nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
#: Entries NVML refuses while GPU instances exist (the table's mig="instances").
_MIG_HIDDEN_IDS = frozenset(getattr(nv, f.read.name, f.read.id) for f in GPU_FIELDS
                            if isinstance(f.read, FieldId) and f.read.mig == "instances")


def _nvlink5(g: GpuState) -> dict[int, int]:
    """NVLink5 counters (nvml.h ids 201-222) from the model's NVLink state; packets of 256 B."""
    return {
        201: g.nvlink_tx_bytes_total // 256, 202: g.nvlink_tx_bytes_total, 203: g.nvlink_rx_bytes_total // 256,
        204: g.nvlink_rx_bytes_total, 206: 0, 207: 0, 208: g.nvlink_crc_data_errors_total, 209: 0, 210: 0, 211: 0, 212: 0,
        213: g.nvlink_recovery_errors_total, 214: 0, 215: g.nvlink_recovery_errors_total, 219: g.nvlink_replay_errors_total,
        221: g.nvlink_crc_flit_errors_total,
    }


_STRUCT = {_D: struct.Struct("=d"), _I: struct.Struct("=I"), _ULL: struct.Struct("=Q"), _SLL: struct.Struct("=q")}


def _put(v: Any, vtype: int, value: int | float, *, label: int | None = None) -> None:
    """Write ``value`` as ``vtype`` into the entry's union and label it ``label`` (default: ``vtype``)."""
    ctypes.memset(ctypes.addressof(v.value), 0, ctypes.sizeof(v.value))
    packed = _STRUCT[vtype].pack(value)
    ctypes.memmove(ctypes.addressof(v.value), packed, len(packed))
    v.valueType = vtype if label is None else label


class SimNvml:
    """The simulated library. ``gpus`` are one node's GPUs in NVML index order.

    ``step(dt_s)``, when given, advances the model (e.g. ``hall.step``) by the wall-clock time
    since the last call, at most every ``step_min_s``, so readings move as time passes.
    """

    def __init__(
        self,
        gpus: Iterable[GpuState],
        *,
        real_library: bool = True,
        driver_version: str = "570.124.06",
        nvlink_links: int = 18,
        dead_links: Iterable[int] = (),
        aggregate_scope: bool = True,
        ecc_off: Iterable[int] = (),
        mig_instances: Mapping[int, int] | None = None,
        step: Callable[[float], None] | None = None,
        step_min_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        event_poll_s: float = 0.005,
    ) -> None:
        self.gpus: list[GpuState] = list(gpus)
        self.real_library = real_library
        self.driver_version = driver_version
        self.nvlink_links = nvlink_links
        self.dead_links = set(dead_links)
        self.aggregate_scope = aggregate_scope
        self.ecc_off = set(ecc_off)
        #: GPU index -> GPU instances created (MIG mode on and instances: remapped rows are refused)
        self.mig_instances: dict[int, int] = dict(mig_instances or {})
        self.init_error: int | None = None
        self.call_errors: dict[tuple[int, str], int] = {}
        self.raise_errors: dict[tuple[int, str], BaseException] = {}
        self.value_errors: dict[tuple[int, int], int] = {}
        #: NVML C symbols this "driver" lacks: pynvml raises FUNCTION_NOT_FOUND for them
        self.missing_functions: set[str] = set()
        self.calls = 0  # every answered library call, for tests and the benchmark
        self.init_count = 0
        self.init_flags: list[int] = []
        self._initialised = 0
        self._generation = 0
        self._devices: dict[int, tuple[int, int]] = {}  # pointer value -> (index, generation)
        self._device_structs: list[Any] = []  # kept alive so a pointer value is never reused
        self._gpm_samples: dict[int, tuple[int, float, dict[str, float]] | None] = {}
        self._gpm_buffers: list[Any] = []
        self._step = step
        self._step_min_s = step_min_s
        self._clock = clock
        self._last_step = clock()
        self._event_poll_s = event_poll_s
        self._lock = threading.Lock()

    # -- library lifecycle -----------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.nvmlInitWithFlags(0)

    def nvmlInitWithFlags(self, flags: int) -> None:
        if self.init_error is not None:
            raise _err(self.init_error)
        if self.real_library and not flags & _INIT_FLAG_NO_GPUS and all(g.lost for g in self.gpus):
            raise _err(_GPU_NOT_FOUND)
        self.init_flags.append(flags)
        self._initialised += 1
        self._generation += 1  # a re-init invalidates old handles, as the real library's do
        self.init_count += 1
        if self.real_library:
            self._devices = {}
            for i in range(len(self.gpus)):
                buf = (ctypes.c_char * 16)()  # opaque storage: its address is the handle's value
                self._device_structs.append(buf)
                self._devices[ctypes.addressof(buf)] = (i, self._generation)

    def nvmlShutdown(self) -> None:
        self._need_init()
        self._initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._need_init()
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._need_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._need_init()
        if not 0 <= index < len(self.gpus):
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].lost:
            raise _err(nv.NVML_ERROR_GPU_IS_LOST)
        if not self.real_library:
            return SimHandle(index, self._generation)
        addr = next(a for a, (i, gen) in self._devices.items() if i == index and gen == self._generation)
        return ctypes.cast(ctypes.c_void_p(addr), nv.c_nvmlDevice_t)  # a new object each call, as pynvml's

    # -- identity --------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, h: Any) -> str:
        return self._gpu(h, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, h: Any) -> str:
        return self._gpu(h, "nvmlDeviceGetName").model

    def nvmlDeviceGetSerial(self, h: Any) -> str:
        return self._gpu(h, "nvmlDeviceGetSerial").serial

    def nvmlDeviceGetPciInfo(self, h: Any) -> Any:
        g = self._gpu(h, "nvmlDeviceGetPciInfo")
        info = nv.nvmlPciInfo_t()
        info.busId = g.pci_bus_id.encode()
        return info

    def nvmlDeviceGetMigMode(self, h: Any) -> list[int]:
        g = self._gpu(h, "nvmlDeviceGetMigMode", "mig_mode")
        mode = nv.NVML_DEVICE_MIG_ENABLE if g.mig_mode else nv.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    # -- readings --------------------------------------------------------------------------

    def nvmlDeviceGetTemperature(self, h: Any, sensor: int) -> int:
        g = self._gpu(h, "nvmlDeviceGetTemperature", "temp_c")
        self._symbol("nvmlDeviceGetTemperature")
        if sensor != nv.NVML_TEMPERATURE_GPU:
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        return round(g.temp_c)

    def nvmlDeviceGetTemperatureV(self, h: Any, sensor: int, version: int = _TEMPERATURE_V1) -> int:
        g = self._gpu(h, "nvmlDeviceGetTemperatureV", "temp_c")
        self._symbol("nvmlDeviceGetTemperatureV")
        if sensor != nv.NVML_TEMPERATURE_GPU:
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        return round(g.temp_c)

    def nvmlDeviceGetTemperatureThreshold(self, h: Any, threshold: int) -> int:
        name = _THRESHOLDS.get(threshold)
        if name is None:
            self._gpu(h, "nvmlDeviceGetTemperatureThreshold")
            raise _err(nv.NVML_ERROR_NOT_SUPPORTED)
        return round(getattr(self._gpu(h, "nvmlDeviceGetTemperatureThreshold", name), name))

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        return round(self._gpu(h, "nvmlDeviceGetPowerUsage", "power_w").power_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Any) -> int:
        return round(self._gpu(h, "nvmlDeviceGetEnforcedPowerLimit", "power_limit_w").power_limit_w * 1000)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: Any) -> int:
        g = self._gpu(h, "nvmlDeviceGetPowerManagementDefaultLimit", "power_limit_default_w")
        return round(g.power_limit_default_w * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Any) -> int:
        return round(self._gpu(h, "nvmlDeviceGetTotalEnergyConsumption", "energy_j").energy_j * 1000)

    def nvmlDeviceGetClockInfo(self, h: Any, clock_type: int) -> int:
        if clock_type == nv.NVML_CLOCK_SM:
            return round(self._gpu(h, "nvmlDeviceGetClockInfo", "sm_clock_mhz").sm_clock_mhz)
        if clock_type == nv.NVML_CLOCK_MEM:
            return round(self._gpu(h, "nvmlDeviceGetClockInfo", "mem_clock_mhz").mem_clock_mhz)
        self._gpu(h, "nvmlDeviceGetClockInfo")
        raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetUtilizationRates(self, h: Any) -> nv.c_nvmlUtilization_t:
        g = self._gpu(h, "nvmlDeviceGetUtilizationRates", "util_pct", mig_hidden=True)
        u = nv.c_nvmlUtilization_t()
        u.gpu = round(g.util_pct)
        u.memory = round(g.mem_util_pct)
        return u

    def nvmlDeviceGetEncoderUtilization(self, h: Any) -> list[int]:
        g = self._gpu(h, "nvmlDeviceGetEncoderUtilization", "enc_util_pct", mig_hidden=True)
        return [round(g.enc_util_pct), 167000]

    def nvmlDeviceGetDecoderUtilization(self, h: Any) -> list[int]:
        g = self._gpu(h, "nvmlDeviceGetDecoderUtilization", "dec_util_pct", mig_hidden=True)
        return [round(g.dec_util_pct), 167000]

    def nvmlDeviceGetMemoryInfo(self, h: Any, version: int | None = None) -> Any:
        g = self._gpu(h, "nvmlDeviceGetMemoryInfo", "mem_used_bytes")
        self._symbol("nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo")
        if version:
            m = nv.c_nvmlMemory_v2_t()
            m.version = version
            m.reserved = g.mem_reserved_bytes
            m.used = g.mem_used_bytes
        else:
            # nvml.h nvmlMemory_t: v1 has no reserved field; the driver's reservation counts as used
            m = nv.c_nvmlMemory_t()
            m.used = g.mem_used_bytes + g.mem_reserved_bytes
        m.total = g.memory_total_bytes
        m.free = g.memory_total_bytes - g.mem_used_bytes - g.mem_reserved_bytes
        return m

    def nvmlDeviceGetComputeRunningProcesses(self, h: Any) -> list[Any]:
        g = self._gpu(h, "nvmlDeviceGetComputeRunningProcesses", "processes")
        if "nvmlDeviceGetComputeRunningProcesses_v3" in self.missing_functions:
            mismatch = getattr(nv, "NVMLLibraryMismatchError", None)
            if mismatch is not None:  # pynvml's unversioned wrapper over a driver without the _v3 symbol
                raise mismatch("Unversioned function called and the pyNVML version does not match the NVML lib")
            raise _err(nv.NVML_ERROR_FUNCTION_NOT_FOUND)
        share = g.mem_used_bytes // g.processes if g.processes else 0
        return [nv.nvmlFriendlyObject({"pid": 10_000 + i, "usedGpuMemory": share, "gpuInstanceId": 0xFFFFFFFF,
                                       "computeInstanceId": 0xFFFFFFFF}) for i in range(g.processes)]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Any) -> int:
        g = self._gpu(h, "nvmlDeviceGetCurrentClocksEventReasons", "clock_event_mask")
        self._symbol("nvmlDeviceGetCurrentClocksEventReasons")
        return g.clock_event_mask

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: Any) -> int:
        g = self._gpu(h, "nvmlDeviceGetCurrentClocksThrottleReasons", "clock_event_mask")
        self._symbol("nvmlDeviceGetCurrentClocksThrottleReasons")
        return g.clock_event_mask

    def nvmlDeviceGetFanSpeed(self, h: Any) -> int:
        g = self._gpu(h, "nvmlDeviceGetFanSpeed", "fan_pct")
        if g.fan_pct is None:
            raise _err(nv.NVML_ERROR_NOT_SUPPORTED)
        return round(g.fan_pct)

    def nvmlDeviceGetPerformanceState(self, h: Any) -> int:
        return self._gpu(h, "nvmlDeviceGetPerformanceState", "pstate").pstate

    def nvmlDeviceGetPcieReplayCounter(self, h: Any) -> int:
        return self._gpu(h, "nvmlDeviceGetPcieReplayCounter", "pcie_replay_total").pcie_replay_total

    def nvmlDeviceGetFieldValues(self, h: Any, field_ids: list) -> Any:
        g = self._gpu(h, "nvmlDeviceGetFieldValues")
        index = self._index(h)
        values = (nv.c_nvmlFieldValue_t * len(field_ids))()
        now_us = int(time.time() * 1e6)
        filled = 0
        for i, fid in enumerate(field_ids):
            v = values[i]
            try:
                v.fieldId, v.scopeId = fid
            except TypeError:
                v.fieldId = fid
            rc = self._field_value(index, g, v)
            if rc is None:  # untouched: no return code, no timestamp, no value
                continue
            v.nvmlReturn = rc
            v.timestamp = now_us
            filled += rc == nv.NVML_SUCCESS
        if field_ids and not filled and values[0].nvmlReturn:  # the call fails only when no value was filled
            raise _err(values[0].nvmlReturn)
        return values

    def _field_value(self, index: int, g: GpuState, v: Any) -> int | None:
        fid = v.fieldId
        injected = self.value_errors.get((index, fid))
        if injected is not None:
            return injected
        arch = architecture(g.model)
        if fid == nv.NVML_FI_DEV_NVLINK_LINK_COUNT:
            if "nvlink_tx_bytes_total" in g.unsupported or not self.nvlink_links:
                return nv.NVML_ERROR_NOT_SUPPORTED
            _put(v, _I, self.nvlink_links)
            return nv.NVML_SUCCESS
        nvlink5 = 201 <= fid <= 222
        if fid in (_NVLINK_TX, _NVLINK_RX) or nvlink5:
            name = "nvlink_rx_bytes_total" if fid in (_NVLINK_RX, 204) else "nvlink_tx_bytes_total"
            wrong_gen = (arch == "blackwell") != nvlink5 and self.real_library
            if name in g.unsupported or wrong_gen or not self.nvlink_links:  # no links: a PCIe-only GPU
                return nv.NVML_ERROR_NOT_SUPPORTED
            if nvlink5:
                total = _nvlink5(g).get(fid)
                if total is None:
                    return nv.NVML_ERROR_NOT_SUPPORTED
            else:
                total = (g.nvlink_tx_bytes_total if fid == _NVLINK_TX else g.nvlink_rx_bytes_total) // 1024  # KiB
            scope = v.scopeId
            if scope == _UINT_MAX and self.real_library:
                if not self.aggregate_scope:
                    return nv.NVML_ERROR_INVALID_ARGUMENT
                _put(v, _ULL, total)
                return nv.NVML_SUCCESS
            if scope >= self.nvlink_links:
                return nv.NVML_ERROR_INVALID_ARGUMENT
            if scope in self.dead_links:
                return nv.NVML_ERROR_NOT_SUPPORTED
            live = [link for link in range(self.nvlink_links) if link not in self.dead_links]
            # Spread the total over the live links; the first takes the remainder so the sum is exact.
            share = total // len(live)
            _put(v, _ULL, share + (total - share * len(live) if scope == live[0] else 0))
            return nv.NVML_SUCCESS
        spec = _FIELDS.get(fid)
        if spec is None:
            return nv.NVML_ERROR_INVALID_ARGUMENT
        attr, factor, vtype = spec
        if attr in g.unsupported:
            return nv.NVML_ERROR_NOT_SUPPORTED
        if fid in _MIG_HIDDEN_IDS and g.mig_mode:
            if not self.real_library or self.mig_instances.get(index, 0) > 0:
                return nv.NVML_ERROR_NOT_SUPPORTED
        if fid in _ECC_IDS and index in self.ecc_off:
            if self.real_library:
                return None
            return nv.NVML_ERROR_NOT_SUPPORTED
        value = round(float(getattr(g, attr)) * factor)
        _put(v, vtype, value, label=_D if self.real_library and fid in _MISLABELLED else None)
        return nv.NVML_SUCCESS

    # -- GPU Performance Monitoring (nvml.h: Hopper and later) ------------------------------

    def nvmlGpmQueryDeviceSupport(self, h: Any) -> Any:
        g = self._gpu(h, "nvmlGpmQueryDeviceSupport")
        self._symbol("nvmlGpmQueryDeviceSupport")
        support = nv.c_nvmlGpmSupport_t()
        support.version = nv.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = int(architecture(g.model) in ("hopper", "blackwell"))
        return support

    def nvmlGpmSampleAlloc(self) -> Any:
        self._need_init()
        buf = (ctypes.c_char * 16)()
        self._gpm_buffers.append(buf)
        self._gpm_samples[ctypes.addressof(buf)] = None
        return ctypes.cast(ctypes.c_void_p(ctypes.addressof(buf)), nv.c_nvmlGpmSample_t)

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        self._gpm_samples.pop(ctypes.cast(sample, ctypes.c_void_p).value, None)

    def nvmlGpmSampleGet(self, h: Any, sample: Any) -> Any:
        g = self._gpu(h, "nvmlGpmSampleGet")
        key = ctypes.cast(sample, ctypes.c_void_p).value
        if key not in self._gpm_samples:
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        if architecture(g.model) not in ("hopper", "blackwell"):
            raise _err(nv.NVML_ERROR_NOT_SUPPORTED)
        self._gpm_samples[key] = (self._index(h), self._clock(), gpm_activity(g))
        return sample

    def nvmlGpmMetricsGet(self, mg: Any) -> Any:
        self._need_init()
        s1 = self._gpm_samples.get(ctypes.cast(mg.sample1, ctypes.c_void_p).value)
        s2 = self._gpm_samples.get(ctypes.cast(mg.sample2, ctypes.c_void_p).value)
        if s1 is None or s2 is None or s1[0] != s2[0]:
            raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)
        dt = max(s2[1] - s1[1], 1e-9)
        mib = 1024 * 1024
        # a rate over the interval from the byte counters; a level as the mean of the two samples
        level = {k: (s1[2][k] + s2[2][k]) / 2 for k in s1[2]}
        values = {
            nv.NVML_GPM_METRIC_GRAPHICS_UTIL: level["gr"], nv.NVML_GPM_METRIC_SM_UTIL: level["sm"],
            nv.NVML_GPM_METRIC_SM_OCCUPANCY: level["occ"], nv.NVML_GPM_METRIC_ANY_TENSOR_UTIL: level["tensor"],
            nv.NVML_GPM_METRIC_DRAM_BW_UTIL: level["dram"], nv.NVML_GPM_METRIC_PCIE_TX_PER_SEC: level["pcie_mib_s"],
            nv.NVML_GPM_METRIC_PCIE_RX_PER_SEC: level["pcie_mib_s"],
            nv.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC: (s2[2]["nvl_tx"] - s1[2]["nvl_tx"]) / dt / mib,
            nv.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC: (s2[2]["nvl_rx"] - s1[2]["nvl_rx"]) / dt / mib,
        }
        for i in range(mg.numMetrics):
            m = mg.metrics[i]
            if m.metricId in values:
                m.value, m.nvmlReturn = float(values[m.metricId]), nv.NVML_SUCCESS
            else:
                m.nvmlReturn = nv.NVML_ERROR_NOT_SUPPORTED
        return mg

    # -- events ----------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> SimEventSet:
        self._need_init()
        return SimEventSet()

    def nvmlDeviceRegisterEvents(self, h: Any, event_types: int, event_set: SimEventSet) -> None:
        self._gpu(h, "nvmlDeviceRegisterEvents", "xid_total")
        if event_types & nv.nvmlEventTypeXidCriticalError:
            event_set.handles.append(self._index(h))

    def nvmlEventSetWait_v2(self, event_set: SimEventSet, timeout_ms: int) -> Any:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._need_init()
            lost = False
            for index in event_set.handles:
                g = self.gpus[index]
                with self._lock:
                    if g.xid_events:  # events that happened before a GPU was lost still come out
                        code, _ = g.xid_events.pop(0)
                        data = nv.c_nvmlEventData_t()
                        data.eventType = nv.nvmlEventTypeXidCriticalError
                        data.eventData = code
                        data.gpuInstanceId = 0xFFFFFFFF
                        data.computeInstanceId = 0xFFFFFFFF
                        if self.real_library:
                            addr = next((a for a, (i, gen) in self._devices.items()
                                         if i == index and gen == self._generation), None)
                            data.device = ctypes.cast(ctypes.c_void_p(addr), nv.c_nvmlDevice_t)
                            return data  # data.device: a new pointer object on every read
                        return _EventData(SimHandle(index, self._generation), data)
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

    def _index(self, h: Any) -> int:
        if isinstance(h, SimHandle) and not self.real_library:
            if h.generation != self._generation:
                raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)  # a handle from before a re-init
            return h.index
        if self.real_library and isinstance(h, ctypes._Pointer):  # noqa: SLF001 - ctypes' pointer base class
            found = self._devices.get(ctypes.cast(h, ctypes.c_void_p).value)
            if found is not None and found[1] == self._generation:
                return found[0]
        raise _err(nv.NVML_ERROR_INVALID_ARGUMENT)

    def _gpu(self, h: Any, fn: str, field: str | None = None, *, mig_hidden: bool = False) -> GpuState:
        self._need_init()
        self._maybe_step()
        self.calls += 1
        index = self._index(h)
        g = self.gpus[index]
        if g.lost:
            raise _err(nv.NVML_ERROR_GPU_IS_LOST)
        raised = self.raise_errors.get((index, fn))
        if raised is not None:
            raise raised
        injected = self.call_errors.get((index, fn))
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


#: The GPM model's constants (see gpm_activity): idle power as a fraction of TDP, and the SM
#: activity of a GPU whose kernels run at idle power, as a fraction of its utilization.
IDLE_POWER_FRACTION = 0.1
SM_ACTIVITY_FLOOR = 0.2


def power_fraction(power_w: Any, tdp_w: Any) -> Any:
    """Where the power sits between idle and TDP, 0 to 1: of one GPU, or of numpy arrays of them."""
    idle_w = IDLE_POWER_FRACTION * tdp_w
    return np.clip((power_w - idle_w) / np.maximum(tdp_w - idle_w, 1.0), 0.0, 1.0)


def sm_activity_pct(util_pct: Any, power_w: Any, tdp_w: Any) -> Any:
    """The GPM model's SM activity: utilization scaled by where the power sits between idle and TDP.

    Of one GPU (the simulated GPM) or of numpy arrays (the hall's gpu line writes the same model).
    """
    return util_pct * (SM_ACTIVITY_FLOOR + (1 - SM_ACTIVITY_FLOOR) * power_fraction(power_w, tdp_w))


def gpm_activity(g: GpuState) -> dict[str, float]:
    """What GPM would measure on ``g``, from its workload: a model, not a measurement.

    NVML's utilization counts time in which any kernel ran; how much of the GPU that kernel kept
    busy shows in its power. So SM activity is utilization scaled by where the power sits between
    idle (taken as 10 % of TDP) and TDP: a memory-bound or stalled job at 100 % utilization and
    low power has low SM activity. Tensor activity follows SM activity on a busy GPU, DRAM
    activity the memory-controller utilization.
    """
    power_frac = power_fraction(g.power_w, g.tdp_w)
    sm = sm_activity_pct(g.util_pct, g.power_w, g.tdp_w)
    return {
        "gr": g.util_pct, "sm": sm, "occ": sm * 0.55, "tensor": sm * 0.85 * power_frac,
        "dram": min(100.0, g.mem_util_pct * 1.1), "pcie_mib_s": g.util_pct * 40.0,
        "nvl_tx": float(g.nvlink_tx_bytes_total), "nvl_rx": float(g.nvlink_rx_bytes_total),
    }


class _EventData:
    """The tidy mode's nvmlEventSetWait answer: a c_nvmlEventData_t whose ``device`` is a SimHandle."""

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
            tdp_w=tdp_w, power_limit_w=tdp_w, power_limit_default_w=tdp_w, temp_slowdown_c=87.0,
            temp_shutdown_c=92.0, temp_max_operating_c=85.0, mem_temp_max_c=95.0,
            memory_total_bytes=80 * 1024**3, max_sm_clock_mhz=1980.0,
            util_pct=util, mem_util_pct=util / 2, power_w=power, power_instant_w=power + 3.0,
            energy_j=3.6e6 + 1000.0 * i, temp_c=45.0 + k, mem_temp_c=50.0 + k, sm_clock_mhz=1755.0,
            mem_clock_mhz=2619.0, mem_used_bytes=(40 + k) * 1024**3, mem_reserved_bytes=512 * 1024**2,
            processes=1, clock_event_mask=0, pstate=0, fan_pct=None,
            nvlink_tx_bytes_total=10**12 + i, nvlink_rx_bytes_total=2 * 10**12 + i,
        )
        gpus.append(g)
    return gpus


def node_gpus(gpus: Mapping[tuple[str, int], GpuState], node: str) -> list[GpuState]:
    """One node's GPUs from a hall's ``state.gpus``, in index order."""
    found = sorted((k[1], g) for k, g in gpus.items() if k[0] == node)
    return [g for _, g in found]
