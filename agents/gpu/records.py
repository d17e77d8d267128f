"""Turn one poll's readings into records (pure: no NVML, no clock): gpu, gpu_xid and agent health."""

from __future__ import annotations

from collections.abc import Mapping

from dcim.agents.gpu.reader import GpuReading
from dcim.agents.gpu.xid import XidSummary
from dcim.record import FieldValue, Record
from dcim.schema import AGENT, GPU, GPU_XID

COMPONENT = "gpu"


def gpu_tags(base: Mapping[str, str], reading: GpuReading) -> dict[str, str]:
    g = reading.gpu
    tags = {**base, "gpu": str(g.index), "uuid": g.uuid}
    if g.model:
        tags["model"] = g.model
    return tags


def gpu_records(base: Mapping[str, str], reading: GpuReading, xid: XidSummary | None, xid_supported: bool,
                time_ns: int) -> list[Record]:
    """The gpu record of one GPU (plus one gpu_xid record per XID code seen)."""
    tags = gpu_tags(base, reading)
    fields: dict[str, FieldValue] = dict(reading.values)
    fields["lost"] = reading.lost
    out = []
    if xid is not None and xid_supported:
        # 0 is a real count here: the waiter is registered and has seen nothing.
        fields["xid_total"] = xid.total
    if xid is not None and xid.last_code is not None:
        fields["xid_last"] = xid.last_code
        fields["xid_last_time_s"] = xid.last_time_s
    out.append(Record(GPU.name, tags, fields, time_ns))
    if xid is not None:
        for code, (count, last_s) in sorted(xid.per_code.items()):
            xtags = {k: v for k, v in tags.items() if k in GPU_XID.tags}
            xtags["xid"] = str(code)
            out.append(Record(GPU_XID.name, xtags, {"count_total": count, "last_time_s": last_s}, time_ns))
    return out


def gpu_health_record(base: Mapping[str, str], reading: GpuReading, time_ns: int) -> Record:
    """The agent record for one GPU: up, lost, errors, which fields it lacks."""
    g = reading.gpu
    tags = {k: v for k, v in base.items() if k in AGENT.tags}
    tags.update(component=COMPONENT, device=g.uuid, gpu=str(g.index))
    fields: dict[str, FieldValue] = {
        "up": not reading.lost and bool(reading.values),
        "lost": reading.lost,
        "errors_total": g.errors_total,
    }
    unsupported = sorted(set(g.unsupported) | g.unfilled)
    if unsupported:
        fields["unsupported_fields"] = ",".join(unsupported)
    message = g.message
    if g.mig_hidden:
        mig = "MIG mode hides " + ",".join(g.mig_hidden)
        message = f"{message}; {mig}" if message else mig
    if message:
        fields["message"] = message
    return Record(AGENT.name, tags, fields, time_ns)


def agent_record(base: Mapping[str, str], *, up: bool, poll_duration_s: float, errors_total: int,
                 queue_depth: int | None, dropped_total: int | None, message: str | None, time_ns: int) -> Record:
    """The agent's own health record (one per poll)."""
    tags = {k: v for k, v in base.items() if k in AGENT.tags}
    tags["component"] = COMPONENT
    fields: dict[str, FieldValue] = {"up": up, "poll_duration_s": poll_duration_s, "errors_total": errors_total}
    if queue_depth is not None:
        fields["queue_depth"] = queue_depth
    if dropped_total is not None:
        fields["dropped_total"] = dropped_total
    if message:
        fields["message"] = message
    return Record(AGENT.name, tags, fields, time_ns)
