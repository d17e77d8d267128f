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
from collections.abc import Iterable, Sequence

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


# --- blocks: many series of one measurement in columns -------------------------------------------
#
# A block is one measurement's series in a fixed order with a fixed field list. Its layout (the list
# of constant pieces with a slot per value) is built once per set of rows; a step fills the slots
# column by column with C-level slice assignment and joins. The output is byte-identical to
# ``encode(block.records(...))``; tests hold it to that.

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# what goes before and after a value of each kind (the syntax ``format_field_value`` writes)
# ("whole": a float field whose values are whole numbers, written from integer text plus ".0",
# which is what repr gives for them and much cheaper to produce)
_OPEN = {"float": "", "whole": "", "int": "", "bool": "", "str": '"'}
_CLOSE = {"float": "", "whole": ".0", "int": "i", "bool": "", "str": '"'}


def series_prefix(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,tag=value,...`` exactly as ``encode`` writes it (tags sorted, escaped, checked)."""
    try:
        return _series.build(None, measurement, tags)
    except LineProtocolError as exc:
        msg = f"cannot encode {measurement!r} series {tags!r}: {exc.reason}"
        raise LineProtocolError(msg) from None


class SeriesBlock:
    """The series of one measurement, in order, that share one list of fields."""

    __slots__ = ("measurement", "tags", "fields", "_prefixes", "_seps", "_layouts", "_consts")

    def __init__(self, measurement: str, tags: Sequence[dict[str, str]], fields: Sequence[tuple[str, str]]) -> None:
        self.measurement = measurement
        self.tags = list(tags)
        self.fields = list(fields)
        if not self.fields:
            msg = "a block needs at least one field"
            raise ValueError(msg)
        for name, kind in self.fields:
            if not _FIELD_NAME.match(name) or kind not in _OPEN:
                msg = f"field {name!r} of kind {kind!r} cannot go through the block encoder"
                raise ValueError(msg)
        self._prefixes = [series_prefix(measurement, t) for t in self.tags]
        # the text between two values absorbs the first one's suffix and the next one's opening
        kinds = [k for _, k in self.fields]
        names = [n for n, _ in self.fields]
        self._seps = [f" {names[0]}={_OPEN[kinds[0]]}"]
        self._seps += [f"{_CLOSE[kinds[j - 1]]},{names[j]}={_OPEN[kinds[j]]}" for j in range(1, len(names))]
        self._seps.append(f"{_CLOSE[kinds[-1]]} ")
        self._layouts: dict[tuple, list[str]] = {}
        self._consts: dict[tuple[int, ...] | None, dict[int, str]] = {}

    def __len__(self) -> int:
        return len(self.tags)

    def _layout(self, rows: tuple[int, ...] | None, fold: tuple[tuple[int, str], ...]) -> list[str]:
        """The pieces of all lines with a slot per value: prefix, v1, sep, v2, ..., end, time, newline.

        Fields in ``fold`` (index, text) have the same value on every line; it is written into the
        constant pieces instead of a slot.
        """
        key = (rows, fold)
        parts = self._layouts.get(key)
        if parts is None:
            idx = range(len(self.tags)) if rows is None else rows
            folded = dict(fold)
            seps = self._seps
            # one line's pieces after the prefix, with "" for each slot
            tail: list[str] = []
            piece = seps[0]
            for j in range(len(self.fields)):
                if j in folded:
                    piece += folded[j] + seps[j + 1]
                else:
                    tail.append(piece)
                    tail.append("")
                    piece = seps[j + 1]
            tail += [piece, "", "\n"]
            first, rest = tail[0], tail[1:]
            parts = []
            for i in idx:
                parts.append(self._prefixes[i] + first)
                parts.extend(rest)
            if len(self._layouts) > 64:  # layouts change only at fault events; keep the cache small
                self._layouts.clear()
            self._layouts[key] = parts
        return parts

    def render(self, cols: Sequence[list], time_ns: int, rows: tuple[int, ...] | None = None) -> str:
        """Lines for ``rows`` (None: all) given one list per field, already restricted to those rows.

        Columns hold text (from ``fixed``, ``ints``, ``bool_col``) or numbers, which are turned into
        text here (str of a float is its repr); bool columns must be 'true'/'false' strings and str
        columns plain words (no quotes, backslashes or newlines).
        """
        n = len(self.tags) if rows is None else len(rows)
        if n == 0:
            return ""
        texts = []
        consts: dict[int, str] = {}
        for j, col in enumerate(cols):
            if len(col) != n:
                msg = f"{self.measurement}: column {self.fields[j][0]} has {len(col)} values for {n} lines"
                raise ValueError(msg)
            if type(col[0]) is not str:
                col = list(map(str, col))
            if col[0] == col[-1] and col.count(col[0]) == n:
                consts[j] = col[0]
            texts.append(col)
        # fold a column into the layout only once it held the same value two renders in a row, so a
        # value that changes every step never costs a layout rebuild
        prev = self._consts.get(rows, {})
        fold = tuple((j, v) for j, v in consts.items() if prev.get(j) == v)
        self._consts[rows] = consts
        parts = self._layout(rows, fold)
        folded = {j for j, _ in fold}
        width = 2 * (len(self.fields) - len(folded)) + 3
        m = 0
        for j, col in enumerate(texts):
            if j not in folded:
                parts[2 * m + 1 :: width] = col
                m += 1
        parts[width - 2 :: width] = [str(time_ns)] * n
        return "".join(parts)

    def records(self, cols: Sequence[list], time_ns: int, rows: tuple[int, ...] | None = None) -> list[Record]:
        """The same points as ``render`` as Record objects (slower; for consumers that want records)."""
        idx = range(len(self.tags)) if rows is None else rows
        kinds = [k for _, k in self.fields]
        names = [n for n, _ in self.fields]
        convert = {"float": float, "whole": float, "int": int, "bool": lambda v: v == "true", "str": str}
        out = []
        for j, i in enumerate(idx):
            fields = {name: convert[kind](col[j]) for name, kind, col in zip(names, kinds, cols)}
            out.append(Record(self.measurement, dict(self.tags[i]), fields, time_ns))
        return out
