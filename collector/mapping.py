"""Declarative JSON mappings: third-party MQTT payloads (CDU gateways, BMS points) into records.

A mapping file (YAML, see collector/mappings/ and docs/collector.md "Mappings") names a topic
pattern whose ``{segments}`` become tags, the measurement, and for each schema field a JSON path
with the unit the device speaks; values are converted into the schema's unit. Nothing is
hard-coded per vendor: a new device is a new file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from dcim.config import Model, load_model
from dcim.errors import ConfigError, MappingError
from dcim.record import Record
from dcim.schema import MEASUREMENTS

BUILTIN_DIR = Path(__file__).resolve().parent / "mappings"

# --- units ------------------------------------------------------------------------------------

_ALIASES = {
    "°C": "degC", "C": "degC", "celsius": "degC", "°F": "degF", "F": "degF", "fahrenheit": "degF",
    "kelvin": "K", "lpm": "L/min", "l/min": "L/min", "LPM": "L/min", "GPM": "gpm", "gal/min": "gpm",
    "m³/h": "m3/h", "l/s": "L/s", "kpa": "kPa", "PSI": "psi", "percent": "%", "pct": "%",
    "w": "W", "kw": "kW",
}

_CONVERT: dict[tuple[str, str], Callable[[float], float]] = {
    ("degF", "degC"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("K", "degC"): lambda v: v - 273.15,
    ("psi", "kPa"): lambda v: v * 6.894757293168361,
    ("bar", "kPa"): lambda v: v * 100.0,
    ("Pa", "kPa"): lambda v: v / 1000.0,
    ("inH2O", "kPa"): lambda v: v * 0.24908890833333,
    ("gpm", "L/min"): lambda v: v * 3.785411784,
    ("m3/h", "L/min"): lambda v: v * 1000.0 / 60.0,
    ("L/s", "L/min"): lambda v: v * 60.0,
    ("kW", "W"): lambda v: v * 1000.0,
    ("MW", "W"): lambda v: v * 1e6,
    ("BTU/h", "W"): lambda v: v * 0.29307107017,
    ("ratio", "%"): lambda v: v * 100.0,
}


def unit_name(unit: str) -> str:
    return _ALIASES.get(unit, unit)


def converter(source: str | None, target: str) -> Callable[[float], float] | None:
    """The function from ``source`` to ``target`` unit (None = identity); KeyError when unknown."""
    if source is None:
        return None
    s, t = unit_name(source), unit_name(target)
    if s == t:
        return None
    return _CONVERT[(s, t)]


# --- JSON paths -------------------------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")
_MISSING = object()


def compile_path(path: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` (a leading ``$.`` is allowed) into steps; ValueError when malformed."""
    p = path[2:] if path.startswith("$.") else path
    steps: list[str | int] = []
    pos = 0
    while pos < len(p):
        if p[pos] == ".":
            pos += 1
            continue
        m = _STEP.match(p, pos)
        if not m:
            msg = f"bad JSON path {path!r} at character {pos + 1}"
            raise ValueError(msg)
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not steps:
        msg = f"empty JSON path {path!r}"
        raise ValueError(msg)
    return tuple(steps)


def lookup(doc: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(doc, list) or not -len(doc) <= step < len(doc):
                return _MISSING
            doc = doc[step]
        else:
            if not isinstance(doc, dict) or step not in doc:
                return _MISSING
            doc = doc[step]
    return doc


# --- the mapping file model -------------------------------------------------------------------


class FromPayload(Model):
    """A tag taken from the JSON document instead of the topic."""

    path: str


class FieldSpec(Model):
    field: str = Field(description="schema field name of the mapping's measurement")
    path: str = Field(description="JSON path of the value: a.b[0].c")
    unit: str | None = Field(None, description="unit the device speaks; converted into the schema's unit")
    scale: float = Field(1.0, description="multiply the raw value first (register scaling)")
    offset: float = 0.0
    when: dict[str, str] = Field(default_factory=dict, description="only when these topic captures match")
    optional: bool = Field(False, description="a missing or null value is skipped instead of refused")


class TimeSpec(Model):
    path: str
    unit: Literal["s", "ms", "us", "ns", "iso8601"] = "ms"


class RequireSpec(Model):
    path: str
    equals: list[Any] = Field(min_length=1)


class MappingFile(Model):
    name: str
    topic: str = Field(description="MQTT topic pattern: {name} captures one level, {name#} the rest")
    measurement: str
    tags: dict[str, str | FromPayload] = Field(default_factory=dict)
    time: TimeSpec | None = Field(None, description="source timestamp; default: arrival time")
    require: list[RequireSpec] = Field(default_factory=list, description="refuse documents that fail these")
    fields: list[FieldSpec] = Field(min_length=1)
    unmatched: Literal["reject", "ignore"] = Field(
        "reject", description="a message that yields no field: dead-letter it, or count and skip it"
    )

    @model_validator(mode="after")
    def _check(self) -> MappingFile:
        meas = MEASUREMENTS.get(self.measurement)
        if meas is None:
            msg = f"unknown measurement {self.measurement!r} (known: {', '.join(sorted(MEASUREMENTS))})"
            raise ValueError(msg)
        captures = _topic_captures(self.topic)
        for spec in self.fields:
            fld = meas.fields.get(spec.field)
            if fld is None:
                msg = f"measurement {self.measurement!r} has no field {spec.field!r}"
                raise ValueError(msg)
            compile_path(spec.path)
            if fld.type in ("float", "int", "uint") and spec.unit is not None:
                try:
                    converter(spec.unit, fld.unit)
                except KeyError:
                    msg = (f"field {spec.field!r}: no conversion from {spec.unit!r} to {fld.unit!r} "
                           f"(known: {sorted({f'{a}->{b}' for a, b in _CONVERT})})")
                    raise ValueError(msg) from None
            for key in spec.when:
                if key not in captures:
                    msg = f"field {spec.field!r}: 'when' names {key!r}, which the topic pattern does not capture"
                    raise ValueError(msg)
        for tag, source in self.tags.items():
            if isinstance(source, str):
                for ref in re.findall(r"\{([^}]*)\}", source):
                    if ref not in captures:
                        msg = f"tag {tag!r} uses {{{ref}}}, which the topic pattern does not capture"
                        raise ValueError(msg)
            else:
                compile_path(source.path)
        if self.time:
            compile_path(self.time.path)
        return self


def _topic_captures(pattern: str) -> list[str]:
    names = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)(#?)\}", part)
        if m:
            if m.group(2) and i != len(parts) - 1:
                msg = f"topic pattern {pattern!r}: {{{m.group(1)}#}} must be the last level"
                raise ValueError(msg)
            names.append(m.group(1))
        elif ("{" in part or "}" in part) or (part == "#" and i != len(parts) - 1) or ("+" in part and part != "+"):
            msg = f"topic pattern {pattern!r}: level {part!r} is not a literal, +, #, {{name}} or {{name#}}"
            raise ValueError(msg)
    return names


# --- applying a mapping -----------------------------------------------------------------------


class Mapping:
    """A loaded mapping: ``filter`` to subscribe to, ``match`` a topic, ``apply`` to a payload."""

    def __init__(self, spec: MappingFile, source: str = "") -> None:
        self.spec = spec
        self.name = spec.name
        self.source = source
        self.measurement = MEASUREMENTS[spec.measurement]
        levels = []
        regex = []
        for part in spec.topic.split("/"):
            m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)(#?)\}", part)
            if m and m.group(2):
                levels.append("#")
                regex.append(f"(?P<{m.group(1)}>.+)")
            elif m:
                levels.append("+")
                regex.append(f"(?P<{m.group(1)}>[^/]+)")
            elif part == "+":
                levels.append("+")
                regex.append("[^/]+")
            elif part == "#":
                levels.append("#")
                regex.append(".+")
            else:
                levels.append(part)
                regex.append(re.escape(part))
        self.filter = "/".join(levels)
        self._re = re.compile("/".join(regex) + r"\Z")
        self._fields = []
        for f in spec.fields:
            target = self.measurement.fields[f.field]
            conv = converter(f.unit, target.unit) if target.type != "bool" else None
            self._fields.append((f, compile_path(f.path), target.type, conv))
        self._tags = [(k, v if isinstance(v, str) else compile_path(v.path)) for k, v in spec.tags.items()]
        self._time = (compile_path(spec.time.path), spec.time.unit) if spec.time else None
        self._require = [(compile_path(r.path), r.path, r.equals) for r in spec.require]

    def match(self, topic: str) -> dict[str, str] | None:
        m = self._re.match(topic)
        return m.groupdict() if m else None

    def apply(self, captures: dict[str, str], payload: bytes, now_ns: int) -> list[Record]:
        """The records of one payload (empty: nothing to keep); MappingError when it does not fit."""
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MappingError("json_error", f"not JSON ({exc})") from None
        for steps, path, allowed in self._require:
            value = lookup(doc, steps)
            if value is _MISSING or value not in allowed:
                shown = "missing" if value is _MISSING else repr(value)
                raise MappingError("mapping_error", f"{path} is {shown}, mapping {self.name!r} requires one of {allowed}")
        tags: dict[str, str] = {}
        for key, source in self._tags:
            if isinstance(source, str):
                value = source.format_map(captures)
            else:
                raw = lookup(doc, source)
                if raw is _MISSING or raw is None or isinstance(raw, (dict, list)):
                    raise MappingError("mapping_error", f"tag {key!r}: no value at its path")
                value = str(raw)
            if value:
                tags[key] = value
        fields: dict[str, Any] = {}
        for spec, steps, ftype, conv in self._fields:
            if spec.when and any(captures.get(k) != v for k, v in spec.when.items()):
                continue
            raw = lookup(doc, steps)
            if raw is _MISSING or raw is None:
                if spec.optional:
                    continue
                raise MappingError("mapping_error", f"field {spec.field!r}: no value at {spec.path}")
            fields[spec.field] = _value(spec, raw, ftype, conv)
        if not fields:
            return []
        ts = now_ns
        if self._time is not None:
            steps, unit = self._time
            raw = lookup(doc, steps)
            if raw is _MISSING or raw is None:
                raise MappingError("mapping_error", f"no timestamp at {self.spec.time.path}")
            ts = _timestamp(raw, unit)
        return [Record(self.spec.measurement, tags, fields, ts)]


def _value(spec: FieldSpec, raw: Any, ftype: str, conv: Callable[[float], float] | None) -> Any:
    if ftype == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.lower() in ("true", "false", "on", "off", "1", "0"):
            return raw.lower() in ("true", "on", "1")
        raise MappingError("mapping_error", f"field {spec.field!r}: {raw!r} is not a boolean")
    if ftype == "str":
        return str(raw)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise MappingError("mapping_error", f"field {spec.field!r}: {raw!r} is not a number")
    try:
        v = float(raw)
    except ValueError:
        raise MappingError("mapping_error", f"field {spec.field!r}: {raw!r} is not a number") from None
    v = v * spec.scale + spec.offset
    if conv is not None:
        v = conv(v)
    if not math.isfinite(v):
        raise MappingError("mapping_error", f"field {spec.field!r}: {raw!r} is not a finite number")
    if ftype in ("int", "uint"):
        return int(round(v))
    return v


def _timestamp(raw: Any, unit: str) -> int:
    if unit == "iso8601":
        if not isinstance(raw, str):
            raise MappingError("mapping_error", f"timestamp {raw!r} is not an ISO 8601 string")
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise MappingError("mapping_error", f"timestamp {raw!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise MappingError("mapping_error", f"timestamp {raw!r} has no time zone")
        return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise MappingError("mapping_error", f"timestamp {raw!r} is not a number")
    factor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    if isinstance(raw, int):
        return raw * factor
    if not math.isfinite(raw):
        raise MappingError("mapping_error", f"timestamp {raw!r} is not a finite number")
    return int(round(raw * factor))


def find_mapping_file(path: Path | str) -> Path:
    """A path as given, or the name of a shipped mapping (``bms_cdu`` -> collector/mappings/bms_cdu.yaml)."""
    p = Path(path)
    if p.exists():
        return p
    for candidate in (BUILTIN_DIR / p, BUILTIN_DIR / f"{p}.yaml"):
        if candidate.exists():
            return candidate
    msg = f"mapping file not found (nor a shipped mapping of that name in {BUILTIN_DIR})"
    raise ConfigError(msg, file=str(p))


def load_mapping(path: Path | str) -> Mapping:
    p = find_mapping_file(path)
    return Mapping(load_model(MappingFile, p), source=str(p))


def load_mappings(paths: list[Path]) -> list[Mapping]:
    return [load_mapping(p) for p in paths]


def builtin_mappings() -> list[Path]:
    return sorted(BUILTIN_DIR.glob("*.yaml"))
