"""InfluxDB line protocol, written: records (and the simulator's column blocks) as lines.

Escaping follows InfluxDB's own parser: the measurement escapes comma and space; tag keys, tag
values and field keys also escape ``=``; string field values escape ``"`` and ``\\``. A backslash
before any other character is literal, and the reader takes it together with the next character.
Values that line protocol cannot carry (newlines, a backslash right before a separator, NaN and
Inf, empty tag values, points without fields) are refused with a clear error, never mangled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from dcim.errors import LineProtocolError
from dcim.record import FieldValue, Record, UInt

#: Precision name -> nanoseconds per unit. ``n``/``u`` are InfluxDB 1.x spellings.
PRECISIONS: dict[str, int] = {"ns": 1, "n": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
#: InfluxDB keeps the two lowest int64 values and the highest as sentinels (models/time.go).
MIN_TIME_NS = INT64_MIN + 2
MAX_TIME_NS = INT64_MAX - 1
#: Longest series key (measurement, tags and one field key) InfluxDB accepts, in bytes.
MAX_KEY_BYTES = 65535

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
