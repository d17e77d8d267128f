"""InfluxDB line protocol: the encoder and the decoder, side by side, tested as a round trip.

Escaping follows InfluxDB's own parser: the measurement escapes comma and space; tag keys, tag
values and field keys also escape ``=``; string field values escape ``"`` and ``\\``. A backslash
before any other character is literal, and the reader takes it together with the next character.
Values that line protocol cannot carry (newlines, a backslash right before a separator, NaN and
Inf, empty tag values, points without fields) are refused with a clear error, never mangled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dcim.errors import LineProtocolError
from dcim.record import FieldValue, Record, UInt

#: Precision name -> nanoseconds per unit. ``n``/``u`` are InfluxDB 1.x spellings.
PRECISIONS: dict[str, int] = {"ns": 1, "n": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_MEAS_ESC = frozenset(", ")
_KEY_ESC = frozenset(", =")
_MEAS_TRANS = str.maketrans({",": "\\,", " ": "\\ "})
_KEY_TRANS = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})
_STR_TRANS = str.maketrans({"\\": "\\\\", '"': '\\"'})
_TRUE = frozenset(("t", "T", "true", "True", "TRUE"))
_FALSE = frozenset(("f", "F", "false", "False", "FALSE"))
_RESERVED_KEYS = frozenset(("time",))
_CACHE_MAX = 200_000


def _precision_factor(precision: str) -> int:
    try:
        return PRECISIONS[precision]
    except KeyError:
        msg = f"unknown precision {precision!r}; use one of ns, us, ms, s"
        raise ValueError(msg) from None


# --- encoder ----------------------------------------------------------------------------------


def _check_name(text: str, what: str, escapable: frozenset[str]) -> None:
    """Refuse what line protocol cannot carry; the message names what and why."""
    if not text:
        msg = f"{what} must not be empty"
        raise LineProtocolError(msg)
    if "\n" in text or "\r" in text:
        msg = f"{what} {text!r} contains a newline, which line protocol cannot carry"
        raise LineProtocolError(msg)
    if "\\" in text:
        # InfluxDB 1.x takes a character right after a backslash as escaped, whatever precedes
        # the backslash, so a backslash before a separator, or at the end, would change the value.
        for i, ch in enumerate(text):
            if ch == "\\":
                nxt = text[i + 1] if i + 1 < len(text) else ""
                if nxt == "":
                    msg = f"{what} {text!r} ends in a backslash, which line protocol cannot carry"
                    raise LineProtocolError(msg)
                if nxt in escapable:
                    msg = f"{what} {text!r} has a backslash before {nxt!r}, which line protocol cannot carry"
                    raise LineProtocolError(msg)


class _EscapeCache(dict):
    """Escaped names and tag values, checked once; bounded so a stream of unique values cannot grow it."""

    __slots__ = ("what", "escapable", "trans")

    def __init__(self, what: str, escapable: frozenset[str], trans: dict[int, str]) -> None:
        super().__init__()
        self.what = what
        self.escapable = escapable
        self.trans = trans

    def __missing__(self, text: str) -> str:
        if type(text) is not str:
            msg = f"{self.what} must be a string, got {type(text).__name__} {text!r}"
            raise LineProtocolError(msg)
        _check_name(text, self.what, self.escapable)
        if self.what != "measurement" and text in _RESERVED_KEYS:
            msg = f"{self.what} {text!r} is reserved by InfluxDB"
            raise LineProtocolError(msg)
        if self.what == "measurement" and text[0] in "#\t":
            msg = f"measurement {text!r} starts with {text[0]!r}, which readers take for a comment or indentation"
            raise LineProtocolError(msg)
        escaped = text.translate(self.trans)
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[text] = escaped
        return escaped


class _TagValueCache(_EscapeCache):
    def __missing__(self, text: str) -> str:
        if type(text) is not str:
            msg = f"tag value must be a string, got {type(text).__name__} {text!r}"
            raise LineProtocolError(msg)
        if text == "":
            msg = "tag value must not be empty (omit the tag instead)"
            raise LineProtocolError(msg)
        _check_name(text, "tag value", self.escapable)
        escaped = text.translate(self.trans)
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[text] = escaped
        return escaped


_measurements = _EscapeCache("measurement", _MEAS_ESC, _MEAS_TRANS)
_keys = _EscapeCache("key", _KEY_ESC, _KEY_TRANS)
_tag_values = _TagValueCache("tag value", _KEY_ESC, _KEY_TRANS)


def format_field_value(value: FieldValue, name: str = "?") -> str:
    """One field value in line-protocol syntax."""
    t = type(value)
    if t is float:
        if value != value or value in (math.inf, -math.inf):
            msg = f"field {name!r} is {value!r}; NaN and Inf cannot be written (omit the field instead)"
            raise LineProtocolError(msg)
        return repr(value)
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            msg = f"field {name!r} = {value} is outside the signed 64-bit range"
            raise LineProtocolError(msg)
        return f"{value}i"
    if t is bool:
        return "true" if value else "false"
    if t is str:
        if "\n" in value or "\r" in value:
            msg = f"string field {name!r} contains a newline, which line protocol cannot carry"
            raise LineProtocolError(msg)
        return '"' + value.translate(_STR_TRANS) + '"'
    if t is UInt:
        if value > UINT64_MAX:
            msg = f"field {name!r} = {int(value)} is outside the unsigned 64-bit range"
            raise LineProtocolError(msg)
        return f"{int(value)}u"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_field_value(float(value), name)
    if isinstance(value, int):
        return format_field_value(int(value), name)
    msg = f"field {name!r} has unsupported type {t.__name__} ({value!r})"
    raise LineProtocolError(msg)


class _FieldTemplate:
    """A format string for one combination of field names and value types, checked once.

    Most points of a stream repeat the same fields with the same types, so their keys are escaped
    and checked once and each point costs one ``%`` formatting call (faster than str.format for floats).
    """

    __slots__ = ("fmt", "floats", "ints", "bools", "strs", "uints", "all_float", "converts")

    def __init__(self, names: tuple[str, ...], types: tuple[type, ...]) -> None:
        parts = []
        self.floats: list[int] = []
        self.ints: list[int] = []
        self.bools: list[int] = []
        self.strs: list[int] = []
        self.uints: list[int] = []
        for i, (name, t) in enumerate(zip(names, types)):
            key = _keys[name].replace("%", "%%")
            if t is float:
                parts.append(f"{key}=%r")
                self.floats.append(i)
            elif t is bool:
                parts.append(f"{key}=%s")
                self.bools.append(i)
            elif t is int:
                parts.append(f"{key}=%di")
                self.ints.append(i)
            elif t is str:
                parts.append(f"{key}=%s")
                self.strs.append(i)
            elif t is UInt:
                parts.append(f"{key}=%du")
                self.uints.append(i)
            else:
                msg = f"field {name!r} has unsupported type {t.__name__}"
                raise LineProtocolError(msg)
        self.fmt = ",".join(parts)
        self.all_float = len(self.floats) == len(names)
        self.converts = bool(self.ints or self.bools or self.strs or self.uints)

    def render(self, values: tuple) -> str | None:
        """The fields part, or None when a value needs the careful path (which raises the error)."""
        if self.all_float:
            total = sum(values)
            if total - total != 0:  # NaN or Inf somewhere (or an overflowing sum: checked one by one)
                return None
            return self.fmt % values
        floats = self.floats
        if floats:
            total = sum([values[i] for i in floats])
            if total - total != 0:
                return None
        if self.converts:
            vals = list(values)
            for i in self.ints:
                if not INT64_MIN <= vals[i] <= INT64_MAX:
                    return None
            for i in self.uints:
                if vals[i] > UINT64_MAX:
                    return None
                vals[i] = int(vals[i])
            for i in self.bools:
                vals[i] = "true" if vals[i] else "false"
            for i in self.strs:
                v = vals[i]
                if "\n" in v or "\r" in v:
                    return None
                vals[i] = '"' + v.translate(_STR_TRANS) + '"'
            return self.fmt % tuple(vals)
        return self.fmt % values


class _SeriesCache(dict):
    """Escaped ``measurement,tag=value,...`` prefixes by (measurement, tag items); bounded."""

    __slots__ = ()

    def build(self, key: tuple | None, measurement: str, tags: dict[str, str]) -> str:
        """Escape and check a series once; ``key`` None (unhashable tags) is not cached."""
        prefix = _measurements[measurement]
        if tags:
            prefix += "".join(f",{_keys[k]}={_tag_values[tags[k]]}" for k in sorted(tags))
        if key is not None:
            if len(self) >= _CACHE_MAX:
                self.clear()
            self[key] = prefix
        return prefix


_series = _SeriesCache()
_templates: dict[tuple, _FieldTemplate] = {}


def _careful_fields(fields: dict[str, FieldValue]) -> str:
    return ",".join(f"{_keys[k]}={format_field_value(v, k)}" for k, v in fields.items())


def encode_record(record: Record, precision: str = "ns") -> str:
    """One record as one line (no trailing newline)."""
    try:
        tags = record.tags
        try:
            skey = (record.measurement, tuple(tags.items()))
            prefix = _series.get(skey)
        except TypeError:  # an unhashable tag value: the careful path names it
            skey, prefix = None, None
        if prefix is None:
            prefix = _series.build(skey, record.measurement, tags)
        fields = record.fields
        if not fields:
            msg = "a point needs at least one field"
            raise LineProtocolError(msg)
        values = tuple(fields.values())
        tkey = (tuple(fields), tuple(map(type, values)))
        template = _templates.get(tkey)
        if template is None:
            template = _FieldTemplate(*tkey)
            if len(_templates) >= _CACHE_MAX:
                _templates.clear()
            _templates[tkey] = template
        body = template.render(values)
        if body is None:
            body = _careful_fields(fields)
        ts = record.time_ns
        if ts is None:
            return f"{prefix} {body}"
        if precision != "ns":
            ts //= _precision_factor(precision)
        return f"{prefix} {body} {ts}"
    except LineProtocolError as exc:
        if exc.text is None and exc.line is None:
            msg = f"cannot encode {record.measurement!r} point: {exc.reason}"
            raise LineProtocolError(msg, text=str(record)) from None
        raise


def encode(records: Iterable[Record], precision: str = "ns") -> str:
    """Records as line protocol, one line each, newline-terminated.

    The loop inlines the cached path of ``encode_record`` (series prefix and field template
    both known, all values plain) and hands every other record to it.
    """
    if precision != "ns":
        lines = [encode_record(r, precision) for r in records]
    else:
        series_get = _series.get
        templates_get = _templates.get
        lines = []
        append = lines.append
        for r in records:
            fields = r.fields
            values = tuple(fields.values())
            try:
                prefix = series_get((r.measurement, tuple(r.tags.items())))
            except TypeError:
                prefix = None
            template = templates_get((tuple(fields), tuple(map(type, values))))
            if prefix is None or template is None or r.time_ns is None:
                append(encode_record(r))
                continue
            body = template.render(values)
            if body is None:
                append(encode_record(r))  # raises the precise error
                continue
            append(f"{prefix} {body} {r.time_ns}")
    if not lines:
        return ""
    lines.append("")
    return "\n".join(lines)


# --- decoder ----------------------------------------------------------------------------------


@dataclass(slots=True)
class DecodeResult:
    """What a lenient decode found: the good records and one error per bad line."""

    records: list[Record] = field(default_factory=list)
    errors: list[LineProtocolError] = field(default_factory=list)


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
        scanner = _Scanner(key, 0, 0)
        try:
            meas, tags = scanner.parse_series()
        except LineProtocolError:
            raise ValueError from None
        if scanner.pos != len(key):
            raise ValueError
        return meas, tags
    ntags = key.count(",")
    if ntags:
        parts = key.replace("=", ",").split(",")
        if len(parts) != 2 * ntags + 1:
            raise ValueError
        meas = parts[0]
        tags = dict(zip(parts[1::2], parts[2::2]))
        if "" in tags or "time" in tags or "" in tags.values():
            raise ValueError
    else:
        meas = key
        tags = {}
    if not meas:
        raise ValueError
    return meas, tags


def _series_end(line: str) -> int:
    """Index of the space that ends the series key: the first one no backslash escapes."""
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


#: field names of a line -> (a converter per value, positions of the floats); lines of one
#: series repeat their layout, so each value is converted without trying types in turn
_layouts: dict[tuple[str, ...], tuple[list, list[int]]] = {}


def _fast_line(line: str, factor: int, default_time_ns: int | None) -> Record:
    """Decode a line without quotes (backslashes only in the series key); any problem raises ValueError.

    Splits are done by C string methods (``replace`` then ``split`` gives keys and values in
    alternation); the careful scanner reports the exact column of whatever this refuses.
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
    if '"' in rest:
        # string values are fine here as long as they hold no separator the splits below use
        quoted = rest.split('"')
        if len(quoted) % 2 == 0 or any(" " in q or "," in q or "=" in q for q in quoted[1::2]):
            raise ValueError
    fpart, sep, tpart = rest.partition(" ")
    if sep:
        if not tpart or " " in tpart or "_" in tpart or tpart[0] == "+":
            raise ValueError
        ts = int(tpart) * factor
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
    if "_" in "".join(raw) and any("_" in v for v in raw if v[:1] != '"'):
        raise ValueError  # 1_000 is not a number in line protocol (the scanner says so)
    layout = _layouts.get(tuple(names))
    values: list[FieldValue] | None = None
    if layout is not None:
        try:
            if len(layout[1]) == nfields:
                values = list(map(float, raw))
            else:
                values = [conv(v) for conv, v in zip(layout[0], raw)]
        except (ValueError, KeyError, IndexError):
            values = None  # the types changed: work them out again
    if values is None:
        try:
            values = list(map(float, raw))
        except ValueError:
            values = list(map(_parse_value, raw))  # integers, booleans; raises on anything else
        if len(_layouts) >= _CACHE_MAX:
            _layouts.clear()
        floats = [i for i, v in enumerate(values) if type(v) is float]
        _layouts[tuple(names)] = ([_converter(v) for v in values], floats)
        layout = _layouts[tuple(names)]
    floats = layout[1]
    if floats:
        total = sum(values) if len(floats) == nfields else sum([values[i] for i in floats])
        if total - total != 0:
            values = list(map(_parse_value, raw))  # raises for NaN/Inf; accepts an overflowing sum
    fields = dict(zip(names, values))
    if "" in fields or "time" in fields or len(fields) != nfields:
        raise ValueError
    return Record(meas, tags, fields, ts)


class _Scanner:
    """The careful reader: walks one line character by character and names the column of a problem."""

    __slots__ = ("line", "pos", "lineno", "offset")

    def __init__(self, line: str, lineno: int, offset: int) -> None:
        self.line = line
        self.pos = 0
        self.lineno = lineno
        self.offset = offset  # characters stripped from the left, for columns

    def fail(self, msg: str, pos: int | None = None) -> LineProtocolError:
        p = self.pos if pos is None else pos
        return LineProtocolError(msg, line=self.lineno, column=p + 1 + self.offset, text=self.line)

    def token(self, stops: str, escapable: frozenset[str]) -> str:
        line = self.line
        n = len(line)
        out: list[str] = []
        i = self.pos
        while i < n:
            ch = line[i]
            if ch == "\\":
                if i + 1 >= n:
                    out.append(ch)
                    i += 1
                    break
                nxt = line[i + 1]
                out.append(nxt if nxt in escapable else ch + nxt)
                i += 2
                continue
            if ch in stops:
                break
            out.append(ch)
            i += 1
        self.pos = i
        return "".join(out)

    def peek(self) -> str:
        return self.line[self.pos] if self.pos < len(self.line) else ""

    def string_value(self) -> str:
        line = self.line
        start = self.pos
        i = self.pos + 1  # after the opening quote
        n = len(line)
        out: list[str] = []
        while i < n:
            ch = line[i]
            if ch == "\\" and i + 1 < n:
                nxt = line[i + 1]
                out.append(nxt if nxt in '"\\' else ch + nxt)
                i += 2
                continue
            if ch == '"':
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        raise self.fail("unterminated string field value (missing closing '\"')", start)

    def parse(self, factor: int, default_time_ns: int | None) -> Record:
        line = self.line
        meas, tags = self.parse_series()
        if self.peek() != " ":
            raise self.fail("expected a space and the fields after the measurement and tags")
        self.pos += 1
        return self._parse_rest(line, meas, tags, factor, default_time_ns)

    def parse_series(self) -> tuple[str, dict[str, str]]:
        """The measurement and tags; leaves ``pos`` on the character after them."""
        meas = self.token(", ", _MEAS_ESC)
        if not meas:
            raise self.fail("missing measurement name")
        tags: dict[str, str] = {}
        while self.peek() == ",":
            self.pos += 1
            kpos = self.pos
            k = self.token(", =", _KEY_ESC)
            if not k:
                raise self.fail("empty tag key", kpos)
            if k in _RESERVED_KEYS:
                raise self.fail(f"tag key {k!r} is reserved by InfluxDB", kpos)
            if self.peek() != "=":
                raise self.fail(f"tag {k!r} has no '=' and value")
            self.pos += 1
            vpos = self.pos
            v = self.token(", =", _KEY_ESC)
            if not v:
                raise self.fail(f"tag {k!r} has an empty value", vpos)
            if self.peek() == "=":
                raise self.fail(f"unescaped '=' in the value of tag {k!r}")
            tags[k] = v
        return meas, tags

    def _parse_rest(self, line: str, meas: str, tags: dict[str, str], factor: int,
                    default_time_ns: int | None) -> Record:
        fields: dict[str, FieldValue] = {}
        while True:
            kpos = self.pos
            k = self.token(", =", _KEY_ESC)
            if not k:
                if self.peek() != "=" and not fields:
                    raise self.fail("missing field (a point needs at least one field)", kpos)
                raise self.fail("empty field key", kpos)
            if k in _RESERVED_KEYS:
                raise self.fail(f"field key {k!r} is reserved by InfluxDB", kpos)
            if self.peek() != "=":
                raise self.fail(f"field {k!r} has no '=' and value")
            self.pos += 1
            vpos = self.pos
            if self.peek() == '"':
                value: FieldValue = self.string_value()
            else:
                raw = self.token(", ", frozenset())
                if not raw:
                    raise self.fail(f"field {k!r} has an empty value", vpos)
                value = self._value(k, raw, vpos)
            fields[k] = value
            nxt = self.peek()
            if nxt == ",":
                self.pos += 1
                continue
            if nxt in (" ", ""):
                break
            raise self.fail(f"unexpected {nxt!r} after the value of field {k!r}")
        ts = default_time_ns
        if self.peek() == " ":
            self.pos += 1
            tpos = self.pos
            tpart = line[self.pos :]
            if not tpart:
                raise self.fail("trailing space but no timestamp", tpos)
            if " " in tpart:
                raise self.fail("unexpected text after the timestamp", tpos + tpart.index(" "))
            body = tpart[1:] if tpart[0] == "-" else tpart
            if not body.isascii() or not body.isdigit():
                raise self.fail(f"timestamp {tpart!r} is not an integer", tpos)
            t = int(tpart)
            if not INT64_MIN <= t <= INT64_MAX:
                raise self.fail(f"timestamp {tpart} is outside the signed 64-bit range", tpos)
            ts = t * factor
        return Record(meas, tags, fields, ts)

    def _value(self, key: str, raw: str, vpos: int) -> FieldValue:
        try:
            return _parse_value(raw)
        except OverflowError:
            raise self.fail(f"integer {raw!r} of field {key!r} is out of the 64-bit range", vpos) from None
        except ArithmeticError:
            raise self.fail(f"field {key!r} is {raw!r}; NaN and Inf are not valid values", vpos) from None
        except ValueError:
            raise self.fail(
                f"field {key!r} has invalid value {raw!r} (expected a float, an integer with 'i' or 'u',"
                ' a boolean or a "quoted string")',
                vpos,
            ) from None


def _strip_lines(lines: list[str]) -> Iterator[tuple[int, str, int]]:
    """(line number, stripped line, columns stripped) for every line that is not blank or a comment."""
    for lineno, line in enumerate(lines, 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        c0 = line[0]
        if c0 == " " or c0 == "\t":
            stripped = line.lstrip(" \t")
            offset = len(line) - len(stripped)
            line = stripped
            if not line:
                continue
            c0 = line[0]
        else:
            offset = 0
        if c0 == "#":
            continue
        yield lineno, line, offset


def decode_report(data: str | bytes, *, precision: str = "ns", default_time_ns: int | None = None) -> DecodeResult:
    """Decode every line it can; each bad line becomes an error naming its line and column."""
    factor = _precision_factor(precision)
    result = DecodeResult()
    records = result.records
    append = records.append
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[: exc.start].count(b"\n") + 1
            msg = f"input is not valid UTF-8 (byte {exc.start})"
            result.errors.append(LineProtocolError(msg, line=bad))
            lines = raw.decode("utf-8", errors="replace").split("\n")
            lines[bad - 1] = ""
            return _decode_lines(lines, factor, default_time_ns, result)
    if "#" in data or "\r" in data or "\n " in data or "\n\t" in data or data[:1] in (" ", "\t"):
        return _decode_lines(data.split("\n"), factor, default_time_ns, result)
    # the common case, clean machine-written lines: no per-line checks beyond the fast reader
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


def _decode_lines(lines: list[str], factor: int, default_time_ns: int | None, result: DecodeResult) -> DecodeResult:
    """The general loop: comments, indentation, carriage returns, escapes and quotes."""
    append = result.records.append
    for lineno, line, offset in _strip_lines(lines):
        if "\r" in line:  # only a line end may carry one; the encoder refuses them inside values too
            col = line.index("\r") + 1 + offset
            result.errors.append(LineProtocolError("carriage return inside a line", line=lineno, column=col, text=line))
            continue
        try:
            append(_fast_line(line, factor, default_time_ns))
            continue
        except (ValueError, ArithmeticError):
            pass  # the careful reader finds the column of the problem
        try:
            append(_Scanner(line, lineno, offset).parse(factor, default_time_ns))
        except LineProtocolError as exc:
            result.errors.append(exc)
    return result


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
