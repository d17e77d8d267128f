"""Talks to NVML (real ``pynvml`` or the simulated backend): opens the library, finds GPUs, reads one poll.

Rules, all here:
- a value NVML cannot give (NOT_SUPPORTED, FUNCTION_NOT_FOUND, a function this nvidia-ml-py lacks,
  ``NVMLLibraryMismatchError``) is omitted, remembered per GPU and not asked again; each
  per-value ``nvmlReturn`` and ``timestamp`` of a field batch is checked, so one failed or unfilled
  value never becomes a 0, and each value is decoded by the type it really has;
- any other failure, an unexpected exception included, omits that field for this poll and counts
  an error for it; an exception outside one field omits that GPU for this poll, never the agent;
- GPU_IS_LOST marks that GPU lost and the others go on; the caller re-opens NVML with backoff;
- no library or no driver at open: DeviceError with a clear message (the caller retries).
"""

from __future__ import annotations

import ctypes
import logging
import struct
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pynvml as nv

from dcim.agents.gpu.fields import (
    CALL_READS,
    FIELD_READS,
    GPM_READS,
    INIT_FLAG_NO_GPUS,
    MIG_MODE,
    NVLINK_LINK_COUNT_ID,
    SCOPE_ALL_LINKS,
    VALUE_TYPE_UNSIGNED_SHORT,
    CallRead,
    FieldRead,
)
from dcim.errors import DeviceError, GpuLost
from dcim.record import FieldValue

log = logging.getLogger(__name__)

#: Codes that mean "this GPU will never give this value": omit it and stop asking.
UNSUPPORTED_CODES = frozenset((nv.NVML_ERROR_NOT_SUPPORTED, nv.NVML_ERROR_FUNCTION_NOT_FOUND))
#: Codes that mean the library itself is unusable: re-open NVML.
LIBRARY_CODES = frozenset((nv.NVML_ERROR_UNINITIALIZED, nv.NVML_ERROR_DRIVER_NOT_LOADED,
                           nv.NVML_ERROR_LIBRARY_NOT_FOUND, nv.NVML_ERROR_LIB_RM_VERSION_MISMATCH))
#: nvidia-ml-py raises this (not an NVMLError) when an unversioned wrapper meets a driver without
#: the versioned symbol it calls (pynvml.throwOnVersionMismatch); older releases do not have it.
LIBRARY_MISMATCH: tuple[type[BaseException], ...] = tuple(
    c for c in (getattr(nv, "NVMLLibraryMismatchError", None),) if c is not None)

_CODE_NAMES = {getattr(nv, n): n.removeprefix("NVML_ERROR_") for n in dir(nv) if n.startswith("NVML_ERROR_")}
_CODE_NAMES[nv.NVML_SUCCESS] = "SUCCESS"

# A field-value array is read in one pass with struct (pynvml's per-attribute hooks cost more than
# the library call), checked against ctypes' own layout of c_nvmlFieldValue_t.
_FV_STRUCT = struct.Struct("=IIqqII8s")
_FV_FAST = (
    ctypes.sizeof(nv.c_nvmlFieldValue_t) == _FV_STRUCT.size
    and [getattr(nv.c_nvmlFieldValue_t, f).offset for f in ("fieldId", "scopeId", "timestamp", "latencyUsec",
                                                             "valueType", "nvmlReturn", "value")]
    == [0, 4, 8, 16, 24, 28, 32]
)
_DOUBLE = nv.NVML_VALUE_TYPE_DOUBLE
_AS = {"u32": struct.Struct("=I"), "u64": struct.Struct("=Q"), "s64": struct.Struct("=q"), "f64": struct.Struct("=d")}
#: declared valueType -> how to read the union, used only for a field whose real type is a double
_DECLARED = {
    nv.NVML_VALUE_TYPE_DOUBLE: struct.Struct("=d"),
    nv.NVML_VALUE_TYPE_UNSIGNED_INT: struct.Struct("=I"),
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG: struct.Struct("=L" if ctypes.sizeof(ctypes.c_ulong) == 4 else "=Q"),
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: struct.Struct("=Q"),
    nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG: struct.Struct("=q"),
    nv.NVML_VALUE_TYPE_SIGNED_INT: struct.Struct("=i"),
    VALUE_TYPE_UNSIGNED_SHORT: struct.Struct("=H"),
}
_U64 = struct.Struct("=Q")

_ROW = {r.field: r for r in FIELD_READS}

#: Reasons a field is missing that are not NVML return codes (shown on /metrics and in records).
UNFILLED = "UNFILLED"  # nvmlReturn SUCCESS but timestamp 0: NVML left the entry untouched
NOT_IN_BINDING = "NOT_IN_BINDING"  # this nvidia-ml-py has no wrapper for the function
MISMATCH = "LIBRARY_MISMATCH"  # NVMLLibraryMismatchError


class Entry(NamedTuple):
    """One nvmlFieldValue_t as read back: return code, timestamp (us), declared type, the 8 value bytes."""

    rc: int
    timestamp_us: int
    value_type: int
    raw: bytes


def entries(raw: Any) -> list[Entry]:
    """The entries of an ``nvmlDeviceGetFieldValues`` answer (a ctypes array, or any sequence of structs)."""
    if _FV_FAST and isinstance(raw, ctypes.Array):
        return [Entry(rc, ts, vt, val) for _f, _s, ts, _l, vt, rc, val
                in _FV_STRUCT.iter_unpack(memoryview(raw).cast("B"))]
    return [Entry(v.nvmlReturn, v.timestamp, v.valueType, bytes(v.value)) for v in raw]


def decode_value(ctype: str, value_type: int, raw: bytes) -> int | float:
    """The value of one entry by its real C type ``ctype``.

    An integer field is read at its own width whatever width NVML declares (nvbug 2032468: ECC
    counters labelled with the wrong type). An integer field labelled DOUBLE (nvbug 4300930:
    NVML_FI_DEV_MEMORY_TEMP) holds integer bits when the double's exponent field is 0 (every
    integer below 2**52 is such a "subnormal"), which no real reading is; a driver that fixes the
    label and sends a true double is read as that double.
    """
    if ctype == "f64":
        return _DECLARED.get(value_type, _AS["f64"]).unpack_from(raw)[0]
    if value_type == _DOUBLE:
        bits = _U64.unpack_from(raw)[0]
        if (bits >> 52) & 0x7FF:
            return round(_AS["f64"].unpack_from(raw)[0])
        return bits
    return _AS[ctype].unpack_from(raw)[0]


def code_of(exc: BaseException) -> int:
    return int(getattr(exc, "value", nv.NVML_ERROR_UNKNOWN))


def code_name(code: int) -> str:
    return _CODE_NAMES.get(code, f"NVML error {code}")


def tag_text(value: Any, fallback: str) -> str:
    """NVML text made safe as an InfluxDB tag value and a Prometheus label.

    Rule (docs/gpu-agent.md): bytes are decoded as UTF-8 with U+FFFD for invalid sequences; a
    whitespace control character (newline, tab, CR) becomes a space and any other control
    character (NUL, ESC, ...) ``_``; surrounding whitespace and trailing backslashes are removed;
    what is left empty becomes ``fallback``.
    """
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    text = "".join((" " if ch.isspace() else "_") if unicodedata.category(ch) == "Cc" else ch for ch in text)
    text = text.strip().rstrip("\\").strip()
    return text or fallback


def handle_key(handle: Any) -> Any:
    """A key equal for every object that names the same GPU.

    nvidia-ml-py hands out a new ctypes pointer object on every call (and on every read of
    ``c_nvmlEventData_t.device``), so identity never matches; the pointer value does.
    """
    if isinstance(handle, (ctypes._Pointer, ctypes.c_void_p)):  # noqa: SLF001 - ctypes' pointer base class
        return ctypes.cast(handle, ctypes.c_void_p).value
    return handle


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
    fv_alt: dict[str, FieldRead] = field(default_factory=dict)  # field -> its fallback FieldRead, once swapped
    per_link: set[str] = field(default_factory=set)  # NVLink fields read link by link (no UINT_MAX scope)
    dead_links: dict[str, set[int]] = field(default_factory=dict)  # field -> links answering NOT_SUPPORTED
    unfilled: set[str] = field(default_factory=set)  # fields NVML left untouched in the last poll
    mig_mode: bool = False
    mig_hidden: tuple[str, ...] = ()
    nvlink_links: int | None = None  # None: not known yet
    lost: bool = False
    errors_total: int = 0
    errors_by_field: Counter = field(default_factory=Counter)
    message: str | None = None
    reported_unsupported: frozenset[str] = frozenset()
    # GPU Performance Monitoring: None unknown, else supported or not; two samples, the last one's time
    gpm: bool | None = None
    gpm_samples: list[Any] = field(default_factory=list)
    gpm_prev: Any = None
    gpm_prev_s: float = 0.0
    # the read plan, rebuilt when what is asked changes
    fv_ids: list[Any] = field(default_factory=list)
    fv_rows: list[tuple[FieldRead, int | None]] = field(default_factory=list)
    calls: list[CallRead] = field(default_factory=list)
    mode_hidden: tuple[str, ...] = ()
    planned: bool = False


@dataclass(slots=True)
class GpuReading:
    """One GPU's answer to one poll."""

    gpu: Gpu
    values: dict[str, FieldValue]
    errors: list[tuple[str, str]]  # (field, NVML code name) that failed this poll
    lost: bool = False
    hidden: list[str] = field(default_factory=list)  # fields MIG hid in this poll


class NvmlReader:
    """The NVML session: ``open``, ``read(gpu)`` for each of ``gpus``, ``reopen`` after a loss, ``close``."""

    def __init__(self, backend: Any, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.nvml = backend
        self.monotonic = monotonic
        self.gpus: list[Gpu] = []
        self.driver_version: str | None = None
        self.is_open = False
        self.broken = False  # a library-level error: re-open before the next read
        self._logged: set[tuple] = set()

    # -- session ---------------------------------------------------------------------------

    def open(self) -> None:
        """Initialise NVML and (re)discover GPUs, keeping what we know of each by UUID.

        ``nvmlInitWithFlags(NVML_INIT_FLAG_NO_GPUS)``: a node whose GPUs all fell off the bus still
        opens, so the GPUs known before show ``lost=true`` instead of vanishing.
        """
        try:
            init = getattr(self.nvml, "nvmlInitWithFlags", None)
            if init is not None:
                init(INIT_FLAG_NO_GPUS)
            else:
                self.nvml.nvmlInit()
        except nv.NVMLError as exc:
            raise DeviceError(self._init_message(code_of(exc)), device="nvml") from exc
        except OSError as exc:  # a broken libnvidia-ml.so can surface as a loader error
            raise DeviceError(f"cannot load the NVML library: {exc}", device="nvml") from exc
        except Exception as exc:  # noqa: BLE001 - whatever the binding raises, the agent must live on
            raise DeviceError(f"NVML could not start: {type(exc).__name__}: {exc}", device="nvml") from exc
        self.is_open = True
        self.broken = False
        try:
            self.driver_version = tag_text(self.nvml.nvmlSystemGetDriverVersion(), "unknown")
            count = self.nvml.nvmlDeviceGetCount()
        except Exception as exc:  # noqa: BLE001
            self.close()
            what = code_name(code_of(exc)) if isinstance(exc, nv.NVMLError) else type(exc).__name__
            raise DeviceError(f"NVML answered {what} while listing GPUs", device="nvml") from exc
        known = {g.uuid: g for g in self.gpus}
        by_index = {g.index: g for g in self.gpus}
        found: list[Gpu] = []
        for index in range(count):
            try:
                h = self.nvml.nvmlDeviceGetHandleByIndex(index)
                pci = self._pci_bus_id(h)
                uuid = tag_text(self.nvml.nvmlDeviceGetUUID(h), f"GPU-unknown-{pci or index}")
            except Exception as exc:  # noqa: BLE001 - one GPU that cannot be opened must not hide the others
                old = by_index.get(index)
                if old is not None:  # still gone: keep it, still lost
                    old.lost = True
                    old.handle = None
                    found.append(old)
                else:
                    what = code_name(code_of(exc)) if isinstance(exc, nv.NVMLError) else type(exc).__name__
                    self._log_once(("discover", index, what), logging.WARNING, "GPU %d cannot be opened: %s",
                                   index, what)
                continue
            gpu = known.get(uuid)
            if gpu is None:
                gpu = Gpu(index, uuid, tag_text(self._safe(self.nvml.nvmlDeviceGetName, h, ""), "unknown"), pci, h)
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
            for g in self.gpus:
                self._free_gpm(g)
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001, S110 - shutting down a library that went away: nothing to release
                pass
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
        except Exception as exc:  # noqa: BLE001 - one GPU's surprise must not end the poll of the others
            what = f"EXCEPTION {type(exc).__name__}"
            reading.errors.append(("*", what))
            self._log_once(("gpu", gpu.uuid, what), logging.ERROR, "GPU %d: reading failed: %s: %s",
                           gpu.index, type(exc).__name__, exc, exc_info=True)
        gpu.mig_hidden = (*gpu.mode_hidden, *reading.hidden)
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
                mig = self._extract(gpu, "mig_mode", MIG_MODE.outputs[0][1], res, reading)
                if mig is not None:
                    values["mig_mode"] = mig
                    if mig != gpu.mig_mode:
                        gpu.mig_mode = mig
                        gpu.planned = False
        if gpu.per_link and gpu.nvlink_links is None:
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
            try:
                for name, extract in spec.outputs:
                    values[name] = extract(res)
            except Exception:  # noqa: BLE001 - field by field, to cost only the fields that fail
                for name, extract in spec.outputs:
                    v = self._extract(gpu, name, extract, res, reading)
                    if v is not None:
                        values[name] = v
                    else:
                        values.pop(name, None)
            if spec.static:
                gpu.static.update((name, values[name]) for name in spec.fields if name in values)
                gpu.static_done.add(spec.key)
                gpu.planned = False
        for name, value in gpu.static.items():
            values.setdefault(name, value)
        if gpu.gpm is not False:
            self._read_gpm(gpu, reading)
        # The fleet KPI: useful work where the GPU measures it (GPM SM activity), else NVML's
        # "a kernel was running" utilization; the source is always said.
        if "sm_active_pct" in values:
            values["activity_pct"], values["activity_source"] = values["sm_active_pct"], "gpm_sm_active"
        elif "util_pct" in values:
            values["activity_pct"], values["activity_source"] = values["util_pct"], "nvml_util"

    def _extract(self, gpu: Gpu, name: str, extract: Any, res: Any, reading: GpuReading) -> Any:
        try:
            return extract(res)
        except Exception as exc:  # noqa: BLE001 - a result of an unexpected shape costs that field only
            self._error(gpu, name, f"EXCEPTION {type(exc).__name__}", reading, exc)
            return None

    def _call(self, gpu: Gpu, spec: CallRead, reading: GpuReading) -> Any:
        fn = getattr(self.nvml, spec.call, None)
        if fn is None:  # this nvidia-ml-py predates the function: as a driver without the symbol
            return self._unsupported_call(gpu, spec, NOT_IN_BINDING, reading)
        try:
            return fn(gpu.handle, *spec.args)
        except nv.NVMLError as exc:
            code = code_of(exc)
            if code == nv.NVML_ERROR_FUNCTION_NOT_FOUND:
                return self._unsupported_call(gpu, spec, code_name(code), reading)
            self._failed(gpu, spec.fields, code, reading, mig=spec.mig)
        except LIBRARY_MISMATCH:
            return self._unsupported_call(gpu, spec, MISMATCH, reading)
        except Exception as exc:  # noqa: BLE001 - whatever else the binding raises costs these fields only
            for name in spec.fields:
                self._error(gpu, name, f"EXCEPTION {type(exc).__name__}", reading, exc)
        return None

    def _unsupported_call(self, gpu: Gpu, spec: CallRead, reason: str, reading: GpuReading) -> None:
        if spec.fallback is not None and spec.key not in gpu.alt:
            gpu.alt[spec.key] = spec.fallback
            gpu.planned = False
            for name in set(spec.fields) - set(spec.fallback.fields):
                gpu.unsupported[name] = reason
            level = logging.WARNING if spec.fallback_note else logging.INFO
            log.log(level, "GPU %d: %s is not available (%s); using %s%s", gpu.index, spec.call, reason,
                    spec.fallback.source, f": {spec.fallback_note}" if spec.fallback_note else "")
            return None
        for name in spec.fields:
            gpu.unsupported[name] = reason
        gpu.planned = False
        return None

    def _read_field_values(self, gpu: Gpu, reading: GpuReading) -> None:
        try:
            got = entries(self.nvml.nvmlDeviceGetFieldValues(gpu.handle, gpu.fv_ids))
        except nv.NVMLError as exc:
            # The call fails only when no value at all was filled.
            self._failed(gpu, tuple(dict.fromkeys(r.field for r, _ in gpu.fv_rows)), code_of(exc), reading)
            return
        except Exception as exc:  # noqa: BLE001
            for name in dict.fromkeys(r.field for r, _ in gpu.fv_rows):
                self._error(gpu, name, f"EXCEPTION {type(exc).__name__}", reading, exc)
            return
        sums: dict[str, int] = {}
        incomplete: set[str] = set()
        unfilled: set[str] = set()
        values = reading.values
        for (row, scope), e in zip(gpu.fv_rows, got):
            if scope is None and e.rc == 0 and e.timestamp_us and e.value_type != _DOUBLE and row.type != "bool":
                # the common case, inline: a filled plain value with an integer label
                x = _AS[row.ctype].unpack_from(e.raw)[0] if row.ctype != "f64" else decode_value("f64", e.value_type,
                                                                                                  e.raw)
                values[row.field] = float(x) * row.scale if row.type == "float" else (
                    int(x * row.scale) if row.scale != 1 else int(x))
                continue
            try:
                self._take(gpu, row, scope, e, reading, sums, incomplete, unfilled)
            except GpuLost:
                raise
            except Exception as exc:  # noqa: BLE001 - an undecodable value costs that field only
                incomplete.add(row.field)
                self._error(gpu, row.field, f"EXCEPTION {type(exc).__name__}", reading, exc)
        # A sum with a link missing would look like a counter reset: send all links or none.
        for name, total in sums.items():
            if name not in incomplete:
                reading.values[name] = total
        if unfilled != gpu.unfilled:
            if unfilled - gpu.unfilled:
                self._log_once(("unfilled", gpu.uuid, frozenset(unfilled)), logging.INFO,
                               "GPU %d: NVML left %s unfilled (timestamp 0; e.g. ECC is off): omitted",
                               gpu.index, ", ".join(sorted(unfilled)))
            gpu.unfilled = unfilled

    def _take(self, gpu: Gpu, row: FieldRead, scope: int | None, e: Entry, reading: GpuReading,
              sums: dict[str, int], incomplete: set[str], unfilled: set[str]) -> None:
        name = row.field
        if e.rc == nv.NVML_SUCCESS and e.timestamp_us == 0:
            # NVML did not touch this entry (nvmlReturn is the zero of a fresh array): no value.
            unfilled.add(name)
            incomplete.add(name)
            return
        if e.rc != nv.NVML_SUCCESS:
            if scope == SCOPE_ALL_LINKS and e.rc in (nv.NVML_ERROR_NOT_SUPPORTED, nv.NVML_ERROR_INVALID_ARGUMENT):
                incomplete.add(name)
                if gpu.nvlink_links == 0:  # known to have no links: nothing to read link by link
                    self._failed(gpu, (name,), nv.NVML_ERROR_NOT_SUPPORTED, reading, row=row)
                    return
                # no summed read on this driver: read it link by link from the next poll on
                gpu.per_link.add(name)
                gpu.planned = False
                incomplete.add(name)
                return
            if row.links and scope is not None and e.rc == nv.NVML_ERROR_NOT_SUPPORTED:
                # a link that is not there (or not trained) never counts: leave it out of the sum for good
                dead = gpu.dead_links.setdefault(name, set())
                dead.add(scope)
                gpu.planned = False
                if gpu.nvlink_links is not None and len(dead) >= gpu.nvlink_links:
                    self._failed(gpu, (name,), e.rc, reading, row=row)
                    incomplete.add(name)
                return
            incomplete.add(name)
            if name not in {f for f, _ in reading.errors}:
                self._failed(gpu, (name,), e.rc, reading, row=row)
            return
        x = decode_value(row.ctype, e.value_type, e.raw)
        if row.links:
            sums[name] = sums.get(name, 0) + int(x * row.scale)
        elif row.type == "float":
            reading.values[name] = float(x) * row.scale
        elif row.type == "int":
            reading.values[name] = int(x * row.scale) if row.scale != 1 else int(x)
        else:
            reading.values[name] = bool(x)

    def _read_link_count(self, gpu: Gpu) -> None:
        try:
            e = entries(self.nvml.nvmlDeviceGetFieldValues(gpu.handle, [NVLINK_LINK_COUNT_ID]))[0]
            rc = e.rc
        except nv.NVMLError as exc:
            rc, e = code_of(exc), None
        if rc == nv.NVML_SUCCESS and e is not None and e.timestamp_us:
            gpu.nvlink_links = int(decode_value("u32", e.value_type, e.raw))
        elif rc == nv.NVML_ERROR_GPU_IS_LOST:
            raise GpuLost
        else:
            gpu.nvlink_links = 0
        if gpu.nvlink_links == 0:
            for name in list(gpu.per_link):
                row = gpu.fv_alt.get(name) or _ROW[name]
                if row.fallback is not None and name not in gpu.fv_alt:
                    gpu.fv_alt[name] = row.fallback
                    gpu.per_link.discard(name)
                else:
                    gpu.unsupported[name] = code_name(rc) if rc != nv.NVML_SUCCESS else "NO_LINKS"
        gpu.planned = False

    def _read_gpm(self, gpu: Gpu, reading: GpuReading) -> None:
        """GPU Performance Monitoring (nvml.h: "Hopper or newer"): metrics over two samples >100 ms apart."""
        nvml = self.nvml
        if gpu.gpm is None:
            try:
                gpu.gpm = bool(nvml.nvmlGpmQueryDeviceSupport(gpu.handle).isSupportedDevice)
                reason = "GPM_NOT_SUPPORTED"
            except nv.NVMLError as exc:
                if code_of(exc) == nv.NVML_ERROR_GPU_IS_LOST:
                    raise GpuLost from exc
                gpu.gpm, reason = False, code_name(code_of(exc))
            except Exception as exc:  # noqa: BLE001 - no GPM wrapper in this binding, or a surprise
                gpu.gpm, reason = False, NOT_IN_BINDING if isinstance(exc, AttributeError) else type(exc).__name__
            if not gpu.gpm:
                for g in GPM_READS:
                    gpu.unsupported[g.field] = reason
                return
        try:
            if not gpu.gpm_samples:
                gpu.gpm_samples = [nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()]
                gpu.gpm_prev = None
            now = self.monotonic()
            if gpu.gpm_prev is not None and now - gpu.gpm_prev_s < 0.1:
                return  # nvml.h: the two samples must be more than 100 ms apart
            current = gpu.gpm_samples[1] if gpu.gpm_prev is gpu.gpm_samples[0] else gpu.gpm_samples[0]
            nvml.nvmlGpmSampleGet(gpu.handle, current)
            prev, gpu.gpm_prev, gpu.gpm_prev_s = gpu.gpm_prev, current, now
            if prev is None:
                return  # the first sample: metrics from the next poll on
            mg = nv.c_nvmlGpmMetricsGet_t()
            mg.version = nv.NVML_GPM_METRICS_GET_VERSION
            mg.numMetrics = len(GPM_READS)
            mg.sample1, mg.sample2 = prev, current
            for i, g in enumerate(GPM_READS):
                mg.metrics[i].metricId = g.metric_id
            nvml.nvmlGpmMetricsGet(mg)
        except nv.NVMLError as exc:
            self._failed(gpu, tuple(g.field for g in GPM_READS), code_of(exc), reading)
            return
        except Exception as exc:  # noqa: BLE001
            for g in GPM_READS:
                self._error(gpu, g.field, f"EXCEPTION {type(exc).__name__}", reading, exc)
            return
        for i, g in enumerate(GPM_READS):
            m = mg.metrics[i]
            if m.nvmlReturn == nv.NVML_SUCCESS:
                reading.values[g.field] = float(m.value) * g.scale
            else:
                self._failed(gpu, (g.field,), m.nvmlReturn, reading)

    def _free_gpm(self, gpu: Gpu) -> None:
        for s in gpu.gpm_samples:
            try:
                self.nvml.nvmlGpmSampleFree(s)
            except Exception:  # noqa: BLE001, S110 - the library may already be gone with its samples
                pass
        gpu.gpm_samples, gpu.gpm_prev = [], None
        if gpu.gpm:
            gpu.gpm = None  # asked again after a re-open

    def _failed(self, gpu: Gpu, names: tuple[str, ...], code: int, reading: GpuReading, *,
                row: FieldRead | None = None, mig: str | None = None) -> None:
        if code == nv.NVML_ERROR_GPU_IS_LOST:
            raise GpuLost
        if code in LIBRARY_CODES:
            self.broken = True
            self._log_once(("library", code), logging.ERROR, "NVML answered %s; re-opening the library",
                           code_name(code))
        if code in UNSUPPORTED_CODES:
            if (row is not None and row.mig == "instances" or mig == "instances") and gpu.mig_mode:
                # nvml.h: refused only while MIG instances exist; asked again every poll
                reading.hidden.extend(n for n in names if n not in reading.hidden)
                return
            for name in names:
                fallback = row.fallback if row is not None else None
                if fallback is not None and name not in gpu.fv_alt:
                    gpu.fv_alt[name] = fallback
                    gpu.per_link.discard(name)
                    gpu.dead_links.pop(name, None)
                    log.info("GPU %d: %s is not supported; reading %s instead", gpu.index, row.source,
                             fallback.source)
                else:
                    gpu.unsupported[name] = code_name(code)
            gpu.planned = False
            return
        for name in names:
            self._error(gpu, name, code_name(code), reading)

    def _error(self, gpu: Gpu, name: str, what: str, reading: GpuReading, exc: BaseException | None = None) -> None:
        reading.errors.append((name, what))
        self._log_once(("field", gpu.uuid, name, what), logging.WARNING,
                       "GPU %d: reading %s failed: %s%s (omitted, counted)", gpu.index, name, what,
                       f": {exc}" if exc is not None else "", exc_info=exc is not None and what.startswith("EXC"))

    def _plan(self, gpu: Gpu) -> None:
        hidden = []
        ids: list[Any] = []
        rows: list[tuple[FieldRead, int | None]] = []
        for r in FIELD_READS:
            r = gpu.fv_alt.get(r.field, r)
            if r.field in gpu.unsupported:
                continue
            if gpu.mig_mode and r.mig == "mode":
                hidden.append(r.field)
                continue
            if not r.links:
                ids.append(r.field_id)
                rows.append((r, None))
            elif r.field not in gpu.per_link:
                ids.append((r.field_id, SCOPE_ALL_LINKS))
                rows.append((r, SCOPE_ALL_LINKS))
            else:
                dead = gpu.dead_links.get(r.field, set())
                for link in range(gpu.nvlink_links or 0):
                    if link not in dead:
                        ids.append((r.field_id, link))
                        rows.append((r, link))
        calls = []
        for c in CALL_READS:
            c = gpu.alt.get(c.key, c)
            if any(f in gpu.unsupported for f in c.fields) or (c.static and c.key in gpu.static_done):
                continue
            if gpu.mig_mode and c.mig == "mode":
                hidden.extend(c.fields)
                continue
            calls.append(c)
        gpu.fv_ids, gpu.fv_rows, gpu.calls = ids, rows, calls
        if tuple(hidden) != gpu.mode_hidden:
            gpu.mode_hidden = tuple(hidden)
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
        return tag_text(getattr(info, "busId", b""), "")

    @staticmethod
    def _safe(fn: Any, h: Any, default: Any) -> Any:
        try:
            return fn(h)
        except Exception:  # noqa: BLE001 - descriptive only (name, PCI id): a default does
            return default

    def _log_once(self, key: tuple, level: int, msg: str, *args: Any, exc_info: bool = False) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args, exc_info=exc_info)

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
