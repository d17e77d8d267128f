"""Fast line protocol for the simulator: per-series prefixes escaped once, values as text by table lookup.

A block is one measurement's series in a fixed order with a fixed field list. Its layout (the list
of constant pieces with a slot per value) is built once per set of rows (it changes only when a
device stops answering or a GPU is lost); a step fills the slots column by column with C-level
slice assignment and joins. The output is byte-identical to
``dcim.lineprotocol.encode(block.records(...))``; tests hold it to that.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from dcim.lineprotocol.encode import encode_record
from dcim.record import Record

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# what goes before and after a value of each kind (the core encoder's syntax)
# ("whole": a float field whose values are whole numbers, written from integer text plus ".0",
# which is what repr gives for them and much cheaper to produce)
_OPEN = {"float": "", "whole": "", "int": "", "bool": "", "str": '"'}
_CLOSE = {"float": "", "whole": ".0", "int": "i", "bool": "", "str": '"'}
_SAFE_STR = re.compile(r'^[A-Za-z0-9_ .:\-]*$')


def series_prefix(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,tag=value,...`` exactly as the core encoder writes it (tags sorted, escaped)."""
    line = encode_record(Record(measurement, tags, {"x": 0.0}))
    assert line.endswith(" x=0.0")
    return line[: -len(" x=0.0")]


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
                msg = f"field {name!r} of kind {kind!r} cannot go through the fast writer"
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

def bool_col(values: np.ndarray) -> list[str]:
    """A boolean numpy array as the 'true'/'false' strings the template expects."""
    return _BOOLS[values.astype(np.intp)].tolist()


_BOOLS = np.array(["false", "true"], dtype=object)


@functools.lru_cache(maxsize=32)
def _float_table(decimals: int, size: int) -> np.ndarray:
    """repr(k / 10**decimals) for k < size: the text of every value a rounded reading can take.

    A constant lookup table (read-only, shared): formatting a float costs a repr call per value,
    indexing this table a C-level gather, which is what makes the writer fast.
    """
    scale = 10**decimals
    table = np.array([repr(k / scale) for k in range(size)], dtype=object)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=4)
def _int_table(size: int) -> np.ndarray:
    table = np.array([str(k) for k in range(size)], dtype=object)
    table.flags.writeable = False
    return table


def fixed(values: np.ndarray, decimals: int, max_table: int = 1 << 18) -> list:
    """Values rounded to ``decimals`` as line-protocol text (the same text repr gives), fast.

    Non-negative values within the lookup table come from it; anything else (negative, huge)
    falls back to rounded Python floats, which the template formats with repr.
    """
    scale = 10**decimals
    idx = np.rint(values * scale)
    if idx.size and not (idx.min() >= 0 and idx.max() < max_table):  # also catches NaN
        return (idx / scale).tolist()
    size = 1 << max(10, int(idx.max()).bit_length()) if idx.size else 1024
    return _float_table(decimals, size)[idx.astype(np.intp)].tolist()


def whole(values: np.ndarray) -> list[str]:
    """Values rounded to whole numbers as integer text, for a ``whole`` field (|value| < 2**53)."""
    return list(map(str, np.rint(values).astype(np.int64).tolist()))


def ints(values: np.ndarray, max_table: int = 1 << 12) -> list:
    """Integers as text through a lookup table when small and non-negative, else as ints."""
    if values.size and (values.min() < 0 or values.max() >= max_table):
        return values.tolist()
    return _int_table(max_table)[values.astype(np.intp)].tolist()
