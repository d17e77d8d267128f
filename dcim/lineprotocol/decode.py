"""InfluxDB line protocol, read: the one scanner every reader of line protocol goes through.

The reader follows InfluxDB 1.6.7's parser (models/points.go, ParsePointsWithPrecision and the
field iterator the storage engine reads values with) step by step, because what the store keeps
is the reference: a line is accepted exactly when InfluxDB would store it, with the values it
would store. Deliberate differences are listed in docs/core.md with their reasons.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dcim.errors import LineProtocolError
from dcim.lineprotocol.encode import (
    _CACHE_MAX,
    _FALSE,
    _TRUE,
    INT64_MAX,
    INT64_MIN,
    MAX_KEY_BYTES,
    MAX_TIME_NS,
    MIN_TIME_NS,
    PRECISIONS,
    UINT64_MAX,
)
from dcim.record import FieldValue, Record, UInt

#: What InfluxDB skips before a line, before the fields and before the timestamp.
_WS = " \t\x00"
#: Nanoseconds per unit of every precision InfluxDB 1.x accepts on /write.
_DECODE_PRECISIONS = {**PRECISIONS, "m": 60_000_000_000, "h": 3_600_000_000_000}

# escape.Unescape (measurement, field keys) and unescapeTag (tag keys and values): a backslash
# followed by one of these characters is dropped; any other backslash is kept
_NAME_UNESC = re.compile(r'\\([,"= ])')
_TAG_UNESC = re.compile(r"\\([, =])")
_MEAS_BACKSLASH = re.compile(r'\\([,"= ])')
# Go's strconv grammar for the values the storage engine converts
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_UINT = re.compile(r"[0-9]+")
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_NUM_FIRST = frozenset("0123456789-.Nn")
_NUMERIC = frozenset("0123456789.")
_ITER_NUMERIC = frozenset("0123456789-.nNiIu")
_BOOL_WORDS = frozenset(("t", "T", "f", "F", "true", "True", "TRUE", "false", "False", "FALSE"))


@dataclass(slots=True)
class DecodeResult:
    """What a lenient decode found: the good records and one error per bad line."""

    records: list[Record] = field(default_factory=list)
    errors: list[LineProtocolError] = field(default_factory=list)
    #: with ``keep_lines``, per record: its line as it came (leading blanks cut), its line number,
    #: and whether that text means exactly the record (the fast reader took it, no newline inside
    #: a string), so a writer can pass the line on as it arrived instead of encoding it again (at
    #: the same precision; a line without a timestamp still needs the one the record was given)
    lines: list[str] | None = None
    linenos: list[int] | None = None
    verbatim: list[bool] | None = None


def _decode_factor(precision: str) -> int:
    try:
        return _DECODE_PRECISIONS[precision]
    except KeyError:
        msg = f"unknown precision {precision!r}; use one of ns, us, ms, s, m, h"
        raise ValueError(msg) from None


def _parse_value(raw: str) -> FieldValue:
    """A field value without quotes or escapes (fast path); ValueError when it is not one."""
    if not raw:
        raise ValueError
    if raw[0] == '"':
        return _str_value(raw)
    last = raw[-1]
    if last == "i":
        body = raw[:-1]
        if "_" in body or not body or body[0] == "+":
            raise ValueError
        v = int(body)
        if not INT64_MIN <= v <= INT64_MAX:
            raise OverflowError
        return v
    if last == "u":
        body = raw[:-1]
        if "_" in body or not body or not body[0].isdigit():
            raise ValueError
        v = int(body)
        if v > UINT64_MAX:
            raise OverflowError
        return UInt(v)
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    if "_" in raw or raw[0] == "+":
        raise ValueError
    f = float(raw)
    if f != f or f in (math.inf, -math.inf):
        raise ArithmeticError
    return f


_parsed_keys: dict[str, tuple[str, dict[str, str]]] = {}


def _parse_key(key: str) -> tuple[str, dict[str, str]]:
    """Measurement and tags of a series key; ValueError when the key is not valid."""
    if "\\" in key:
        scanner = _Scanner(key + " ", 0, 0)
        try:
            end, meas, tags = scanner.scan_key()
        except LineProtocolError:
            raise ValueError from None
        if end != len(key):
            raise ValueError
        return meas, tags
    ntags = key.count(",")
    if ntags:
        parts = key.replace("=", ",").split(",")
        if len(parts) != 2 * ntags + 1:
            raise ValueError
        meas = parts[0]
        tags = dict(zip(parts[1::2], parts[2::2]))
        if len(tags) != ntags or "" in tags or "time" in tags or "" in tags.values():
            raise ValueError
    else:
        meas = key
        tags = {}
    if not meas or len(key) > MAX_KEY_BYTES // 4:
        raise ValueError  # the careful reader checks the key length in bytes
    return meas, tags


def _series_end(line: str) -> int:
    """Index of the space that ends the series key: the first one no backslash precedes."""
    pos = line.find(" ")
    while pos > 0 and line[pos - 1] == "\\":
        pos = line.find(" ", pos + 1)
    return pos


_BOOLS = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}


def _int_value(raw: str) -> int:
    if raw[-1] != "i" or raw[0] == "+":
        raise ValueError
    v = int(raw[:-1])
    if not INT64_MIN <= v <= INT64_MAX:
        raise ValueError
    return v


def _uint_value(raw: str) -> UInt:
    if raw[-1] != "u" or not raw[0].isdigit():
        raise ValueError
    v = int(raw[:-1])
    if v > UINT64_MAX:
        raise ValueError
    return UInt(v)


def _str_value(raw: str) -> str:
    if len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
        raise ValueError
    return raw[1:-1]


def _converter(value: FieldValue):  # noqa: ANN202 - one of float, _int_value, _uint_value, _BOOLS.__getitem__, _str_value
    t = type(value)
    if t is float:
        return float
    if t is str:
        return _str_value
    if t is bool:
        return _BOOLS.__getitem__
    if t is UInt:
        return _uint_value
    return _int_value


#: field names of a line -> (a converter per value, positions of the floats, their getter); lines
#: of one series repeat their layout, so each value is converted without trying types in turn
_layouts: dict[tuple[str, ...], tuple[list, list[int], Callable[[list], tuple] | None]] = {}


def _fast_line(line: str, factor: int, default_time_ns: int | None) -> Record:
    """Decode a plain line (backslashes only in the series key); any doubt raises ValueError.

    Splits are done by C string methods (``replace`` then ``split`` gives keys and values in
    alternation). It accepts only lines on which it provably agrees with the careful reader,
    which handles everything else and reports the exact column of whatever it refuses.
    """
    if "\\" in line:
        end = _series_end(line)
        if end <= 0 or "\\" in line[end:]:
            raise ValueError
        key = line[:end]
        rest = line[end + 1 :]
    else:
        key, sep, rest = line.partition(" ")
        if not sep:
            raise ValueError
    if not rest or rest[0] in _WS:
        raise ValueError
    if '"' in rest:
        # string values are fine here as long as they hold no separator the splits below use
        quoted = rest.split('"')
        if len(quoted) % 2 == 0 or any(" " in q or "," in q or "=" in q for q in quoted[1::2]):
            raise ValueError
    fpart, sep, tpart = rest.partition(" ")
    if sep:
        if not tpart or not tpart.isascii() or not (tpart.isdigit() or (tpart[0] == "-" and tpart[1:].isdigit())):
            raise ValueError
        ts = int(tpart) * factor
        if not MIN_TIME_NS <= ts <= MAX_TIME_NS:
            raise ValueError
    else:
        ts = default_time_ns
    # measurement and tags: series repeat from line to line, so their parse is cached
    cached = _parsed_keys.get(key)
    if cached is not None:
        meas, tags = cached
        tags = tags.copy()
    else:
        meas, tags = _parse_key(key)
        if len(_parsed_keys) >= _CACHE_MAX:
            _parsed_keys.clear()
        _parsed_keys[key] = (meas, tags.copy())
    # fields
    nfields = fpart.count(",") + 1
    parts = fpart.replace("=", ",").split(",")
    if len(parts) != 2 * nfields:
        raise ValueError
    names = parts[0::2]
    raw = parts[1::2]
    # numbers are ASCII digits only (float() and int() also take other scripts, blanks, '_')
    joined = "".join([v for v in raw if v[:1] != '"']) if '"' in fpart else "".join(raw)
    if not (joined.isascii() and joined.isprintable()) or "_" in joined or "+" in joined:
        raise ValueError
    names_key = tuple(names)
    layout = _layouts.get(names_key)
    values: list[FieldValue] | None = None
    if layout is not None:
        try:
            if layout[2] is None:
                values = list(map(float, raw))
            else:
                values = list(map(_call, layout[0], raw))  # each value by its converter, in C
        except (ValueError, KeyError, IndexError):
            values = None  # the types changed: work them out again
    if values is None:
        try:
            values = list(map(float, raw))
        except ValueError:
            values = list(map(_parse_value, raw))  # integers, booleans; raises on anything else
        if len(_layouts) >= _CACHE_MAX:
            _layouts.clear()
        layout = _layouts[names_key] = _layout_of(values)
    floats = layout[1]
    if floats:
        gather = layout[2]
        total = sum(values) if gather is None else sum(gather(values))
        if total - total != 0:
            values = list(map(_parse_value, raw))  # raises for NaN/Inf; accepts an overflowing sum
    fields = dict(zip(names, values))
    if "" in fields or "time" in fields or len(fields) != nfields:
        raise ValueError
    return Record(meas, tags, fields, ts)


_call = operator.call


def _layout_of(values: list[FieldValue]) -> tuple[list, list[int], Callable[[list], tuple] | None]:
    """(a converter per value, positions of the floats, a getter of the float values as a tuple, or
    None when every value is a float)."""
    floats = [i for i, v in enumerate(values) if type(v) is float]
    if len(floats) == len(values):
        gather = None
    elif len(floats) == 1:
        only = floats[0]
        gather = lambda vs: (vs[only],)  # noqa: E731 - itemgetter of one index returns no tuple
    else:
        gather = operator.itemgetter(*floats) if floats else (lambda vs: ())
    return [_converter(v) for v in values], floats, gather


class _Scanner:
    """The careful reader: InfluxDB's scanners, one line at a time, naming the column of a problem.

    ``line`` is one line as InfluxDB cuts them (see ``_split``), leading blanks already stripped.
    """

    __slots__ = ("line", "lineno", "offset")

    def __init__(self, line: str, lineno: int, offset: int) -> None:
        self.line = line
        self.lineno = lineno
        self.offset = offset  # characters stripped from the left, for columns

    def fail(self, msg: str, pos: int) -> LineProtocolError:
        return LineProtocolError(msg, line=self.lineno, column=pos + 1 + self.offset, text=self.line)

    # -- the series key: scanKey, scanMeasurement, scanTags -----------------------------------

    def scan_key(self) -> tuple[int, str, dict[str, str]]:
        """(end of the key, measurement, tags); the key ends at an unescaped space."""
        buf = self.line
        n = len(buf)
        if n == 0 or buf[0] == ",":
            raise self.fail("missing measurement name", 0)
        i = 0
        has_tags = False
        while True:
            i += 1
            if i >= n:
                raise self.fail("missing fields (the line ends after the measurement)", i)
            if buf[i - 1] == "\\":
                continue
            if buf[i] == ",":
                has_tags = True
                i += 1
                break
            if buf[i] == " ":
                break
        meas_end = i - 1 if has_tags else i
        spans: list[tuple[int, int, int]] = []  # (key start, '=' position, value end)
        while has_tags:
            kstart = i
            if i >= n or buf[i] in " ,=":
                raise self.fail("missing tag key", i)
            while True:
                i += 1
                if i >= n or (buf[i] in " ," and buf[i - 1] != "\\"):
                    raise self.fail(f"tag key {buf[kstart:i]!r} has no '=' and value", i)
                if buf[i] == "=" and buf[i - 1] != "\\":
                    break
            eq = i
            i += 1
            if i >= n or buf[i] in ", ":
                raise self.fail(f"tag {buf[kstart:eq]!r} has an empty value", i)
            while True:
                i += 1
                if i >= n:
                    raise self.fail("missing fields (the line ends after the tags)", i)
                c = buf[i]
                if buf[i - 1] == "\\":
                    continue
                if c == "=":
                    raise self.fail(f"unescaped '=' in the value of tag {buf[kstart:eq]!r}", i)
                if c == ",":
                    spans.append((kstart, eq, i))
                    i += 1
                    break
                if c == " ":
                    spans.append((kstart, eq, i))
                    has_tags = False
                    break
        if len(buf) > MAX_KEY_BYTES // 4 and len(buf[:i].encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise self.fail(f"the series key is longer than {MAX_KEY_BYTES} bytes", 0)
        meas = buf[:meas_end]
        if "\\" in meas:
            meas = _NAME_UNESC.sub(r"\1", meas)
            bad = _MEAS_BACKSLASH.search(meas)
            if bad is not None:
                # InfluxDB files it under a name with that backslash dropped, where no query finds it
                raise self.fail(f"measurement {meas!r} has a backslash before {bad.group(1)!r}, which InfluxDB "
                                "does not store as written", bad.start())
        tags: dict[str, str] = {}
        raw_keys = set()
        for kstart, eq, vend in spans:
            rk = buf[kstart:eq]
            if rk in raw_keys:
                raise self.fail(f"tag key {rk!r} appears twice", kstart)
            raw_keys.add(rk)
            rv = buf[eq + 1 : vend]
            if "\\" in rk:
                rk = _TAG_UNESC.sub(r"\1", rk)
            if "\\" in rv:
                rv = _TAG_UNESC.sub(r"\1", rv)
            if rk == "time":
                raise self.fail("tag key 'time' is reserved (InfluxDB drops the point)", kstart)
            tags[rk] = rv
        return i, meas, tags

    # -- fields: scanFields (the parser) and the field iterator (what the engine stores) --------

    def scan_fields(self, i: int) -> tuple[int, int]:
        """(start, end) of the fields block after position ``i``, checked as InfluxDB's parser does."""
        buf = self.line
        n = len(buf)
        while i < n and buf[i] in _WS:
            i += 1
        start = i
        quoted = False
        equals = commas = 0
        while i < n:
            c = buf[i]
            if c == "\\" and i + 1 < n:
                i += 2
                continue
            if c == '"' and equals > commas:
                quoted = not quoted
                i += 1
                continue
            if c == "=" and not quoted:
                equals += 1
                before = buf[i - 1]
                if (before == " " or before == ",") and (i < 2 or buf[i - 2] != "\\"):
                    raise self.fail("empty field key", i)
                key = buf[start:i].rsplit(",", 1)[-1]
                if i + 1 >= n or buf[i + 1] in ", ":
                    raise self.fail(f"field {key!r} has an empty value", i + 1)
                nxt = buf[i + 1]
                if nxt in _NUM_FIRST:
                    i = self.scan_number(i + 1, key)
                    continue
                if nxt != '"':
                    i = self.scan_boolean(i + 1, key)
                    continue
            if c == "," and not quoted:
                commas += 1
            if c == " " and not quoted:
                break
            i += 1
        if quoted:
            raise self.fail("unterminated string field value (missing closing '\"')", i)
        if equals == 0 and start == i:
            raise self.fail("missing fields (a point needs at least one field)", i)
        if equals == 0 or commas != equals - 1:
            raise self.fail("invalid field format (every field needs a key, '=' and a value)", start)
        return start, i

    def scan_number(self, i: int, key: str) -> int:
        buf = self.line
        n = len(buf)
        start = i
        is_int = is_uint = decimal = scientific = False
        if buf[i] == "-":
            i += 1
            if i == n:
                raise self.fail("invalid number '-'", start)
        while i < n:
            c = buf[i]
            if c == "," or c == " ":
                break
            if c == "i" and i > start and not (is_int or is_uint):
                is_int = True
                i += 1
                continue
            if c == "u" and i > start and not (is_int or is_uint):
                is_uint = True
                i += 1
                continue
            if c == ".":
                if decimal:
                    raise self.fail(f"field {key!r} has invalid number {self._word(start)!r} (two decimal points)", start)
                decimal = True
            if i > start and (c == "e" or c == "E"):
                scientific = True
                i += 1
                continue
            if (c == "+" or c == "-") and buf[i - 1] in "eE":
                i += 1
                continue
            if c not in _NUMERIC:
                raise self.fail(self._bad_number(start, key), start)
            i += 1
        raw = buf[start:i]
        if (is_int or is_uint) and (decimal or scientific):
            raise self.fail(f"field {key!r} has invalid number {raw!r} (an integer has no decimal point or exponent)", start)
        digits = i - start - is_int - decimal - (buf[start] == "-")
        if digits == 0:
            raise self.fail(f"field {key!r} has invalid number {raw!r}", start)
        if is_int:
            if buf[i - 1] != "i":
                raise self.fail(f"field {key!r} has invalid number {raw!r}", start)
            if not INT64_MIN <= int(raw[:-1]) <= INT64_MAX:
                raise self.fail(f"field {key!r}: integer {raw!r} is out of the signed 64-bit range", start)
        elif is_uint:
            # InfluxDB 1.x is built with unsigned integers switched off; line protocol, InfluxDB 2
            # and 3 and Telegraf have them, and the sinks write them as the store accepts them
            if buf[i - 1] != "u" or buf[start] == "-":
                raise self.fail(f"field {key!r} has invalid number {raw!r}", start)
            if int(raw[:-1]) > UINT64_MAX:
                raise self.fail(f"field {key!r}: unsigned integer {raw!r} is out of the 64-bit range", start)
        elif scientific or len(raw) >= 25:
            try:
                f = float(raw)
            except ValueError:
                f = math.nan
            if f != f or f in (math.inf, -math.inf):
                raise self.fail(f"field {key!r} has invalid float {raw!r}", start)
        return i

    def scan_boolean(self, i: int, key: str) -> int:
        buf = self.line
        n = len(buf)
        start = i
        if buf[i] not in "tfTF":
            raise self.fail(self._bad_number(start, key), start)
        i += 1
        while i < n and buf[i] != "," and buf[i] != " ":
            i += 1
        if buf[start:i] not in _BOOL_WORDS:
            raise self.fail(f"field {key!r} has invalid boolean {buf[start:i]!r}", start)
        return i

    def _bad_number(self, start: int, key: str) -> str:
        word = self._word(start)
        if word.lstrip("+-").lower() in ("nan", "inf", "infinity"):
            return f"field {key!r} is {word!r}; NaN and Inf are not valid values"
        return (f"field {key!r} has invalid value {word!r} (expected a float, an integer with 'i' or 'u',"
                ' a boolean or a "quoted string")')

    def _word(self, start: int) -> str:
        end = start
        buf = self.line
        while end < len(buf) and buf[end] not in ", ":
            end += 1
        return buf[start:end]

    def fields(self, start: int, end: int) -> dict[str, FieldValue]:
        """The fields the storage engine reads from the block (InfluxDB's field iterator)."""
        buf = self.line
        fields: dict[str, FieldValue] = {}
        i = start
        while i < end:
            kstart = i
            while i < end and not (buf[i] == "=" and (i == kstart or buf[i - 1] != "\\")):
                i += 1
            if i > end - 2:
                raise self.fail(f"field {buf[kstart:end]!r} has no '=' and value where InfluxDB reads fields", kstart)
            key = buf[kstart:i]
            if "\\" in key:
                key = _NAME_UNESC.sub(r"\1", key)
            i += 1
            vstart = i
            quoted = False
            while i < end:
                c = buf[i]
                if c == "\\" and i + 1 < end and buf[i + 1] in '"\\':
                    i += 2
                    continue
                if c == '"':
                    quoted = not quoted
                elif c == "," and not quoted:
                    break
                i += 1
            raw = buf[vstart:i]
            i += 1
            if not raw:
                continue  # the engine skips a field without a value
            if not key:
                # InfluxDB keeps a field named "", which no InfluxQL query can name
                raise self.fail("empty field key", kstart)
            value = self._engine_value(key, raw, vstart)
            if key == "time":
                raise self.fail("field key 'time' is reserved (InfluxDB drops the field)", kstart)
            old = fields.get(key)
            if old is not None and _kind(old) != _kind(value):
                raise self.fail(f"field {key!r} appears twice with different types", kstart)
            fields[key] = value
        return fields

    def _engine_value(self, key: str, raw: str, pos: int) -> FieldValue:
        c = raw[0]
        if c == '"':
            s = raw[1:-1]
            if "\\" in s:
                s = s.replace('\\\\', "\x00\x00").replace('\\"', '"').replace("\x00\x00", "\\") \
                    if "\x00" not in s else _unescape_string(s)
            return s
        if c in _ITER_NUMERIC:
            last = raw[-1]
            if last == "i":
                body = raw[:-1]
                if body.isascii() and _GO_INT.fullmatch(body) and INT64_MIN <= int(body) <= INT64_MAX:
                    return int(body)
            elif last == "u":
                body = raw[:-1]
                if body.isascii() and _GO_UINT.fullmatch(body) and int(body) <= UINT64_MAX:
                    return UInt(int(body))
            elif raw.isascii() and _GO_FLOAT.fullmatch(raw):
                f = float(raw)
                if f not in (math.inf, -math.inf):
                    return f
        elif raw in _GO_BOOLS:
            return _GO_BOOLS[raw]
        raise self.fail(f"field {key!r}: the store cannot read value {raw!r} (InfluxDB fails the write)", pos)

    # -- the whole line -----------------------------------------------------------------------

    def parse(self, factor: int, default_time_ns: int | None) -> Record:
        line = self.line
        for pos, ch in enumerate(line):
            if "\ud800" <= ch <= "\udfff":
                raise self.fail("not valid UTF-8", pos)
        key_end, meas, tags = self.scan_key()
        fstart, fend = self.scan_fields(key_end)
        if len(line) > MAX_KEY_BYTES // 4:
            self._check_key_length(key_end, fstart, fend)
        # scanTime
        n = len(line)
        i = fend
        while i < n and line[i] in _WS:
            i += 1
        tstart = i
        while i < n:
            c = line[i]
            if c == "\n" or c == " ":
                break
            if i == tstart and c == "-":
                i += 1
                continue
            if not "0" <= c <= "9":
                raise self.fail(f"timestamp {line[tstart:].split(' ')[0]!r} is not an integer", i)
            i += 1
        traw = line[tstart:i]
        if traw:
            if traw == "-":
                raise self.fail("timestamp '-' is not an integer", tstart)
            t = int(traw) * factor
            if not MIN_TIME_NS <= t <= MAX_TIME_NS:
                raise self.fail(f"timestamp {traw} is outside the range InfluxDB stores", tstart)
            while i < n:
                if line[i] != " ":
                    raise self.fail("unexpected text after the timestamp", i)
                i += 1
            ts: int | None = t
        else:
            ts = default_time_ns
        fields = self.fields(fstart, fend)
        if not fields:
            raise self.fail("missing fields (no field has both a key and a value)", fstart)
        return Record(meas, tags, fields, ts)

    def _check_key_length(self, key_end: int, fstart: int, fend: int) -> None:
        key_bytes = len(self.line[:key_end].encode("utf-8", "surrogatepass"))
        for part in self.line[fstart:fend].split(","):
            k = part.split("=", 1)[0]
            if key_bytes + 4 + len(k.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                raise self.fail(f"the series key with field {k!r} is longer than {MAX_KEY_BYTES} bytes", fstart)


def _unescape_string(s: str) -> str:
    out = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in '\\"':
            out.append(s[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _utf8_ok(line: str) -> bool:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value: FieldValue) -> type:
    return type(value)


def _quotes_settled(piece: str) -> bool:
    """True when InfluxDB's line scanner leaves ``piece`` (a newline-free stretch) outside any quote.

    Without backslashes, a quote toggles only after the first space and only when the line has
    more ``=`` than ``,`` so far; if every pair of quotes after the first space encloses no space,
    ``,`` or ``=``, both quotes of a pair see the same counts and toggle together."""
    if "\\" in piece:
        # backslashes only in the series key, none doubled: the scanner's pairs and the first
        # space no backslash precedes agree on where the key ends
        if piece[-1] == "\\" or "\\\\" in piece:
            return False
        sp = _series_end(piece)
        if sp < 0:
            return True
        if "\\" in piece[sp:]:
            return False
    else:
        sp = piece.find(" ")
        if sp < 0:
            return True
    parts = piece[sp + 1 :].split('"')
    return len(parts) % 2 == 1 and not any(" " in q or "," in q or "=" in q for q in parts[1::2])


def _scan_line_end(data: str, i: int) -> int:
    """Where the line starting at ``i`` ends (models/points.go scanLine): at a newline outside a
    quoted field value and not right after a backslash."""
    n = len(data)
    quoted = fields = False
    equals = commas = 0
    while i < n:
        c = data[i]
        if c == "\\":
            i += 2
            continue
        if c == " ":
            fields = True
        if fields:
            if not quoted and c == "=":
                equals += 1
                i += 1
                continue
            if not quoted and c == ",":
                commas += 1
                i += 1
                continue
            if c == '"' and equals > commas:
                quoted = not quoted
                i += 1
                continue
        if c == "\n" and not quoted:
            break
        i += 1
    return i


def _split(data: str) -> Iterator[tuple[int, str]]:
    """(line number, line) as InfluxDB cuts them: a newline inside a quoted field value, or right
    after a backslash, does not end the line (models/points.go scanLine). The plain split is
    trusted wherever the quotes provably settle; the character scanner runs only elsewhere."""
    pieces = data.split("\n")
    count = len(pieces)
    pos = 0
    lineno = 1
    k = 0
    while k < count:
        seg = pieces[k]
        if k == count - 1 or ('"' not in seg and seg[-1:] != "\\") or _quotes_settled(seg):
            # (the last piece has no newline after it: it is the rest of the input either way)
            if k < count - 1 or seg:
                yield lineno, seg
            pos += len(seg) + 1
            lineno += 1
            k += 1
            continue
        end = _scan_line_end(data, pos)
        block = data[pos:end]
        yield lineno, block
        n = block.count("\n") + 1
        lineno += n
        k += n
        pos = end + 1


def _unit_floor(t: int | None, factor: int) -> int | None:
    """InfluxDB truncates the default time of a point without a timestamp to the precision."""
    if t is None or factor == 1:
        return t
    return t - t % factor


def decode_report(data: str | bytes, *, precision: str = "ns", default_time_ns: int | None = None,
                  keep_lines: bool = False) -> DecodeResult:
    """Decode every line it can; each bad line becomes an error naming its line and column.

    ``keep_lines`` also keeps each record's line (see ``DecodeResult``)."""
    factor = _decode_factor(precision)
    default_time_ns = _unit_floor(default_time_ns, factor)
    result = DecodeResult()
    if keep_lines:
        result.lines, result.linenos, result.verbatim = [], [], []
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            # every line holding bytes that are not UTF-8 is refused on its own; the rest are read
            data = raw.decode("utf-8", errors="surrogateescape")
            return _decode_lines(data, factor, default_time_ns, result, check_utf8=True)
    if ("#" in data or "\\\n" in data or "\x00" in data or "\n " in data or "\n\t" in data
            or data[:1] in _WS):
        return _decode_lines(data, factor, default_time_ns, result)
    if '"' in data:
        # string values: the plain split is InfluxDB's cut when every line's quotes settle (what
        # ``_split`` checks line by line); the common case then needs no line scanner
        pieces = data.split("\n")
        if not all(_quotes_settled(seg) for seg in pieces[:-1] if '"' in seg):
            return _decode_lines(data, factor, default_time_ns, result)
        if keep_lines:
            return _decode_clean_kept(pieces, factor, default_time_ns, result)
        return _decode_lines(data, factor, default_time_ns, result)
    if keep_lines:
        return _decode_clean_kept(data.split("\n"), factor, default_time_ns, result)
    # the common case, clean machine-written lines: no per-line checks beyond the fast reader
    append = result.records.append
    for lineno, line in enumerate(data.split("\n"), 1):
        if line:
            try:
                append(_fast_line(line, factor, default_time_ns))
            except (ValueError, ArithmeticError):
                try:
                    append(_Scanner(line, lineno, 0).parse(factor, default_time_ns))
                except LineProtocolError as exc:
                    result.errors.append(exc)
    return result


def _decode_clean_kept(pieces: list[str], factor: int, default_time_ns: int | None, result: DecodeResult
                       ) -> DecodeResult:
    """The common-case loop of ``decode_report`` that also keeps each record's line; ``pieces`` are
    the lines as InfluxDB cuts them (no comments, indentation or line inside a string)."""
    append = result.records.append
    keep_line = result.lines.append  # type: ignore[union-attr]
    keep_lineno = result.linenos.append  # type: ignore[union-attr]
    keep_verbatim = result.verbatim.append  # type: ignore[union-attr]
    for lineno, line in enumerate(pieces, 1):
        if line:
            try:
                append(_fast_line(line, factor, default_time_ns))
                keep_verbatim(True)
            except (ValueError, ArithmeticError):
                try:
                    append(_Scanner(line, lineno, 0).parse(factor, default_time_ns))
                except LineProtocolError as exc:
                    result.errors.append(exc)
                    continue
                keep_verbatim(False)
            keep_line(line)
            keep_lineno(lineno)
    return result


def _decode_lines(data: str, factor: int, default_time_ns: int | None, result: DecodeResult,
                  *, check_utf8: bool = False, careful_only: bool = False) -> DecodeResult:
    """The general loop: comments, indentation, quotes, escapes, bytes that are not UTF-8."""
    append = result.records.append
    keep = result.lines is not None
    for lineno, line in _split(data):
        offset = 0
        if line and line[0] in _WS:
            stripped = line.lstrip(_WS)
            offset = len(line) - len(stripped)
            line = stripped
        if not line or line[0] == "#":
            continue
        if not careful_only and (not check_utf8 or line.isascii() or _utf8_ok(line)):
            try:
                append(_fast_line(line, factor, default_time_ns))
                if keep:
                    result.lines.append(line)  # type: ignore[union-attr]
                    result.linenos.append(lineno)  # type: ignore[union-attr]
                    result.verbatim.append("\n" not in line)  # type: ignore[union-attr]
                continue
            except (ValueError, ArithmeticError):
                pass  # the careful reader finds the column of the problem
        try:
            append(_Scanner(line, lineno, offset).parse(factor, default_time_ns))
        except LineProtocolError as exc:
            result.errors.append(exc)
            continue
        if keep:
            result.lines.append(line)  # type: ignore[union-attr]
            result.linenos.append(lineno)  # type: ignore[union-attr]
            result.verbatim.append(False)  # type: ignore[union-attr]
    return result


def measurement_and_time(line: str) -> tuple[str, int] | None:
    """The measurement and timestamp of a line already validated, without decoding its fields;
    None when the line does not end in a timestamp or its measurement needs the careful reader.

    For writers that file lines by measurement and time (the embedded store)."""
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == "," or c == " ":
            break
        if c == "\\":
            return None
        i += 1
    if i == 0 or i == n:
        return None
    sp = line.rfind(" ")
    if sp <= i:
        return None
    tpart = line[sp + 1 :]
    if not tpart.isascii() or not (tpart.isdigit() or (tpart[:1] == "-" and tpart[1:].isdigit())):
        return None
    ts = int(tpart)
    if not MIN_TIME_NS <= ts <= MAX_TIME_NS:
        return None
    return line[:i], ts


def decode(data: str | bytes, *, precision: str = "ns", default_time_ns: int | None = None) -> list[Record]:
    """Decode line protocol strictly: the first bad line raises LineProtocolError (line, column)."""
    result = decode_report(data, precision=precision, default_time_ns=default_time_ns)
    if result.errors:
        raise result.errors[0]
    return result.records


def decode_line(line: str, *, precision: str = "ns", default_time_ns: int | None = None) -> Record:
    """Decode exactly one line."""
    records = decode(line, precision=precision, default_time_ns=default_time_ns)
    if len(records) != 1:
        msg = f"expected one point, found {len(records)}"
        raise LineProtocolError(msg, line=1)
    return records[0]
