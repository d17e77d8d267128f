"""What the GPU agent reads, built from the GPU field table (``dcim.gpu_fields``): NVML source, real
value type, unit conversion.

Two kinds of reads. ``FieldRead``: one value of the batched ``nvmlDeviceGetFieldValues`` call, whose
own ``nvmlReturn`` and ``timestamp`` are checked per value and whose bits are decoded by the type
the value really has (``ctype``), not by the type NVML declares for it (see ``reader.decode_value``).
``CallRead``: one NVML function whose result gives one or more fields. ``static`` rows are read once
per GPU (limits); ``mig`` says what MIG hides: ``"mode"`` (NVML refuses while MIG mode is on) or
``"instances"`` (NVML refuses only while GPU instances exist).

Constants that older nvidia-ml-py releases lack are taken from NVML's header (nvml.h) by value,
so the agent imports on the lowest nvidia-ml-py that pyproject.toml allows.

A new field is a new row in ``dcim.gpu_fields``, nothing else.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pynvml as nv

from dcim import gpu_fields as table

Extract = Callable[[Any], Any]
CType = table.CType
Mig = table.Mig


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


def _extract(take: str, scale: float, type_: str) -> Extract:
    """The function that turns an NVML call's result into one field's value (``Call.take``).

    Built once per row and run on every poll: each is one small function, as if written by hand.
    """
    if take.startswith("&"):
        mask = int(take[1:], 0)
        return lambda v: bool(int(v) & mask)
    if take.startswith("="):
        const = int(take[1:])
        return lambda v: const
    if take == "len":
        return len
    conv: Callable[[Any], Any] = {"float": float, "int": int, "bool": lambda v: bool(int(v))}[type_]
    if scale != 1:
        divisor = round(1 / scale)
        if scale < 1 and abs(divisor * scale - 1) < 1e-12:  # mW -> W as int / 1000: exact where x 1e-3 is not
            if take:
                msg = f"a scaled call value is the call's result itself, got take {take!r}"
                raise ValueError(msg)
            return lambda v: int(v) / divisor
        return lambda v: conv(v) * scale
    if take == "":
        return conv
    if take.startswith("."):
        get = operator.attrgetter(take[1:])
    elif take.startswith("[") and take.endswith("]"):
        get = operator.itemgetter(int(take[1:-1]))
    else:
        msg = f"unknown take {take!r}"
        raise ValueError(msg)
    return lambda v: conv(get(v))


def _source(c: table.Call, takes: list[str]) -> str:
    short = [a.removeprefix("NVML_TEMPERATURE_THRESHOLD_") for a in c.args]
    args = f"({', '.join(short)})" if c.args else ""
    parts = [t for t in takes if t.startswith(".")]
    return c.call + args + (f" ({', '.join(parts)})" if parts else "")


def _call_reads(rows: list[table.GpuField]) -> list[CallRead]:
    """One CallRead per NVML call (function + args), its fields in table order."""
    groups: dict[tuple[str, tuple[str, ...]], list[table.GpuField]] = {}
    for r in rows:
        groups.setdefault((r.read.call, r.read.args), []).append(r)
    out = []
    for members in groups.values():
        first: table.Call = members[0].read
        fb_rows = [r for r in members if r.read.fallback is not None]
        fallback = None
        if fb_rows:
            fb: table.Call = fb_rows[0].read.fallback
            fallback = CallRead(fb.call, tuple(getattr(nv, a) for a in fb.args),
                                tuple((r.name, _extract(r.read.fallback.take, r.read.fallback.scale, r.type))
                                      for r in fb_rows),
                                _source(fb, [r.read.fallback.take for r in fb_rows]), fb.unit)
        out.append(CallRead(first.call, tuple(getattr(nv, a) for a in first.args),
                            tuple((r.name, _extract(r.read.take, r.read.scale, r.type)) for r in members),
                            _source(first, [r.read.take for r in members]), first.unit, first.static, first.mig,
                            fallback, first.note if fallback is not None else ""))
    return out


def _field_read(row: table.GpuField, f: table.FieldId) -> FieldRead:
    fallback = None if f.fallback is None else _field_read(row, f.fallback)
    return FieldRead(row.name, nvml_const(f.name, f.id), f.name, f.unit, f.ctype, f.scale, row.type, f.links,
                     mig=f.mig, fallback=fallback)


#: NVML_FI_DEV_NVLINK_LINK_COUNT, read only when a summed NVLink read must fall back to one read per link.
NVLINK_LINK_COUNT_ID = nv.NVML_FI_DEV_NVLINK_LINK_COUNT

FIELD_READS: tuple[FieldRead, ...] = tuple(
    _field_read(r, r.read) for r in table.GPU_FIELDS if isinstance(r.read, table.FieldId))

_CALLS = _call_reads([r for r in table.GPU_FIELDS if isinstance(r.read, table.Call)])
#: MIG mode is read first on every poll: it decides which rows are asked.
MIG_MODE: CallRead = next(c for c in _CALLS if c.call == "nvmlDeviceGetMigMode")
CALL_READS: tuple[CallRead, ...] = tuple(c for c in _CALLS if c is not MIG_MODE)


@dataclass(frozen=True, slots=True)
class GpmRead:
    """One GPU Performance Monitoring metric (``nvmlGpmMetricsGet``, Hopper and later)."""

    field: str
    metric_id: int
    source: str
    unit: str
    scale: float  # NVML's value -> schema unit


#: nvml.h NVML_GPM_METRIC_*; dcgm-exporter's names for the same quantities are in the table's metrics.
GPM_READS: tuple[GpmRead, ...] = tuple(
    GpmRead(r.name, getattr(nv, r.read.name), r.read.name, r.read.unit, r.read.scale)
    for r in table.GPU_FIELDS if isinstance(r.read, table.Gpm))

#: Fields the agent computes itself (XID waiter, lost state, the activity KPI), not read per poll.
AGENT_FIELDS: tuple[str, ...] = tuple(r.name for r in table.GPU_FIELDS if isinstance(r.read, table.Agent))


def all_read_fields() -> list[str]:
    """Every schema field the table reads, in table order (field values, calls, MIG, GPM)."""
    fields = [r.field for r in FIELD_READS] + [f for c in CALL_READS for f in c.fields] + list(MIG_MODE.fields)
    return list(dict.fromkeys(fields)) + [g.field for g in GPM_READS]
