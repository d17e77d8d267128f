"""InfluxDB line protocol: the encoder and the decoder, side by side, tested as a round trip.

Escaping follows InfluxDB's own parser: the measurement escapes comma and space; tag keys, tag
values and field keys also escape ``=``; string field values escape ``"`` and ``\\``. A backslash
before any other character is literal, and the reader takes it together with the next character.
Values that line protocol cannot carry (newlines, a backslash right before a separator, NaN and
Inf, empty tag values, points without fields) are refused with a clear error, never mangled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dcim.errors import LineProtocolError
from dcim.record import FieldValue, Record, UInt

#: Precision name -> nanoseconds per unit. ``n``/``u`` are InfluxDB 1.x spellings.
PRECISIONS: dict[str, int] = {"ns": 1, "n": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

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


def _check_name(text: str, what: str, refused_after_backslash: frozenset[str]) -> None:
    """Refuse what line protocol cannot carry; the message names what and why."""
    if not text:
        msg = f"{what} must not be empty"
        raise LineProtocolError(msg)
    if "\n" in text:
        msg = f"{what} {text!r} contains a newline, which line protocol cannot carry"
        raise LineProtocolError(msg)
    if "\\" in text:
        # InfluxDB takes the character after a backslash as escaped whatever precedes it, so a
        # name cannot end in one; field keys are also scanned in backslash pairs, so a backslash
        # right before a separator would move where the key ends.
        if text[-1] == "\\":
            msg = f"{what} {text!r} ends in a backslash, which line protocol cannot carry"
            raise LineProtocolError(msg)
        for i, ch in enumerate(text):
            if ch == "\\" and text[i + 1] in refused_after_backslash:
                msg = f"{what} {text!r} has a backslash before {text[i + 1]!r}, which line protocol cannot carry"
                raise LineProtocolError(msg)


#: ``"`` right after a backslash in a field key: InfluxDB's unescaping drops that backslash, so one
#: more keeps it
_KEY_AFTER_BACKSLASH = re.compile(r'(?<=\\)(")')


class _EscapeCache(dict):
    """Escaped names and tag values, checked once; bounded so a stream of unique values cannot grow it."""

    __slots__ = ("what", "refused", "trans", "quote_after_backslash")

    def __init__(self, what: str, refused: frozenset[str], trans: dict[int, str],
                 quote_after_backslash: re.Pattern | None) -> None:
        super().__init__()
        self.what = what
        self.refused = refused
        self.trans = trans
        self.quote_after_backslash = quote_after_backslash

    def __missing__(self, text: str) -> str:
        if type(text) is not str:
            msg = f"{self.what} must be a string, got {type(text).__name__} {text!r}"
            raise LineProtocolError(msg)
        if self.what == "tag value" and text == "":
            msg = "tag value must not be empty (omit the tag instead)"
            raise LineProtocolError(msg)
        _check_name(text, self.what, self.refused)
        if self.what in ("tag key", "field key") and text in _RESERVED_KEYS:
            msg = f"{self.what} {text!r} is reserved by InfluxDB"
            raise LineProtocolError(msg)
        if self.what == "measurement" and text[0] in "#\t\x00":
            msg = f"measurement {text!r} starts with {text[0]!r}, which readers take for a comment or indentation"
            raise LineProtocolError(msg)
        escaped = text.translate(self.trans)
        if self.quote_after_backslash is not None and "\\" in text:
            escaped = self.quote_after_backslash.sub(r"\\\1", escaped)
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[text] = escaped
        return escaped


_NOTHING: frozenset[str] = frozenset()
# InfluxDB 1.x files a measurement with a backslash before `,` `=` `"` or space under a name with
# that backslash dropped, where no query finds its points (tried on influxd 1.6.7): refused
_measurements = _EscapeCache("measurement", frozenset(', ="'), _MEAS_TRANS, None)
_keys = _EscapeCache("tag key", _NOTHING, _KEY_TRANS, None)
_tag_values = _EscapeCache("tag value", _NOTHING, _KEY_TRANS, None)
_field_keys = _EscapeCache("field key", frozenset(", ="), _KEY_TRANS, _KEY_AFTER_BACKSLASH)


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
        if "\n" in value:
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

    __slots__ = ("fmt", "floats", "ints", "bools", "strs", "uints", "all_float", "converts", "key_bytes")

    def __init__(self, names: tuple[str, ...], types: tuple[type, ...]) -> None:
        parts = []
        self.floats: list[int] = []
        self.ints: list[int] = []
        self.bools: list[int] = []
        self.strs: list[int] = []
        self.uints: list[int] = []
        self.key_bytes = max(len(_field_keys[name].encode("utf-8", "surrogatepass")) for name in names)
        if names and names[0][:1] in ("\t", "\x00"):
            msg = f"field key {names[0]!r} starts with {names[0][0]!r}, which InfluxDB skips as blank before the first field"
            raise LineProtocolError(msg)
        for i, (name, t) in enumerate(zip(names, types)):
            key = _field_keys[name].replace("%", "%%")
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
                if "\n" in v:
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
        # a cached series and a cached template together stay inside InfluxDB's key length
        if key is not None and (len(prefix) <= _HALF_KEY // 4 or _utf8_len(prefix) <= _HALF_KEY):
            if len(self) >= _CACHE_MAX:
                self.clear()
            self[key] = prefix
        return prefix


#: half of InfluxDB's series key limit (65535 bytes for measurement, tags, 4 separator bytes and
#: one field key): a series and a field layout each within it are written without a length check
_HALF_KEY = (65535 - 4) // 2


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


_series = _SeriesCache()
_templates: dict[tuple, _FieldTemplate] = {}


def _careful_fields(fields: dict[str, FieldValue]) -> str:
    return ",".join(f"{_field_keys[k]}={format_field_value(v, k)}" for k, v in fields.items())


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
            if template.key_bytes <= _HALF_KEY:
                if len(_templates) >= _CACHE_MAX:
                    _templates.clear()
                _templates[tkey] = template
        if (len(prefix) > _HALF_KEY // 4 or template.key_bytes > _HALF_KEY // 4) and \
                _utf8_len(prefix) + 4 + template.key_bytes > MAX_KEY_BYTES:
            msg = f"the series key with its longest field key is longer than InfluxDB's {MAX_KEY_BYTES} bytes"
            raise LineProtocolError(msg)
        body = template.render(values)
        if body is None:
            body = _careful_fields(fields)
        ts = record.time_ns
        if ts is None:
            return f"{prefix} {body}"
        if not MIN_TIME_NS <= ts <= MAX_TIME_NS:
            msg = f"timestamp {ts} is outside the range InfluxDB stores ({MIN_TIME_NS}..{MAX_TIME_NS} ns)"
            raise LineProtocolError(msg)
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
            t = r.time_ns
            if prefix is None or template is None or t is None or not -9223372036854775806 <= t <= 9223372036854775806:
                append(encode_record(r))
                continue
            body = template.render(values)
            if body is None:
                append(encode_record(r))  # raises the precise error
                continue
            append(f"{prefix} {body} {t}")
    if not lines:
        return ""
    lines.append("")
    return "\n".join(lines)


# --- decoder ----------------------------------------------------------------------------------
#
# The reader follows InfluxDB 1.6.7's parser (models/points.go, ParsePointsWithPrecision and the
# field iterator the storage engine reads values with) step by step, because what the store keeps
# is the reference: a line is accepted exactly when InfluxDB would store it, with the values it
# would store. Deliberate differences are listed in docs/core.md with their reasons.

#: What InfluxDB skips before a line, before the fields and before the timestamp.
_WS = " \t\x00"
#: InfluxDB keeps the two lowest int64 values and the highest as sentinels (models/time.go).
MIN_TIME_NS = INT64_MIN + 2
MAX_TIME_NS = INT64_MAX - 1
#: Longest series key (measurement, tags and one field key) InfluxDB accepts, in bytes.
MAX_KEY_BYTES = 65535
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


#: field names of a line -> (a converter per value, positions of the floats); lines of one
#: series repeat their layout, so each value is converted without trying types in turn
_layouts: dict[tuple[str, ...], tuple[list, list[int]]] = {}


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
    joined = "".join(v for v in raw if v[:1] != '"') if '"' in fpart else "".join(raw)
    if not (joined.isascii() and joined.isprintable()) or "_" in joined or "+" in joined:
        raise ValueError
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


def decode_report(data: str | bytes, *, precision: str = "ns", default_time_ns: int | None = None) -> DecodeResult:
    """Decode every line it can; each bad line becomes an error naming its line and column."""
    factor = _decode_factor(precision)
    default_time_ns = _unit_floor(default_time_ns, factor)
    result = DecodeResult()
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            # every line holding bytes that are not UTF-8 is refused on its own; the rest are read
            data = raw.decode("utf-8", errors="surrogateescape")
            return _decode_lines(data, factor, default_time_ns, result, check_utf8=True)
    if ("#" in data or '"' in data or "\\\n" in data or "\x00" in data or "\n " in data or "\n\t" in data
            or data[:1] in _WS):
        return _decode_lines(data, factor, default_time_ns, result)
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


def _decode_lines(data: str, factor: int, default_time_ns: int | None, result: DecodeResult,
                  *, check_utf8: bool = False, careful_only: bool = False) -> DecodeResult:
    """The general loop: comments, indentation, quotes, escapes, bytes that are not UTF-8."""
    append = result.records.append
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
