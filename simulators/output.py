"""Value columns as line-protocol text for the codec's block encoder, fast: rounded readings by table lookup.

``dcim.lineprotocol.encode.SeriesBlock`` writes the lines; these helpers turn numpy columns into the
text of each value (the same text ``repr`` gives), which is what makes the simulator's output cheap.
"""

from __future__ import annotations

import functools

import numpy as np


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
