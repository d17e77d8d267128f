"""Replay: run a recording through the alert engine on event time and render the alert timeline.

The engine never reads the wall clock, so replaying the same recording through the same rules
gives the same transitions; the timeline text and JSON lines are rendered from plain values only,
which makes them byte-identical run after run. ``speed`` paces the replay against an injected
clock (Kapacitor's ``-real-clock``); without it the replay runs as fast as the machine allows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dcim.record import Record

from dcim.alerts.recording import Block, format_time

#: Label order in a rendered location, outermost first; other labels follow alphabetically.
LOCATION_ORDER = ("site", "room", "row", "rack", "loop", "cdu", "pdu", "feed", "phase", "node", "gpu")
_NOT_LOCATION = frozenset({"alertname", "severity", "uuid"})


class AlertEngine(Protocol):
    """What replay needs of the engine (alerts.engine.Engine)."""

    def process(self, records: Sequence[Record]) -> list[Any]: ...

    def advance(self, time_ns: int) -> list[Any]: ...


@dataclass(slots=True)
class ReplayStats:
    """What went through the engine."""

    records: int = 0
    field_values: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    wall_s: float = 0.0


@dataclass(slots=True)
class ReplayResult:
    transitions: list[Any] = field(default_factory=list)
    stats: ReplayStats = field(default_factory=ReplayStats)


@dataclass(slots=True)
class Pacer:
    """Holds the replay back to ``speed`` times event time, against an injected clock and sleep."""

    speed: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _origin_wall: float | None = None
    _origin_ns: int | None = None

    def wait_until(self, time_ns: int) -> None:
        if self._origin_wall is None:
            self._origin_wall, self._origin_ns = self.clock(), time_ns
            return
        due = self._origin_wall + (time_ns - self._origin_ns) / 1e9 / self.speed  # type: ignore[operator]
        delay = due - self.clock()
        if delay > 0:
            self.sleep(delay)


def _time_slices(batch: list[Record]) -> Iterator[list[Record]]:
    """A time-ordered batch cut where the timestamp changes (only needed when pacing)."""
    start = 0
    for i in range(1, len(batch)):
        if batch[i].time_ns != batch[i - 1].time_ns:
            yield batch[start:i]
            start = i
    if batch:
        yield batch[start:]


def replay(batches: Iterable[list[Record] | Block], engine: AlertEngine, *, end_ns: int | None = None,
           pacer: Pacer | None = None, progress: Callable[[int], None] | None = None,
           clock: Callable[[], float] = time.perf_counter) -> ReplayResult:
    """Feed time-ordered batches to the engine, then advance it to ``end_ns`` (or the last record).

    A batch is a list of records or a columnar ``Block`` (``RecordingReader.blocks()``), which
    goes to the engine's ``process_block`` when it has one.

    ``progress`` is called with the event time reached after each batch.
    """
    result = ReplayResult()
    stats = result.stats
    out = result.transitions
    t0 = clock()
    for batch in batches:
        if not batch:
            continue
        if isinstance(batch, Block):
            # a columnar block goes in as it was stored, when the engine takes one
            process_block = getattr(engine, "process_block", None)
            if process_block is not None and pacer is None:
                if stats.first_ns is None:
                    stats.first_ns = batch.times[0]
                stats.records += len(batch)
                stats.field_values += batch.field_values
                out.extend(process_block(batch))
                stats.last_ns = batch.times[-1]
                if progress is not None:
                    progress(stats.last_ns)
                continue
            batch = batch.records()
        if stats.first_ns is None:
            stats.first_ns = batch[0].time_ns
        stats.records += len(batch)
        stats.field_values += sum(len(r.fields) for r in batch)
        if pacer is None:
            out.extend(engine.process(batch))
        else:
            for piece in _time_slices(batch):
                pacer.wait_until(piece[0].time_ns)  # type: ignore[arg-type]
                out.extend(engine.process(piece))
        stats.last_ns = batch[-1].time_ns
        if progress is not None:
            progress(stats.last_ns)  # type: ignore[arg-type]
    final = end_ns if end_ns is not None else stats.last_ns
    if final is not None:
        out.extend(engine.advance(final))
    # the engine emits in event-time order already; a stable sort only guards against a batch
    # boundary reordering two transitions, and keeps the engine's order within one instant
    out.sort(key=lambda t: t.time_ns)
    stats.wall_s = clock() - t0
    return result


# --- rendering --------------------------------------------------------------------------------


def location(labels: dict[str, str]) -> str:
    """``rack=A01 node=A01-n01 gpu=3``: location labels outermost first, without site and room."""
    keys = [k for k in LOCATION_ORDER if k in labels and k not in ("site", "room")]
    keys += sorted(k for k in labels if k not in LOCATION_ORDER and k not in _NOT_LOCATION)
    return " ".join(f"{k}={labels[k]}" for k in keys)


def _value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def inhibitors(t: Any) -> list[str]:
    """The alerts that inhibit a transition, sorted (the engine may give a string or a list)."""
    by = getattr(t, "inhibited_by", None)
    if not by:
        return []
    return [by] if isinstance(by, str) else sorted(str(b) for b in by)


def transition_dict(t: Any) -> dict[str, Any]:
    """A transition as plain JSON values, every key always present."""
    value = t.value
    if isinstance(value, float) and value != value:
        value = None
    return {
        "time": format_time(t.time_ns),
        "time_ns": t.time_ns,
        "rule": t.rule,
        "severity": t.severity,
        "state": t.state,
        "previous": t.previous,
        "labels": dict(sorted(t.labels.items())),
        "value": value,
        "inhibited": bool(t.inhibited),
        "inhibited_by": inhibitors(t),
        "summary": getattr(t, "summary", "") or "",
        "fingerprint": getattr(t, "fingerprint", "") or "",
    }


def alert_names(transitions: Iterable[Any]) -> dict[str, str]:
    """Fingerprint -> ``Rule location``, so an inhibition names the alert behind it, not a hash."""
    return {t.fingerprint: f"{t.rule} {location(t.labels)}".strip()
            for t in transitions if getattr(t, "fingerprint", None)}


def format_text(transitions: Sequence[Any]) -> str:
    """The timeline, one transition a line: time, state, rule, location, value, inhibition."""
    names = alert_names(transitions)
    rows = []
    for t in transitions:
        line = (f"{format_time(t.time_ns)}  {t.state:<8}  {t.rule}  {location(t.labels)}"
                f"  value={_value_text(t.value)}")
        if t.inhibited:
            by = ", ".join(names.get(b, b) for b in inhibitors(t)) or "?"
            line += f"  (inhibited by {by})"
        rows.append(line)
    return "\n".join(rows) + ("\n" if rows else "")


def format_json(transitions: Iterable[Any]) -> str:
    """The timeline as JSON lines with sorted keys."""
    rows = [json.dumps(transition_dict(t), sort_keys=True, separators=(",", ":")) for t in transitions]
    return "\n".join(rows) + ("\n" if rows else "")


# --- into InfluxDB, for the dashboards --------------------------------------------------------


def transition_record(t: Any) -> Record:
    """A transition as an ``alert`` record (the engine's own ``to_record`` when it has one)."""
    to_record = getattr(t, "to_record", None)
    if callable(to_record):
        return to_record()
    d = transition_dict(t)
    fields: dict[str, Any] = {"state": d["state"], "previous": d["previous"] or "", "inhibited": d["inhibited"],
                              "summary": d["summary"], "fingerprint": d["fingerprint"]}
    if isinstance(d["value"], (int, float)) and not isinstance(d["value"], bool):
        fields["value"] = float(d["value"])
    tags = {k: v for k, v in d["labels"].items() if v}
    tags["alertname"] = d["rule"]
    tags["severity"] = d["severity"]
    return Record("alert", tags, fields, d["time_ns"])


def write_to_influx(url: str, db: str, batches: Iterable[list[Record]], transitions: Sequence[Any], *,
                    shift_ns: int = 0, username: str | None = None, password: str | None = None,
                    chunk_lines: int = 5000, timeout_s: float = 30.0) -> int:
    """Write the replayed records and the alert transitions into ``db`` (created if missing), times
    moved by ``shift_ns``; returns the number of points written."""
    import httpx

    from dcim.errors import SinkError
    from dcim.lineprotocol.encode import encode

    auth = {"u": username, "p": password or ""} if username else {}

    def shifted(records: Iterable[Record]) -> list[Record]:
        if not shift_ns:
            return list(records)
        return [Record(r.measurement, r.tags, r.fields, r.time_ns + shift_ns) for r in records]  # type: ignore[operator]

    written = 0
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s) as client:

        def post(records: list[Record]) -> None:
            nonlocal written
            for i in range(0, len(records), chunk_lines):
                part = records[i : i + chunk_lines]
                resp = client.post("/write", params={"db": db, "precision": "ns", **auth}, content=encode(part).encode())
                if resp.status_code != 204:
                    msg = f"InfluxDB at {url} refused the write: HTTP {resp.status_code} {resp.text[:300]}"
                    raise SinkError(msg, status=resp.status_code)
                written += len(part)

        try:
            resp = client.post("/query", data={"q": f'CREATE DATABASE "{db}"', **auth})
            if resp.status_code != 200:
                msg = f"InfluxDB at {url} refused CREATE DATABASE: HTTP {resp.status_code} {resp.text[:300]}"
                raise SinkError(msg, status=resp.status_code)
            for batch in batches:
                post(shifted(batch))
            post(shifted(transition_record(t) for t in transitions))
        except httpx.HTTPError as exc:
            msg = f"InfluxDB at {url} is not reachable: {exc}"
            raise SinkError(msg) from exc
    return written
