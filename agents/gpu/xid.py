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

from agents.gpu.reader import Gpu, _text, code_name, code_of

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
        self._uuids: dict[int, str] = {}  # id(handle) -> uuid, for backends whose handles hash by identity

    def start(self, gpus: list[Gpu]) -> None:
        self._uuids = {}  # handles from before a re-init are gone; their ids may be reused
        try:
            self._set = self.nvml.nvmlEventSetCreate()
        except nv.NVMLError as exc:
            log.warning("XID events unavailable: nvmlEventSetCreate answered %s", code_name(code_of(exc)))
            for g in gpus:
                self.store.supported[g.uuid] = False
            return
        registered = 0
        for g in gpus:
            if g.lost or g.handle is None:
                continue
            try:
                self.nvml.nvmlDeviceRegisterEvents(g.handle, nv.nvmlEventTypeXidCriticalError, self._set)
            except nv.NVMLError as exc:
                self.store.supported[g.uuid] = False
                log.warning("GPU %d: XID events not available (%s)", g.index, code_name(code_of(exc)))
                continue
            self.store.supported[g.uuid] = True
            self._uuids[id(g.handle)] = g.uuid
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
            except nv.NVMLError:
                pass  # the library may already be gone; nothing else holds the set
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
            if not data.eventType & nv.nvmlEventTypeXidCriticalError:
                continue
            uuid = self._uuids.get(id(data.device))
            if uuid is None:
                try:
                    uuid = _text(self.nvml.nvmlDeviceGetUUID(data.device))
                except nv.NVMLError:
                    uuid = "unknown"
            code = int(data.eventData)
            self.store.record(uuid, code, self.clock())
            log.warning("XID %d on GPU %s", code, uuid)
