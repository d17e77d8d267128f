"""Fast line protocol for the simulator: per-series prefixes escaped once, one ``%`` format per block.

A block is one measurement's series in a fixed order with a fixed field list. Its template is built
once per set of rows (it changes only when a device stops answering or a GPU is lost), so a step
costs one C-level string format per block. The output is byte-identical to
``dcim.lineprotocol.encode(block.records(...))``; tests hold it to that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain, repeat

from dcim.lineprotocol import encode_record
from dcim.record import Record

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMATS = {"float": "%r", "int": "%di", "bool": "%s", "str": '"%s"'}
_SAFE_STR = re.compile(r'^[A-Za-z0-9_ .:\-]*$')


def series_prefix(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,tag=value,...`` exactly as the core encoder writes it (tags sorted, escaped)."""
    line = encode_record(Record(measurement, tags, {"x": 0.0}))
    assert line.endswith(" x=0.0")
    return line[: -len(" x=0.0")]


class SeriesBlock:
    """The series of one measurement, in order, that share one list of fields."""

    __slots__ = ("measurement", "tags", "fields", "_prefixes", "_field_fmt", "_templates")

    def __init__(self, measurement: str, tags: Sequence[dict[str, str]], fields: Sequence[tuple[str, str]]) -> None:
        self.measurement = measurement
        self.tags = list(tags)
        self.fields = list(fields)
        for name, kind in self.fields:
            if not _FIELD_NAME.match(name) or kind not in _FORMATS:
                msg = f"field {name!r} of kind {kind!r} cannot go through the fast writer"
                raise ValueError(msg)
        # '%' in a tag value must survive the format step
        self._prefixes = [series_prefix(measurement, t).replace("%", "%%") for t in self.tags]
        self._field_fmt = " " + ",".join(f"{n}={_FORMATS[k]}" for n, k in self.fields) + " %d\n"
        self._templates: dict[tuple[int, ...] | None, str] = {}

    def __len__(self) -> int:
        return len(self.tags)

    def _template(self, rows: tuple[int, ...] | None) -> str:
        tpl = self._templates.get(rows)
        if tpl is None:
            idx = range(len(self.tags)) if rows is None else rows
            tpl = "".join(self._prefixes[i] + self._field_fmt for i in idx)
            if len(self._templates) > 64:  # layouts change only at fault events; keep the cache small
                self._templates.clear()
            self._templates[rows] = tpl
        return tpl

    def render(self, cols: Sequence[list], time_ns: int, rows: tuple[int, ...] | None = None) -> str:
        """Lines for ``rows`` (None: all) given one list per field, already restricted to those rows.

        Float columns hold Python floats, int columns ints, bool columns the strings 'true'/'false',
        str columns plain words (no quotes, backslashes or newlines).
        """
        n = len(self.tags) if rows is None else len(rows)
        if n == 0:
            return ""
        values = tuple(chain.from_iterable(zip(*cols, repeat(time_ns, n))))
        return self._template(rows) % values

    def records(self, cols: Sequence[list], time_ns: int, rows: tuple[int, ...] | None = None) -> list[Record]:
        """The same points as ``render`` as Record objects (slower; for consumers that want records)."""
        idx = range(len(self.tags)) if rows is None else rows
        kinds = [k for _, k in self.fields]
        names = [n for n, _ in self.fields]
        out = []
        for j, i in enumerate(idx):
            fields = {}
            for name, kind, col in zip(names, kinds, cols):
                v = col[j]
                fields[name] = (v == "true") if kind == "bool" else v
            out.append(Record(self.measurement, dict(self.tags[i]), fields, time_ns))
        return out


def bool_col(values) -> list[str]:
    """A boolean numpy array as the 'true'/'false' strings the template expects."""
    import numpy as np

    return np.where(values, "true", "false").tolist()
