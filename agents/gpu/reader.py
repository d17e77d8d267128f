"""Talks to NVML (real ``pynvml`` or the simulated backend): opens the library, finds GPUs, reads one poll.

Rules the issue asks for, all here:
- a value NVML cannot give (NOT_SUPPORTED, or FUNCTION_NOT_FOUND on an older driver) is omitted,
  remembered per GPU and not asked again; each per-value ``nvmlReturn`` of a field batch is checked,
  so one failed value never becomes a 0;
- any other failure omits the field for this poll and counts an error for that field;
- GPU_IS_LOST marks that GPU lost and the others go on; the caller re-opens NVML with backoff;
- no library or no driver at open: DeviceError with a clear message (the caller retries).
"""

from __future__ import annotations

import ctypes
import logging
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pynvml as nv

from agents.gpu.fields import CALL_READS, FIELD_READS, MIG_MODE, NVLINK_LINK_COUNT_ID, CallRead, FieldRead
from dcim.errors import DeviceError
from dcim.record import FieldValue

log = logging.getLogger(__name__)

#: Codes that mean "this GPU will never give this value": omit it and stop asking.
UNSUPPORTED_CODES = frozenset((nv.NVML_ERROR_NOT_SUPPORTED, nv.NVML_ERROR_FUNCTION_NOT_FOUND))
#: Codes that mean the library itself is unusable: re-open NVML.
LIBRARY_CODES = frozenset((nv.NVML_ERROR_UNINITIALIZED, nv.NVML_ERROR_DRIVER_NOT_LOADED,
                           nv.NVML_ERROR_LIBRARY_NOT_FOUND, nv.NVML_ERROR_LIB_RM_VERSION_MISMATCH))

_CODE_NAMES = {getattr(nv, n): n.removeprefix("NVML_ERROR_") for n in dir(nv) if n.startswith("NVML_ERROR_")}
_CODE_NAMES[nv.NVML_SUCCESS] = "SUCCESS"

_VALUE_ATTR = {
    nv.NVML_VALUE_TYPE_DOUBLE: "dVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    nv.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}


# Decoding a field-value array through pynvml's Python-level attribute hooks costs more than the
# library call itself, so a ctypes array is read in one pass with struct, checked against ctypes' layout.
_FV_STRUCT = struct.Struct("=IIqqII8s")
_FV_FAST = (
    ctypes.sizeof(nv.c_nvmlFieldValue_t) == _FV_STRUCT.size
    and [getattr(nv.c_nvmlFieldValue_t, f).offset for f in ("fieldId", "scopeId", "timestamp", "latencyUsec",
                                                             "valueType", "nvmlReturn", "value")]
    == [0, 4, 8, 16, 24, 28, 32]
)
_VALUE_FMT = {
    nv.NVML_VALUE_TYPE_DOUBLE: struct.Struct("=d"),
    nv.NVML_VALUE_TYPE_UNSIGNED_INT: struct.Struct("=I"),
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG: struct.Struct("=L" if ctypes.sizeof(ctypes.c_ulong) == 4 else "=Q"),
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: struct.Struct("=Q"),
    nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG: struct.Struct("=q"),
    nv.NVML_VALUE_TYPE_SIGNED_INT: struct.Struct("=i"),
    nv.NVML_VALUE_TYPE_UNSIGNED_SHORT: struct.Struct("=H"),
}
_ULL = _VALUE_FMT[nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG]


def field_values(raw: Any) -> list[tuple[int, Any]]:
    """(nvmlReturn, value) for each entry of an nvmlDeviceGetFieldValues answer; value None unless SUCCESS."""
    if _FV_FAST and isinstance(raw, ctypes.Array):
        out = []
        for _fid, _scope, _ts, _lat, vtype, rc, val in _FV_STRUCT.iter_unpack(memoryview(raw).cast("B")):
            out.append((rc, _VALUE_FMT.get(vtype, _ULL).unpack_from(val)[0] if rc == nv.NVML_SUCCESS else None))
        return out
    return [(v.nvmlReturn, getattr(v.value, _VALUE_ATTR.get(v.valueType, "ullVal"))
             if v.nvmlReturn == nv.NVML_SUCCESS else None) for v in raw]


def code_of(exc: BaseException) -> int:
    return int(getattr(exc, "value", nv.NVML_ERROR_UNKNOWN))


def code_name(code: int) -> str:
    return _CODE_NAMES.get(code, f"NVML error {code}")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class GpuLost(Exception):
    """Raised inside a read when NVML answers GPU_IS_LOST; never leaves this module."""


@dataclass(slots=True, eq=False)
class Gpu:
    """One GPU as the agent knows it; survives NVML re-inits (matched by UUID)."""

    index: int
    uuid: str
    model: str
    pci_bus_id: str
    handle: Any
    unsupported: dict[str, str] = field(default_factory=dict)  # field -> NVML code name
    static: dict[str, FieldValue] = field(default_factory=dict)
    static_done: set[str] = field(default_factory=set)  # CallRead keys read once already
    alt: dict[str, CallRead] = field(default_factory=dict)  # CallRead key -> its fallback, once swapped
    mig_mode: bool = False
    mig_hidden: tuple[str, ...] = ()
    nvlink_links: int | None = None  # None: not known yet
    lost: bool = False
    errors_total: int = 0
    errors_by_field: Counter = field(default_factory=Counter)
    message: str | None = None
    reported_unsupported: frozenset[str] = frozenset()
    # the read plan, rebuilt when what is asked changes
    fv_ids: list[Any] = field(default_factory=list)
    fv_rows: list[FieldRead] = field(default_factory=list)
    calls: list[CallRead] = field(default_factory=list)
    planned: bool = False


@dataclass(slots=True)
class GpuReading:
    """One GPU's answer to one poll."""

    gpu: Gpu
    values: dict[str, FieldValue]
    errors: list[tuple[str, str]]  # (field, NVML code name) that failed this poll
    lost: bool = False


class NvmlReader:
    """The NVML session: ``open``, ``read(gpu)`` for each of ``gpus``, ``reopen`` after a loss, ``close``."""

    def __init__(self, backend: Any) -> None:
        self.nvml = backend
        self.gpus: list[Gpu] = []
        self.driver_version: str | None = None
        self.is_open = False
        self.broken = False  # a library-level error: re-open before the next read
        self._logged: set[tuple] = set()

    # -- session ---------------------------------------------------------------------------

    def open(self) -> None:
        """Initialise NVML and (re)discover GPUs, keeping what we know of each by UUID."""
        try:
            self.nvml.nvmlInit()
        except nv.NVMLError as exc:
            raise DeviceError(self._init_message(code_of(exc)), device="nvml") from exc
        except OSError as exc:  # a broken libnvidia-ml.so can surface as a loader error
            raise DeviceError(f"cannot load the NVML library: {exc}", device="nvml") from exc
        self.is_open = True
        self.broken = False
        try:
            self.driver_version = _text(self.nvml.nvmlSystemGetDriverVersion())
            count = self.nvml.nvmlDeviceGetCount()
        except nv.NVMLError as exc:
            self.close()
            raise DeviceError(f"NVML answered {code_name(code_of(exc))} while listing GPUs",
                              device="nvml") from exc
        known = {g.uuid: g for g in self.gpus}
        by_index = {g.index: g for g in self.gpus}
        found: list[Gpu] = []
        for index in range(count):
            try:
                h = self.nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(self.nvml.nvmlDeviceGetUUID(h))
            except nv.NVMLError as exc:
                old = by_index.get(index)
                if old is not None:  # still gone: keep it, still lost
                    old.lost = True
                    old.handle = None
                    found.append(old)
                else:
                    self._log_once(("discover", index, code_of(exc)), logging.WARNING,
                                   "GPU %d cannot be opened: %s", index, code_name(code_of(exc)))
                continue
            gpu = known.get(uuid)
            if gpu is None:
                gpu = Gpu(index, uuid, self._safe(self.nvml.nvmlDeviceGetName, h, "unknown"),
                          self._pci_bus_id(h), h)
            else:
                if gpu.lost:
                    log.warning("GPU %d (%s) is back after NVML re-init", index, uuid)
                gpu.handle, gpu.index, gpu.lost = h, index, False
            gpu.planned = False
            found.append(gpu)
        # A GPU known before but not enumerated now stays in the list, lost.
        found_ids = {g.uuid for g in found}
        for g in self.gpus:
            if g.uuid not in found_ids:
                g.lost, g.handle = True, None
                found.append(g)
        self.gpus = sorted(found, key=lambda g: g.index)

    def close(self) -> None:
        if self.is_open:
            try:
                self.nvml.nvmlShutdown()
            except nv.NVMLError:
                pass  # shutting down a library that went away: nothing left to release
        self.is_open = False

    def reopen(self) -> None:
        self.close()
        self.open()

    @property
    def needs_reopen(self) -> bool:
        return self.broken or not self.is_open or any(g.lost for g in self.gpus)

    # -- one poll --------------------------------------------------------------------------

    def read(self, gpu: Gpu) -> GpuReading:
        reading = GpuReading(gpu, {}, [])
        if gpu.lost or gpu.handle is None or self.broken:
            reading.lost = gpu.lost
            return reading
        try:
            self._read(gpu, reading)
        except GpuLost:
            if not gpu.lost:
                log.error("GPU %d (%s) fell off the bus (GPU_IS_LOST); re-opening NVML with backoff",
                          gpu.index, gpu.uuid)
            gpu.lost = True
            gpu.message = "GPU is lost (fell off the bus)"
            reading.values.clear()
            reading.lost = True
        if reading.errors:
            gpu.errors_total += len(reading.errors)
            gpu.errors_by_field.update(f for f, _ in reading.errors)
            gpu.message = "; ".join(f"{f}: {c}" for f, c in reading.errors)
        elif not reading.lost:
            gpu.message = None
        self._report_unsupported(gpu)
        return reading

    def _read(self, gpu: Gpu, reading: GpuReading) -> None:
        values = reading.values
        if "mig_mode" not in gpu.unsupported:
            res = self._call(gpu, MIG_MODE, reading)
            if res is not None:
                mig = MIG_MODE.outputs[0][1](res)
                values["mig_mode"] = mig
                if mig != gpu.mig_mode:
                    gpu.mig_mode = mig
                    gpu.planned = False
        if gpu.nvlink_links is None and not {"nvlink_tx_bytes_total", "nvlink_rx_bytes_total"} <= gpu.unsupported.keys():
            self._read_link_count(gpu)
        if not gpu.planned:
            self._plan(gpu)
        if gpu.fv_ids:
            self._read_field_values(gpu, reading)
        for spec in list(gpu.calls):
            res = self._call(gpu, spec, reading)
            if res is None and spec.key in gpu.alt and gpu.alt[spec.key] not in gpu.calls:
                spec = gpu.alt[spec.key]  # swapped just now: read it through the fallback this poll too
                res = self._call(gpu, spec, reading)
            if res is None:
                continue
            for name, extract in spec.outputs:
                values[name] = extract(res)
            if spec.static:
                gpu.static.update((name, values[name]) for name in spec.fields)
                gpu.static_done.add(spec.key)
                gpu.planned = False
        for name, value in gpu.static.items():
            values.setdefault(name, value)

    def _call(self, gpu: Gpu, spec: CallRead, reading: GpuReading) -> Any:
        try:
            return getattr(self.nvml, spec.call)(gpu.handle, *spec.args)
        except nv.NVMLError as exc:
            code = code_of(exc)
            if code == nv.NVML_ERROR_FUNCTION_NOT_FOUND and spec.fallback is not None and spec.key not in gpu.alt:
                gpu.alt[spec.key] = spec.fallback
                gpu.planned = False
                for name in set(spec.fields) - set(spec.fallback.fields):
                    gpu.unsupported[name] = code_name(code)
                log.info("GPU %d: the driver lacks %s; using %s", gpu.index, spec.call, spec.fallback.source)
                return None
            self._failed(gpu, spec.fields, code, reading)
            return None

    def _read_field_values(self, gpu: Gpu, reading: GpuReading) -> None:
        try:
            raw = self.nvml.nvmlDeviceGetFieldValues(gpu.handle, gpu.fv_ids)
        except nv.NVMLError as exc:
            # The call fails only when no value at all was filled.
            self._failed(gpu, tuple(dict.fromkeys(r.field for r in gpu.fv_rows)), code_of(exc), reading)
            return
        sums: dict[str, int] = {}
        bad_links: set[str] = set()
        for row, (rc, x) in zip(gpu.fv_rows, field_values(raw)):
            if rc != nv.NVML_SUCCESS:
                if row.field not in bad_links:
                    bad_links.add(row.field)
                    self._failed(gpu, (row.field,), rc, reading)
                continue
            if row.per_link:
                sums[row.field] = sums.get(row.field, 0) + int(x)
            elif row.type == "float":
                reading.values[row.field] = float(x) * row.scale
            elif row.type == "int":
                reading.values[row.field] = int(x * row.scale) if row.scale != 1 else int(x)
            else:
                reading.values[row.field] = bool(x)
        # A sum with a link missing would look like a counter reset: send all links or none.
        for name, total in sums.items():
            if name not in bad_links:
                reading.values[name] = total * 1024

    def _read_link_count(self, gpu: Gpu) -> None:
        try:
            rc, x = field_values(self.nvml.nvmlDeviceGetFieldValues(gpu.handle, [NVLINK_LINK_COUNT_ID]))[0]
        except nv.NVMLError as exc:
            rc = code_of(exc)
        if rc == nv.NVML_SUCCESS:
            gpu.nvlink_links = int(x)
        elif rc == nv.NVML_ERROR_GPU_IS_LOST:
            raise GpuLost
        elif rc in UNSUPPORTED_CODES:
            gpu.nvlink_links = 0
        if gpu.nvlink_links == 0:
            for name in ("nvlink_tx_bytes_total", "nvlink_rx_bytes_total"):
                gpu.unsupported[name] = code_name(rc) if rc != nv.NVML_SUCCESS else "NO_LINKS"
        gpu.planned = False

    def _failed(self, gpu: Gpu, names: tuple[str, ...], code: int, reading: GpuReading) -> None:
        if code == nv.NVML_ERROR_GPU_IS_LOST:
            raise GpuLost
        if code in LIBRARY_CODES:
            self.broken = True
            self._log_once(("library", code), logging.ERROR, "NVML answered %s; re-opening the library",
                           code_name(code))
        if code in UNSUPPORTED_CODES:
            for name in names:
                gpu.unsupported[name] = code_name(code)
            gpu.planned = False
            return
        for name in names:
            reading.errors.append((name, code_name(code)))
            self._log_once(("field", gpu.uuid, name, code), logging.WARNING,
                           "GPU %d: reading %s failed: %s (omitted, counted)", gpu.index, name, code_name(code))

    def _plan(self, gpu: Gpu) -> None:
        hidden = []
        ids: list[Any] = []
        rows: list[FieldRead] = []
        for r in FIELD_READS:
            if r.field in gpu.unsupported:
                continue
            if gpu.mig_mode and r.mig_hidden:
                hidden.append(r.field)
                continue
            if r.per_link:
                for link in range(gpu.nvlink_links or 0):
                    ids.append((r.field_id, link))
                    rows.append(r)
            else:
                ids.append(r.field_id)
                rows.append(r)
        calls = []
        for c in CALL_READS:
            c = gpu.alt.get(c.key, c)
            if any(f in gpu.unsupported for f in c.fields) or (c.static and c.key in gpu.static_done):
                continue
            if gpu.mig_mode and c.mig_hidden:
                hidden.extend(c.fields)
                continue
            calls.append(c)
        gpu.fv_ids, gpu.fv_rows, gpu.calls = ids, rows, calls
        if tuple(hidden) != gpu.mig_hidden:
            gpu.mig_hidden = tuple(hidden)
            if hidden:
                log.warning("GPU %d (%s) is in MIG mode, which hides: %s", gpu.index, gpu.uuid, ", ".join(hidden))
        gpu.planned = True

    def _report_unsupported(self, gpu: Gpu) -> None:
        now = frozenset(gpu.unsupported)
        if now != gpu.reported_unsupported:
            new = sorted(now - gpu.reported_unsupported)
            gpu.reported_unsupported = now
            if new:
                log.info("GPU %d (%s, %s) does not support: %s (omitted, not asked again)", gpu.index,
                         gpu.uuid, gpu.model, ", ".join(new))

    # -- helpers ---------------------------------------------------------------------------

    def _pci_bus_id(self, h: Any) -> str:
        info = self._safe(self.nvml.nvmlDeviceGetPciInfo, h, None)
        if info is None:
            return ""
        return _text(getattr(info, "busId", ""))

    @staticmethod
    def _safe(fn: Any, h: Any, default: Any) -> Any:
        try:
            return _text(fn(h)) if default is not None else fn(h)
        except nv.NVMLError:
            return default

    def _log_once(self, key: tuple, level: int, msg: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args)

    @staticmethod
    def _init_message(code: int) -> str:
        if code == nv.NVML_ERROR_LIBRARY_NOT_FOUND:
            return "the NVML library (libnvidia-ml.so.1) was not found: is the NVIDIA driver installed?"
        if code == nv.NVML_ERROR_DRIVER_NOT_LOADED:
            return "the NVIDIA kernel driver is not loaded (NVML DRIVER_NOT_LOADED)"
        if code == nv.NVML_ERROR_NO_PERMISSION:
            return "no permission to open the NVIDIA devices (NVML NO_PERMISSION)"
        if code == nv.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
            return "the NVML library and the kernel driver versions differ (reboot or reload the driver)"
        return f"NVML could not start: {code_name(code)}"
