"""Annotation templates: ``{{ $value }}``, ``{{ $value:.1f }}``, ``{{ $labels.rack }}``, ``{{ $location }}``."""

from __future__ import annotations

import math
import re
from typing import Any

from alerts.rulefile import TEMPLATE


def fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    if not math.isfinite(v):
        return str(v)
    return f"{v:.2f}".rstrip("0").rstrip(".")


def location_text(labels: dict[str, str]) -> str:
    """``dc1/hall1/A/A01 node A01-n01 gpu 3``: the place path, then the device."""
    path = "/".join(labels[k] for k in ("site", "room", "row", "rack") if k in labels)
    if "rack" not in labels and "loop" in labels:
        path = "/".join([p for p in (path, "loop " + labels["loop"]) if p])
    dev = " ".join(f"{k} {labels[k]}" for k in ("pdu", "phase", "node", "gpu", "xid") if k in labels)
    return " ".join(p for p in (path, dev) if p) or "site"


def render(text: str, *, rule: str, severity: str, state: str, value: float | None, threshold: float | None,
           labels: dict[str, str]) -> str:
    """Fill ``{{ $value }}``, ``{{ $value:.1f }}``, ``{{ $labels.rack }}``, ``{{ $location }}`` ..."""

    def sub(m: re.Match[str]) -> str:
        var, attr, spec = m.group(1), m.group(2), m.group(3)
        if var == "labels":
            return labels.get(attr or "", "")
        val: Any = {"value": value, "threshold": threshold, "rule": rule, "severity": severity,
                    "state": state, "location": location_text(labels)}[var]
        if spec and isinstance(val, (int, float)) and not isinstance(val, bool):
            return format(val, spec)
        return fmt(val) if var in ("value", "threshold") else str(val)

    return TEMPLATE.sub(sub, text)
