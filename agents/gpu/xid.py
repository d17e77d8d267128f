"""XID errors: a background thread waits on an NVML event set and counts every XID per GPU and code.

dcgm-exporter keeps only the last code, so an XID that repeats is invisible there; here every
event counts. The wait has a timeout so the thread notices ``stop()``. Counts live in ``XidStore``,
which outlives NVML re-inits. The event carries no time, so the time of receipt is recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pynvml as nv

from dcim.agents.gpu.reader import Gpu, code_name, code_of, handle_key, tag_text

log = logging.getLogger(__name__)


@dataclass(slots=True)
class XidSummary:
    total: int
    last_code: int | None
    last_time_s: float | None
    per_code: dict[int, tuple[int, float]]  # code -> (count, last time s)


class XidStore:
    """Thread-safe XID counts per GPU UUID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_gpu: dict[str, dict[int, list]] = {}
        self._last: dict[str, tuple[int, float]] = {}
        self.supported: dict[str, bool] = {}  # uuid -> events could be registered

    def record(self, uuid: str, code: int, time_s: float) -> None:
        with self._lock:
            entry = self._per_gpu.setdefault(uuid, {}).setdefault(code, [0, 0.0])
            entry[0] += 1
            entry[1] = time_s
            self._last[uuid] = (code, time_s)

    def summary(self, uuid: str) -> XidSummary:
        with self._lock:
            codes = {c: (e[0], e[1]) for c, e in self._per_gpu.get(uuid, {}).items()}
            last = self._last.get(uuid)
        return XidSummary(sum(n for n, _ in codes.values()), last[0] if last else None,
                          last[1] if last else None, codes)


class XidWatcher:
    """Registers the GPUs for XID events and runs the waiting thread until ``stop()``."""

    def __init__(self, backend: Any, store: XidStore, *, timeout_ms: int = 500,
                 clock: Callable[[], float] = time.time) -> None:
        self.nvml = backend
        self.store = store
        self.timeout_ms = timeout_ms
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._set: Any = None
        self._uuids: dict[Any, str] = {}  # handle_key(handle) -> uuid: the pointer value, not the object

    def start(self, gpus: list[Gpu]) -> None:
        self._uuids = {}  # handles from before a re-init are gone; their ids may be reused
        try:
            self._set = self.nvml.nvmlEventSetCreate()
        except Exception as exc:  # noqa: BLE001 - no XID events is a reported gap, not a crash
            what = code_name(code_of(exc)) if isinstance(exc, nv.NVMLError) else type(exc).__name__
            log.warning("XID events unavailable: nvmlEventSetCreate answered %s", what)
            for g in gpus:
                self.store.supported[g.uuid] = False
            return
        registered = 0
        for g in gpus:
            if g.lost or g.handle is None:
                continue
            try:
                self.nvml.nvmlDeviceRegisterEvents(g.handle, nv.nvmlEventTypeXidCriticalError, self._set)
            except Exception as exc:  # noqa: BLE001
                self.store.supported[g.uuid] = False
                what = code_name(code_of(exc)) if isinstance(exc, nv.NVMLError) else type(exc).__name__
                log.warning("GPU %d: XID events not available (%s)", g.index, what)
                continue
            self.store.supported[g.uuid] = True
            self._uuids[handle_key(g.handle)] = g.uuid
            registered += 1
        if registered:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gpu-xid", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_ms / 1000 * 4 + 1)
            self._thread = None
        if self._set is not None:
            try:
                self.nvml.nvmlEventSetFree(self._set)
            except Exception:  # noqa: BLE001, S110 - the library may already be gone; nothing else holds the set
                pass
            self._set = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.nvml.nvmlEventSetWait_v2(self._set, self.timeout_ms)
            except nv.NVMLError as exc:
                code = code_of(exc)
                if code != nv.NVML_ERROR_TIMEOUT:
                    # A lost GPU or a broken library: the poll loop re-opens NVML and restarts us.
                    self._stop.wait(self.timeout_ms / 1000)
                continue
            except Exception:  # noqa: BLE001 - the waiter thread must outlive any surprise of the binding
                log.exception("XID wait failed; retrying")
                self._stop.wait(self.timeout_ms / 1000)
                continue
            if not data.eventType & nv.nvmlEventTypeXidCriticalError:
                continue
            # data.device is a new ctypes object on every read: match by pointer value, which
            # needs no NVML call (after an XID 79 every call on that GPU fails)
            uuid = self._uuids.get(handle_key(data.device))
            if uuid is None:
                try:
                    uuid = tag_text(self.nvml.nvmlDeviceGetUUID(data.device), "unknown")
                except Exception:  # noqa: BLE001 - an event of a GPU we cannot name still counts
                    uuid = "unknown"
            code = int(data.eventData)
            self.store.record(uuid, code, self.clock())
            log.warning("XID %d on GPU %s", code, uuid)
