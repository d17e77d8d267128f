"""Read snmpsim ``.snmprec`` files as walks: recorded devices replay through the profiles offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcim.agents.snmp.profile import Walk
from dcim.errors import ConfigError

_UNSIGNED = {"65", "66", "67", "70"}


def _value(tag: str, text: str) -> Any:
    hexed = tag.endswith("x")
    base = tag.rstrip("xe")
    if base in ("2", *_UNSIGNED):
        return int(text)
    if base == "6":
        return tuple(int(a) for a in text.strip(".").split("."))
    if base in ("4", "64", "68"):
        return bytes.fromhex(text) if hexed else text.encode()
    if base == "5":
        return None
    msg = f"unsupported snmprec tag {tag!r}"
    raise ValueError(msg)


def read(text: str) -> list[tuple[tuple[int, ...], Any]]:
    """All ``(oid arcs, value)`` of a snmprec text, sorted by OID."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            oid, tag, value = line.split("|", 2)
            tag = tag.split(":")[0]  # a variation module suffix (e.g. 2:delay) keeps the base tag
            out.append((tuple(int(a) for a in oid.strip(".").split(".")), _value(tag, value)))
        except ValueError as exc:
            msg = f"line {n}: {exc}"
            raise ConfigError(msg) from exc
    out.sort(key=lambda r: r[0])
    return out


def walk_columns(entries: list[tuple[tuple[int, ...], Any]], columns: list[str]) -> dict[str, list]:
    """What a walk of ``columns`` would return from these entries: column -> [(index, value)]."""
    walk: dict[str, list] = {}
    for col in columns:
        prefix = tuple(int(a) for a in col.split("."))
        n = len(prefix)
        walk[col] = [(oid[n:], v) for oid, v in entries if oid[:n] == prefix and len(oid) > n]
    return walk


def load_walk(path: str | Path, columns: list[str]) -> Walk:
    path = Path(path)
    try:
        return walk_columns(read(path.read_text()), columns)
    except ConfigError as exc:
        raise ConfigError(str(exc), file=str(path)) from exc


def get(entries: list[tuple[tuple[int, ...], Any]], oid: str) -> Any:
    key = tuple(int(a) for a in oid.split("."))
    for o, v in entries:
        if o == key:
            return v
    return None
