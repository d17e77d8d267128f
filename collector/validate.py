"""Validate line-protocol payloads against the schema, line by line, on the records the codec decoded.

One bad line never costs the others: each becomes a ``Reject`` with its reason, the rest go on.
Each payload is decoded once (``dcim.lineprotocol.decode``); a plain line passes on as it arrived,
with its record beside it for observers; anything unusual is coerced to the schema's types and
written from its record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dcim.lineprotocol.decode import decode_report
from dcim.lineprotocol.encode import encode_record
from dcim.record import Record, UInt
from dcim.schema import MEASUREMENTS, check_value, coerce

#: Reject reasons (the ``reason`` label of ``dcim_collector_rejected_total``).
REASONS = (
    "parse_error",          # not line protocol / not valid UTF-8
    "unknown_measurement",
    "unknown_field",
    "wrong_type",
    "time_future",          # further ahead than max_future_s
    "time_past",            # further back than max_past_s
    "payload_too_large",    # MQTT payload over max_payload_bytes
    "json_error",           # a mapped topic whose payload is not JSON
    "mapping_error",        # JSON that does not fit its mapping (missing path, bad number)
    "no_mapping",           # JSON on a topic no mapping matches
    "sink_rejected",        # the sink refused the line (400/422, or 413 for one line)
    "unknown_tag",          # a tag key the schema does not give the measurement
    "topic_mismatch",       # a device tag that disagrees with the topic the message came on
    "series_budget",        # a new series past the collector's max_series
)

_KEYS_CACHE_MAX = 100_000
#: topics remembered per admitted series (one, for an agent's own series)
_TOPICS_PER_SERIES = 4


@dataclass(slots=True)
class Reject:
    """One refused line (or payload): why, and the text itself for the dead-letter file."""

    reason: str
    detail: str
    text: str
    line: int | None = None
    size: int | None = None  # bytes of what was refused, when ``text`` keeps only its beginning


class Validator:
    """Checks payloads against the schema and the time window; keeps no state but a cache."""

    def __init__(self, *, max_future_s: float, max_past_s: float) -> None:
        self.max_future_ns = int(max_future_s * 1e9)
        self.max_past_ns = int(max_past_s * 1e9)
        # (measurement, field names, value types) -> whether its values need the schema's types;
        # points of one series repeat their layout every poll, so each layout is checked once
        self._layouts: dict[tuple, bool] = {}

    # --- line protocol ---------------------------------------------------------------------

    def lines(self, payload: bytes, now_ns: int) -> tuple[list[str], list[Reject]]:
        """Valid lines (ready to write, each with a timestamp, in payload order) and the rejects."""
        good, _records, rejects = self.read(payload, now_ns)
        return good, rejects

    def read(self, payload: bytes, now_ns: int, linenos: list[int] | None = None
             ) -> tuple[list[str], list[Record], list[Reject]]:
        """(valid lines, their records, rejects): the payload is decoded once, by the codec's scanner.

        A line the fast reader took as it stands, with its own timestamp and the schema's value
        types, goes on exactly as it arrived; any other valid line is written from its record,
        coerced to the schema's types and stamped with the arrival time when it has none.
        ``linenos``, when given, receives the payload line number (1-based) of each valid line, so
        that a later refusal (``Admission``) can name the line too.
        """
        if b"\r" in payload:
            payload = payload.replace(b"\r\n", b"\n")
            if payload.endswith(b"\r"):
                payload = payload[:-1]
        result = decode_report(payload, keep_lines=True)
        rejects = [Reject("parse_error", e.reason, _printable(e.text or ""), e.line) for e in result.errors]
        lo = now_ns - self.max_past_ns
        hi = now_ns + self.max_future_ns
        good: list[str] = []
        records: list[Record] = []
        layouts = self._layouts
        texts, numbers, verbatim = result.lines, result.linenos, result.verbatim
        for i, r in enumerate(result.records):
            fields = r.fields
            coerce_ = layouts.get((r.measurement, tuple(fields), tuple(map(type, fields.values()))))
            if coerce_ is None:
                problem = self._check_record(r, lo, hi)
                if problem is not None:
                    rejects.append(Reject(problem[0], problem[1], texts[i], numbers[i]))  # type: ignore[index]
                    continue
                coerce_ = self._remember(r)
            ts = r.time_ns
            if ts is not None and not lo <= ts <= hi:
                problem = self._check_record(r, lo, hi)
                rejects.append(Reject(problem[0], problem[1], texts[i], numbers[i]))  # type: ignore[index]
                continue
            if ts is not None and not coerce_ and verbatim[i]:  # type: ignore[index]
                good.append(texts[i])  # type: ignore[index]
                records.append(r)
                if linenos is not None:
                    linenos.append(numbers[i])  # type: ignore[index]
                continue
            # the careful path: the schema's types and a timestamp, written from the record
            r = Record(r.measurement, r.tags, coerce(MEASUREMENTS[r.measurement], fields),
                       ts if ts is not None else now_ns)
            try:
                good.append(encode_record(r))
            except Exception as exc:  # noqa: BLE001 - the codec names what it cannot carry
                rejects.append(Reject("parse_error", str(exc), texts[i], numbers[i]))  # type: ignore[index]
                continue
            records.append(r)
            if linenos is not None:
                linenos.append(numbers[i])  # type: ignore[index]
        if result.errors and len(rejects) > len(result.errors):
            rejects.sort(key=lambda rj: rj.line or 0)  # in payload order
        return good, records, rejects

    def _remember(self, r: Record) -> bool:
        """Cache a valid record's layout; True when its values need converting to the schema's types."""
        meas = MEASUREMENTS[r.measurement]
        want = {"float": float, "int": int, "uint": UInt, "bool": bool, "str": str}
        convert = any(type(v) is not want[meas.fields[k].type] for k, v in r.fields.items())
        if len(self._layouts) >= _KEYS_CACHE_MAX:
            self._layouts.clear()
        self._layouts[(r.measurement, tuple(r.fields), tuple(map(type, r.fields.values())))] = convert
        return convert

    # --- records (JSON mappings, observers, the collector's own reports) -------------------------

    def check_records(self, records: Iterable[Record], now_ns: int) -> tuple[list[str], list[Record], list[Reject]]:
        """Encoded lines for the valid records, those records (schema types, stamped), and a reject
        for each invalid one."""
        lo = now_ns - self.max_past_ns
        hi = now_ns + self.max_future_ns
        good: list[str] = []
        kept: list[Record] = []
        rejects: list[Reject] = []
        for r in records:
            reason = self._check_record(r, lo, hi)
            if reason is not None:
                rejects.append(Reject(reason[0], reason[1], _describe(r)))
                continue
            meas = MEASUREMENTS[r.measurement]
            r = Record(r.measurement, r.tags, coerce(meas, r.fields), r.time_ns if r.time_ns is not None else now_ns)
            try:
                good.append(encode_record(r))
            except Exception as exc:  # noqa: BLE001 - the codec names what it cannot carry
                rejects.append(Reject("parse_error", str(exc), _describe(r)))
                continue
            kept.append(r)
        return good, kept, rejects

    def _check_record(self, r: Record, lo: int, hi: int) -> tuple[str, str] | None:
        meas = MEASUREMENTS.get(r.measurement)
        if meas is None:
            return ("unknown_measurement", f"unknown measurement {r.measurement!r}")
        if not r.fields:
            return ("parse_error", "a point needs at least one field")
        for name, value in r.fields.items():
            problem = check_value(meas, name, value)
            if problem is not None:
                return ("unknown_field" if name not in meas.fields else "wrong_type", problem)
        ts = r.time_ns
        if ts is not None:
            if ts > hi:
                return ("time_future", f"timestamp {ts} is more than {self.max_future_ns // 10**9} s ahead of now")
            if ts < lo:
                return ("time_past", f"timestamp {ts} is more than {self.max_past_ns // 10**9} s before now")
        return None


def _printable(text: str) -> str:
    """A refused line for the dead-letter file: bytes that were not UTF-8 shown as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _describe(r: Record) -> str:
    """A record as a line for the dead-letter file, even when it cannot be encoded."""
    try:
        return encode_record(r)
    except Exception:  # noqa: BLE001
        return repr(r)


class TopicLayout:
    """One topic layout such as ``+/{site}/{rack}/{node}/gpu``: which level names which tag."""

    __slots__ = ("levels", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.levels: list[tuple[str, str | None]] = []  # (literal or "+", tag name or None)
        for level in pattern.split("/"):
            if level.startswith("{") and level.endswith("}") and len(level) > 2:
                self.levels.append(("+", level[1:-1]))
            else:
                self.levels.append((level, None))

    def tags_of(self, topic: str) -> dict[str, str] | None:
        """The tags a topic names, or None when the topic does not have this layout."""
        parts = topic.split("/")
        if len(parts) != len(self.levels):
            return None
        out = {}
        for part, (literal, tag) in zip(parts, self.levels):
            if tag is not None:
                out[tag] = part
            elif literal != "+" and literal != part:
                return None
        return out


class Admission:
    """What the schema and the topic allow past validation: known tag keys, device tags that agree
    with the topic, and at most ``max_series`` series (a flood of junk series cannot use up the
    store's series limit and starve the legitimate ones). Verdicts are cached per series key."""

    def __init__(self, *, max_series: int, topic_layouts: Iterable[str] = (), check_topic: bool = True) -> None:
        self.max_series = max_series
        self.layouts = [TopicLayout(p) for p in topic_layouts] if check_topic else []
        self._series: set[int] = set()
        # (measurement, tag items) -> (series hash, topics it was admitted on) or (reason, detail, None).
        # Series are never forgotten, so a key once admitted on a topic is admitted on it again.
        self._keys: dict[tuple, tuple] = {}
        self._topics: dict[str, dict[str, str] | None] = {}

    @property
    def series(self) -> int:
        return len(self._series)

    def admit(self, lines: list[str], records: list[Record], topic: str | None,
              linenos: list[int] | None = None) -> tuple[list[str], list[Record], list[Reject]]:
        """(lines admitted, their records, a reject for each other line); ``records[i]`` is ``lines[i]``
        decoded, and ``linenos[i]``, when given, its line number in the payload, which a reject keeps."""
        expected = self._topic_tags(topic) if topic is not None and self.layouts else None
        good: list[str] = []
        kept: list[Record] = []
        rejects: list[Reject] = []
        series = self._series
        keys = self._keys
        for i, (line, rec) in enumerate(zip(lines, records, strict=True)):
            tags = rec.tags
            key = (rec.measurement, tuple(tags.items()))
            parsed = keys.get(key)
            if parsed is None:
                parsed = self._verdict(key, rec)
            if len(parsed) == 3:
                rejects.append(Reject(parsed[0], parsed[1], line, linenos[i] if linenos else None))
                continue
            seen_on = parsed[1]
            if topic in seen_on:  # the series exists and agreed with this topic before
                good.append(line)
                kept.append(rec)
                continue
            h = parsed[0]
            if expected:
                wrong = [k for k, v in expected.items() if k in tags and tags[k] != v]
                if wrong:
                    k = wrong[0]
                    rejects.append(Reject("topic_mismatch", f"tag {k}={tags[k]!r} disagrees with the topic "
                                          f"{topic!r}, which names {k} {expected[k]!r}", line,
                                          linenos[i] if linenos else None))
                    continue
            if h not in series:
                if len(series) >= self.max_series:
                    tag_text = ",".join(f"{k}={v}" for k, v in tags.items())
                    rejects.append(Reject("series_budget", f"a new series past max_series {self.max_series} "
                                          f"({rec.measurement} {tag_text!r}); existing series go on", line,
                                          linenos[i] if linenos else None))
                    continue
                series.add(h)
            if len(seen_on) < _TOPICS_PER_SERIES:
                seen_on.add(topic)
            good.append(line)
            kept.append(rec)
        return good, kept, rejects

    def _verdict(self, key: tuple, rec: Record) -> tuple:
        """(series hash, set()) for a series the schema allows, else (reason, detail, None); cached per series."""
        meas = MEASUREMENTS.get(rec.measurement)
        unknown = [t for t in rec.tags if meas is not None and t not in meas.tags]
        if unknown:
            verdict: tuple = ("unknown_tag", f"tag {unknown[0]!r} is not a tag of measurement {rec.measurement!r} "
                              f"(its tags: {', '.join(meas.tags)})", None)  # type: ignore[union-attr]
        else:
            # one series however its tags are ordered in the line
            verdict = (hash((rec.measurement, *sorted(rec.tags.items()))), set())
        if len(self._keys) >= _KEYS_CACHE_MAX:
            self._keys.clear()
        self._keys[key] = verdict
        return verdict

    def _topic_tags(self, topic: str) -> dict[str, str] | None:
        got = self._topics.get(topic, False)
        if got is False:
            got = None
            for layout in self.layouts:
                got = layout.tags_of(topic)
                if got is not None:
                    break
            if len(self._topics) >= _KEYS_CACHE_MAX:
                self._topics.clear()
            self._topics[topic] = got
        return got  # type: ignore[return-value]
