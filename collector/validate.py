"""Decode and validate line-protocol payloads against the schema, line by line.

One bad line never costs the others: each becomes a ``Reject`` with its reason, the rest go on.
The hot path checks the text of a plain line (no quotes, no backslashes) directly and passes it
through unchanged; anything unusual goes to the careful path (``dcim.lineprotocol.decode_report``
plus ``dcim.schema``), which coerces values to the schema's types and re-encodes the line.
"""

from __future__ import annotations

from collections.abc import Iterable
import re
from dataclasses import dataclass

from dcim.lineprotocol.encode import INT64_MAX, INT64_MIN, encode_record

from dcim.lineprotocol.decode import decode_report
from dcim.record import Record
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

_TYPES: dict[str, dict[str, str]] = {m.name: {f.name: f.type for f in m.fields.values()} for m in MEASUREMENTS.values()}
_TRUE_FALSE = frozenset(("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"))
_NUM_START = frozenset("0123456789-.")
_SLOW = "slow"
_INF = float("inf")
_NINF = float("-inf")
_KEYS_CACHE_MAX = 100_000
# well-formed values per schema type, for a whole fields part checked in one regex match (ints up
# to 18 digits are inside int64 by construction; longer ones take the careful path)
_VALUE_RE = {
    "float": r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?",
    "int": r"-?[0-9]{1,18}i",
    "bool": r"(?:t|T|true|True|TRUE|f|F|false|False|FALSE)",
    "str": r'"[^"\\, =]*"',
    "uint": r"(?!)",
}


_FLOAT_RE = re.compile(_VALUE_RE["float"])


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
        # series keys (measurement + tags) already seen to be well formed: the tag part of a line
        # repeats every poll, so checking it once is enough
        self._good_keys: dict[str, tuple[str, re.Pattern | None]] = {}  # series key -> (measurement, layout)
        self._layouts: dict[tuple[str, tuple[str, ...]], re.Pattern] = {}

    # --- line protocol ---------------------------------------------------------------------

    def lines(self, payload: bytes, now_ns: int) -> tuple[list[str], list[Reject]]:
        """Valid lines (ready to write, each with a timestamp, in payload order) and the rejects."""
        try:
            texts: list[str | bytes] = payload.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            texts = []
            for raw in payload.split(b"\n"):
                try:
                    texts.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    texts.append(raw)  # only this line is lost
        lo = now_ns - self.max_past_ns
        hi = now_ns + self.max_future_ns
        good: list[str] = []
        rejects: list[Reject] = []
        scan = self._scan
        for n, line in enumerate(texts, 1):
            if not line:
                continue
            if type(line) is bytes:
                rejects.append(Reject("parse_error", "line is not valid UTF-8", line.decode("utf-8", "replace"), n))
                continue
            if line[-1] == "\r":
                line = line[:-1]
                if not line:
                    continue
            if line[0] == "#":
                continue
            verdict = scan(line, lo, hi)
            if verdict is None:
                good.append(line)
            elif verdict is _SLOW:
                g, r = self._slow(line, now_ns, lineno=n)
                good += g
                rejects += r
                if g and not r and "\\" in line:
                    self._remember_key_of(line)
            else:
                rejects.append(Reject(verdict[0], verdict[1], line, n))
        return good, rejects

    def _scan(self, line: str, lo: int, hi: int) -> tuple[str, str] | str | None:
        """None when a line is valid as it stands; a (reason, detail) reject; or _SLOW.

        The hot path: a series key seen before (checked once, escapes included) and the same
        fields as that series' last line, every value well formed, checked in one regex match.
        Otherwise the fields are checked one by one and their layout is remembered; anything
        unusual (uint, escapes in fields, odd numbers, no timestamp) takes the careful path.
        """
        c0 = line[0]
        if c0 == " " or c0 == "\t" or c0 == "\x00":
            return _SLOW
        sp = line.find(" ")
        if sp <= 0:
            return _SLOW
        while line[sp - 1] == "\\":  # an escaped space in the measurement or a tag value
            sp = line.find(" ", sp + 1)
            if sp < 0:
                return _SLOW
        key = line[:sp]
        known = self._good_keys.get(key)
        if known is not None and known[1] is not None:
            m = known[1].fullmatch(line, sp + 1)
            if m is not None:
                ts = int(m.group(1))
                if ts > hi:
                    return ("time_future", f"timestamp {ts} is more than {self.max_future_ns // 10**9} s ahead of now")
                if ts < lo:
                    return ("time_past", f"timestamp {ts} is more than {self.max_past_ns // 10**9} s before now")
                return None
        if known is None:
            if "\\" in key:
                return _SLOW  # the careful path checks the key once, then caches it
            c = key.find(",")
            meas = key if c < 0 else key[:c]
            if c >= 0:
                seen = set()
                for kv in key[c + 1 :].split(","):
                    k, eq, v = kv.partition("=")
                    if not k or not v or "=" in v or k == "time" or k in seen:
                        return _SLOW
                    seen.add(k)
            if meas not in _TYPES:
                return _SLOW
            known = self._remember(key, meas)
        meas = known[0]
        if line.find("\\", sp) >= 0:
            return _SLOW
        rest = line[sp + 1 :]
        if '"' in rest:
            parts = rest.split('"')
            if len(parts) % 2 == 0:
                return _SLOW
            for quoted in parts[1::2]:
                if " " in quoted or "," in quoted or "=" in quoted:
                    return _SLOW
        sp2 = rest.rfind(" ")
        if sp2 < 0:
            return _SLOW  # no timestamp: the careful path stamps it with the arrival time
        tpart = rest[sp2 + 1 :]
        if not tpart.isdigit() or not tpart.isascii() or len(tpart) > 19:
            return _SLOW
        fpart = rest[:sp2]
        if " " in fpart:
            return _SLOW
        ts = int(tpart)
        if ts > hi:
            return ("time_future", f"timestamp {ts} is more than {self.max_future_ns // 10**9} s ahead of now")
        if ts < lo:
            return ("time_past", f"timestamp {ts} is more than {self.max_past_ns // 10**9} s before now")
        types = _TYPES[meas]
        names = []
        for kv in fpart.split(","):
            k, eq, v = kv.partition("=")
            names.append(k)
            t = types.get(k)
            if t is None or not v:
                return _SLOW
            last = v[-1]
            if t == "float":
                # the grammar InfluxDB accepts; float() alone would also take blanks, '_', other scripts
                if _FLOAT_RE.fullmatch(v) is None:
                    return _SLOW
                f = float(v)
                if f in (_INF, _NINF):
                    return _SLOW
            elif t == "int":
                body = v[:-1]
                if last != "i" or not (body.isdigit() or (body[:1] == "-" and body[1:].isdigit())):
                    return _SLOW
                if not INT64_MIN <= int(body) <= INT64_MAX:
                    return _SLOW
            elif t == "bool":
                if v not in _TRUE_FALSE:
                    return _SLOW
            elif t == "str":
                if len(v) < 2 or v[0] != '"' or last != '"':
                    return _SLOW
            else:  # uint: the careful path
                return _SLOW
        lkey = (meas, tuple(names))
        pattern = self._layouts.get(lkey)
        if pattern is None and len(set(names)) == len(names) and len(self._layouts) < 10_000:
            pattern = self._layouts[lkey] = re.compile(
                ",".join(re.escape(n) + "=" + _VALUE_RE[types[n]] for n in names) + " ([0-9]{1,19})")
        self._good_keys[key] = (meas, pattern)
        return None

    def _remember_key_of(self, line: str) -> None:
        """After the careful path accepted a line with escapes in its key, cache that key."""
        if '"' in line:
            return
        sp = line.find(" ")
        while sp > 0 and line[sp - 1] == "\\":
            sp = line.find(" ", sp + 1)
        if sp <= 0:
            return
        key = line[:sp]
        if "\\\\" in key or key.endswith("\\"):
            return
        try:
            rec = decode_report(key + " x=1").records
        except Exception:  # noqa: BLE001
            return
        if len(rec) == 1 and rec[0].measurement in _TYPES:
            self._remember(key, rec[0].measurement)

    def _remember(self, key: str, meas: str) -> tuple[str, re.Pattern | None]:
        if len(self._good_keys) >= _KEYS_CACHE_MAX:
            self._good_keys.clear()
        entry = self._good_keys[key] = (meas, None)
        return entry

    def _slow(self, data: str | bytes, now_ns: int, lineno: int | None = None) -> tuple[list[str], list[Reject]]:
        result = decode_report(data, default_time_ns=now_ns)
        rejects = [
            Reject("parse_error", e.reason, e.text or "", (lineno or e.line) if e.line is not None else lineno)
            for e in result.errors
        ]
        good, more = self.check_records(result.records, now_ns)
        if more and lineno is not None and isinstance(data, str):
            for r in more:  # the dead-letter file keeps the line as it came, not as re-encoded
                r.line = lineno
                r.text = data
        return good, rejects + more

    # --- records (JSON mappings, the careful path) ---------------------------------------------

    def check_records(self, records: Iterable[Record], now_ns: int) -> tuple[list[str], list[Reject]]:
        """Encoded lines for the valid records and a reject for each invalid one."""
        lo = now_ns - self.max_past_ns
        hi = now_ns + self.max_future_ns
        good: list[str] = []
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
        return good, rejects

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
        self._keys: dict[str, tuple] = {}  # series key -> (meas, tags, series hash), or (reason, detail)
        self._topics: dict[str, dict[str, str] | None] = {}

    @property
    def series(self) -> int:
        return len(self._series)

    def filter(self, lines: list[str], topic: str | None) -> tuple[list[str], list[Reject]]:
        """(lines admitted, a reject for each other line)."""
        expected = self._topic_tags(topic) if topic is not None and self.layouts else None
        good: list[str] = []
        rejects: list[Reject] = []
        series = self._series
        for line in lines:
            sp = line.find(" ")
            while sp > 0 and line[sp - 1] == "\\":
                sp = line.find(" ", sp + 1)
            key = line[:sp] if sp > 0 else line
            parsed = self._keys.get(key)
            if parsed is None:
                parsed = self._parse(key)
            if len(parsed) == 2:
                rejects.append(Reject(parsed[0], parsed[1], line))  # type: ignore[arg-type]
                continue
            meas, tags, h = parsed  # type: ignore[misc]
            if expected:
                wrong = [k for k, v in expected.items() if k in tags and tags[k] != v]  # type: ignore[operator]
                if wrong:
                    k = wrong[0]
                    rejects.append(Reject("topic_mismatch", f"tag {k}={tags[k]!r} disagrees with the topic "  # type: ignore[index]
                                          f"{topic!r}, which names {k} {expected[k]!r}", line))
                    continue
            if h not in series:
                if len(series) >= self.max_series:
                    rejects.append(Reject("series_budget", f"a new series past max_series {self.max_series} "
                                          f"({meas} {key[len(meas):]!r}); existing series go on", line))
                    continue
                series.add(h)
            good.append(line)
        return good, rejects

    def _parse(self, key: str):  # noqa: ANN202
        result = decode_report(key + " x=1")
        if result.errors or not result.records:
            verdict: tuple = ("parse_error", f"series key {key!r} is not valid")
        else:
            rec = result.records[0]
            meas = MEASUREMENTS.get(rec.measurement)
            unknown = [t for t in rec.tags if meas is not None and t not in meas.tags]
            if unknown:
                verdict = ("unknown_tag", f"tag {unknown[0]!r} is not a tag of measurement {rec.measurement!r} "
                           f"(its tags: {', '.join(meas.tags)})")  # type: ignore[union-attr]
            else:
                # one series however its tags are ordered in the line
                verdict = (rec.measurement, rec.tags, hash((rec.measurement, *sorted(rec.tags.items()))))
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


class LineReader:
    """Records back from lines the validator passed (observers, the embedded store, the sinks).

    A thin adapter over ``dcim.lineprotocol.decode_report``, which parses each series key once and
    remembers each field layout's value types, so the common lines never reach its character scanner.
    """

    def records(self, lines: Iterable[str]) -> list[Record]:
        return self.read(lines)[0]

    def read(self, lines: Iterable[str]) -> tuple[list[Record], list[str]]:
        """(records, lines that are not line protocol); blank lines and comments are skipped."""
        kept = [line for line in lines if line and line[0] != "#"]
        if not kept:
            return [], []
        result = decode_report("\n".join(kept))
        return result.records, [kept[e.line - 1] for e in result.errors if e.line is not None]


