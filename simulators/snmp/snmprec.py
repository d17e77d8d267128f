"""Write layouts as snmpsim ``.snmprec`` files (``OID|TAG|VALUE``, sorted by OID)."""

from __future__ import annotations

from collections.abc import Iterable

from dcim.simulators.snmp.layouts import OCTETS, Row


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(a) for a in oid.split("."))


def dumps(rows: Iterable[Row]) -> str:
    lines = []
    for oid, tag, value in sorted(rows, key=lambda r: _key(r[0])):
        if tag == OCTETS:
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text.isprintable() and "|" not in text:
                lines.append(f"{oid}|{tag}|{text}")
            else:
                lines.append(f"{oid}|{tag}x|{text.encode().hex()}")
        else:
            lines.append(f"{oid}|{tag}|{value}")
    return "\n".join(lines) + "\n"
