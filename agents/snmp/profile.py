"""Vendor profiles as data: load the YAML files and turn one device walk into records (pure).

A profile lists tables; a table lists the columns it needs (by OID), how the row index splits
into named parts, which measurement its rows become, the tags (templates over index parts and
columns) and one entry per schema field: source column, scale, per-row decimal digits or
divisor columns, unit tables, enum maps, sentinel values and row selectors (``when``). The
walk (:data:`Walk`) maps each column OID to its ``(index, value)`` rows, exactly what the
transport returns, so a recorded walk replays through :func:`parse` with no device.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from dcim import schema
from dcim.config import validation_error
from dcim.errors import ConfigError
from dcim.record import FieldValue, Record, UInt

#: column OID (dotted, no leading dot) -> rows of (index arcs, value); value int, bytes or OID tuple
Walk = Mapping[str, list[tuple[tuple[int, ...], Any]]]

PROFILE_DIR = Path(__file__).with_name("profiles")

Scalar = int | float | str | bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _norm_oid(oid: str) -> str:
    oid = str(oid).strip().lstrip(".")
    if not oid or not all(p.isdigit() for p in oid.split(".")):
        msg = f"not a numeric OID: {oid!r}"
        raise ValueError(msg)
    return oid


class ColumnSpec(_Model):
    """A column the table reads; ``index`` names the parts of the row index used to look it up
    when its table is indexed differently (a join, e.g. a config table without the pole part);
    ``index: []`` joins a scalar (instance .0) to every row, e.g. a unit-wide temperature scale."""

    oid: str
    index: list[str] | None = None

    _n = field_validator("oid")(classmethod(lambda cls, v: _norm_oid(v)))


class FieldSpec(_Model):
    """One schema field of the table's measurement and how to compute it from a row."""

    name: str
    column: str
    scale: float = 1.0
    offset: float = 0.0
    decimals: str | None = Field(None, description="column holding a power of ten to divide by")
    divisor: str | None = Field(None, description="column holding a number to divide by")
    unit: str | None = Field(None, description="column holding a unit code, looked up in `units`")
    units: str | None = Field(None, description="name of a units table of the profile")
    map: dict[Scalar, Scalar] | None = Field(None, description="raw value -> field value; others omit")
    when: dict[str, Scalar | None | list[Scalar | None]] = Field(
        default_factory=dict, description="only rows whose index part / column equals (any of a list; null: absent)")
    unless: dict[str, Scalar | None | list[Scalar | None]] = Field(
        default_factory=dict, description="skip rows whose index part / column equals (any of a list; null: absent)")
    sentinels: list[int] | None = Field(None, description="raw values meaning unsupported (default: the table's)")
    range: tuple[int, int] | None = Field(
        None, description="raw values outside [min, max] (the MIB's SYNTAX range) are unsupported, like a sentinel")
    parse_float: bool = Field(False, description="the column is a decimal string (Liebert lgpFlexibleEntryValue)")

    @model_validator(mode="after")
    def _unit_pair(self) -> FieldSpec:
        if (self.unit is None) != (self.units is None):
            msg = "give both 'unit' (a column) and 'units' (a units table) or neither"
            raise ValueError(msg)
        return self


class TableSpec(_Model):
    """One SNMP table (or a group of scalars, index ``[instance]``) and the records it yields."""

    name: str
    measurement: str
    index: list[str] = Field(min_length=1, description="names of index parts; a name ending in '*' takes the rest")
    key: list[str] | None = Field(None, description="index parts identifying a record (default: all)")
    tags: dict[str, str] = Field(default_factory=dict, description="tag -> template over index parts and columns")
    tag_maps: dict[str, dict[Scalar, str]] = Field(
        default_factory=dict, description="index part or column -> {raw value: text} used in tag templates")
    tag_extract: dict[str, str] = Field(
        default_factory=dict, description="column -> regex with one group: a matching label contributes the group "
        "to tag templates (Sentry4 'AA:L1-L2' -> 'L1-L2'); a label that does not match is used whole")
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    fields: list[FieldSpec] = Field(min_length=1)
    sentinels: list[int] = Field(default_factory=list)

    @field_validator("columns", mode="before")
    @classmethod
    def _short_columns(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"oid": c} if isinstance(c, (str, int)) else c for k, c in v.items()}
        return v

    @model_validator(mode="after")
    def _check(self) -> TableSpec:
        meas = schema.MEASUREMENTS.get(self.measurement)
        if meas is None:
            msg = f"unknown measurement {self.measurement!r}"
            raise ValueError(msg)
        names = set(self.index) | set(self.columns)
        for f in self.fields:
            if f.name not in meas.fields:
                msg = f"measurement {meas.name!r} has no field {f.name!r}"
                raise ValueError(msg)
            for ref in (f.column, f.decimals, f.divisor, f.unit):
                if ref is not None and ref not in self.columns:
                    msg = f"field {f.name!r} refers to unknown column {ref!r}"
                    raise ValueError(msg)
            for k in [*f.when, *f.unless]:
                if k not in names:
                    msg = f"field {f.name!r}: 'when' refers to unknown index part or column {k!r}"
                    raise ValueError(msg)
        for k, rx in self.tag_extract.items():
            if k not in self.columns:
                msg = f"tag_extract refers to unknown column {k!r}"
                raise ValueError(msg)
            try:
                groups = re.compile(rx).groups
            except re.error as exc:
                msg = f"tag_extract for {k!r}: bad regex: {exc}"
                raise ValueError(msg) from None
            if groups != 1:
                msg = f"tag_extract for {k!r} needs exactly one group, has {groups}"
                raise ValueError(msg)
        for k in self.tag_maps:
            if k.rstrip("*") not in {n.rstrip("*") for n in names}:
                msg = f"tag_maps refers to unknown index part or column {k!r}"
                raise ValueError(msg)
        for t in self.tags:
            if t not in meas.tags:
                msg = f"measurement {meas.name!r} has no tag {t!r}"
                raise ValueError(msg)
        for k in self.key or []:
            if k not in self.index:
                msg = f"key part {k!r} is not an index part"
                raise ValueError(msg)
        for c in self.columns.values():
            for part in c.index or []:
                if part not in self.index:
                    msg = f"column {c.oid}: index part {part!r} is not one of the table's"
                    raise ValueError(msg)
        return self


class Detect(_Model):
    """How auto-detection finds the profile: sysObjectID narrows, probes of the profile's own tables decide."""

    sys_object_id: list[str] = Field(default_factory=list, description="sysObjectID prefixes")
    probe: list[str] | None = Field(
        None, description="columns whose real (non-sentinel) answers count (default: one per table)")
    standard: bool = Field(False, description="a standard MIB: probed on every device, whatever its sysObjectID")
    supersedes: list[str] = Field(
        default_factory=list, description="older profiles of the same device this one wins over whenever it answers")

    _n = field_validator("sys_object_id")(classmethod(lambda cls, v: [_norm_oid(o) for o in v]))

    @field_validator("probe", mode="before")
    @classmethod
    def _probe_list(cls, v: Any) -> Any:
        if isinstance(v, (str, int)):
            v = [v]
        return [_norm_oid(o) for o in v] if v is not None else None


class Profile(_Model):
    """A vendor profile: one YAML file per MIB."""

    name: str
    title: str
    mib: str = Field(description="MIB module name and version the OIDs come from")
    kind: Literal["pdu", "cooling", "ups", "switch"]
    detect: Detect = Detect()
    units: dict[str, dict[Scalar, float | list[float]]] = Field(
        default_factory=dict, description="unit tables: code -> factor or [factor, offset] to SI")
    tables: list[TableSpec] = Field(min_length=1)
    _compiled: list[Any] | None = PrivateAttr(None)

    def compiled(self) -> list[_CompiledTable]:
        """The tables with lookups resolved, built once per profile object."""
        if self._compiled is None:
            self._compiled = [_CompiledTable(t) for t in self.tables]
        return self._compiled

    @model_validator(mode="after")
    def _units_exist(self) -> Profile:
        for t in self.tables:
            for f in t.fields:
                if f.units is not None and f.units not in self.units:
                    msg = f"table {t.name!r} field {f.name!r}: unknown units table {f.units!r}"
                    raise ValueError(msg)
        return self

    def probes(self) -> list[tuple[str, frozenset[int]]]:
        """Columns detection reads (a row with real data counts), each with the raw values meaning "none".

        By default the first field column of each table: a profile answering on more of its tables
        is the richer reading of the device.
        """
        sentinels: dict[str, set[int]] = {}
        firsts: list[str] = []
        for t in self.tables:
            first = None
            for f in t.fields:
                col = t.columns[f.column]
                if col.index is not None:
                    continue  # a joined column answers for another table's rows
                sentinels.setdefault(col.oid, set()).update(f.sentinels if f.sentinels is not None else t.sentinels)
                first = first or col.oid
            if first is not None and first not in firsts:
                firsts.append(first)
        cols = self.detect.probe if self.detect.probe is not None else firsts
        return [(c, frozenset(sentinels.get(c, ()))) for c in cols]

    def walk_groups(self) -> list[list[str]]:
        """Columns grouped by table entry (same rows), so one GETBULK stream never runs past a short table."""
        groups: dict[str, list[str]] = {}
        for col in self.columns():
            groups.setdefault(col.rsplit(".", 1)[0], []).append(col)
        return list(groups.values())

    def columns(self) -> list[str]:
        """Every column OID the profile reads, in table order, without duplicates."""
        seen: dict[str, None] = {}
        for t in self.tables:
            for c in t.columns.values():
                seen.setdefault(c.oid, None)
        return list(seen)


# --- loading -----------------------------------------------------------------------------------


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read profile: {exc}", file=str(path)) from exc
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, file=str(path)) from exc


def load_profiles(directory: str | Path = PROFILE_DIR) -> dict[str, Profile]:
    """All profiles of a directory by name (the shipped ones by default)."""
    out: dict[str, Profile] = {}
    for p in sorted(Path(directory).glob("*.yaml")):
        prof = load_profile(p)
        if prof.name in out:
            raise ConfigError(f"profile name {prof.name!r} is used twice", file=str(p))
        out[prof.name] = prof
    return out


def _enterprise(oid: str) -> str | None:
    parts = oid.split(".")
    return ".".join(parts[:7]) if oid.startswith("1.3.6.1.4.1.") and len(parts) >= 7 else None


@dataclass(slots=True)
class Candidate:
    """A profile worth probing on a device, and why."""

    profile: Profile
    why: str
    prefix_len: int  # length of the matching sysObjectID prefix; 0 for enterprise or standard-MIB matches


def detect_candidates(profiles: Iterable[Profile], sys_object_id: str | None) -> list[Candidate]:
    """Profiles to probe: sysObjectID prefix matches (longest first), then the same vendor's other
    profiles (firmware that reports a product OID the profile does not list), then standard MIBs."""
    oid = _norm_oid(sys_object_id) if sys_object_id else ""
    ent = _enterprise(oid) if oid else None
    prefix: list[tuple[int, Candidate]] = []
    vendor: list[Candidate] = []
    standard: list[Candidate] = []
    for p in profiles:
        best = max((pre for pre in p.detect.sys_object_id if oid == pre or oid.startswith(pre + ".")),
                   key=len, default=None)
        if best is not None:
            prefix.append((len(best), Candidate(p, f"sysObjectID under {best}", len(best))))
        elif ent is not None and any(_enterprise(pre) == ent for pre in p.detect.sys_object_id):
            vendor.append(Candidate(p, f"same vendor ({ent})", 0))
        elif p.detect.standard:
            standard.append(Candidate(p, "standard MIB, probed on every device", 0))
    prefix.sort(key=lambda s: -s[0])
    return [c for _, c in prefix] + vendor + standard


# --- parsing (pure) ----------------------------------------------------------------------------


@dataclass(slots=True)
class ParseResult:
    records: list[Record]
    #: "measurement.field" the device answers with a sentinel ("unsupported")
    unsupported: set[str] = field(default_factory=set)
    #: with ``sources=True``: one Source per value, naming the instance OID it was read from
    sources: list[Source] | None = None
    #: device strings unfit for a tag that were replaced by the row index (see :func:`odd_label`)
    odd_labels: list[str] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class Source:
    """Where one reported value came from: the instance OID of its column (audits, acceptance)."""

    oid: str
    measurement: str
    tags: Mapping[str, str]
    field: str
    value: FieldValue


def _split_index(names: list[str], arcs: tuple[int, ...]) -> dict[str, Any] | None:
    # firmware quirk seen in real walks: a table row indexed like a scalar instance, "<index>.0"
    if len(arcs) == len(names) + 1 and arcs[-1] == 0 and not names[-1].endswith("*"):
        arcs = arcs[:-1]
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name.endswith("*"):
            out[name[:-1]] = ".".join(map(str, arcs[i:]))
            return out
        if i >= len(arcs):
            return None
        out[name] = arcs[i]
    return out if len(arcs) == len(names) else None


def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace").strip("\x00").strip()
    if isinstance(v, tuple):  # an OBJECT IDENTIFIER value (a row's description OID): dotted, like the YAML
        return ".".join(map(str, v))
    return v


def _unit_factor(table: Mapping[Scalar, float | list[float]], code: Any) -> tuple[float, float] | None:
    f = table.get(code)
    if f is None and isinstance(code, str):
        f = table.get(code.strip())
    if f is None:
        return None
    if isinstance(f, list):
        return float(f[0]), float(f[1]) if len(f) > 1 else 0.0
    return float(f), 0.0


class _CompiledTable:
    """A table spec with its lookups resolved once, so parsing a walk does no spec work."""

    __slots__ = ("spec", "meas", "index", "base_index", "key", "tags", "fields", "col_index", "col_oid", "tag_cols",
                 "tag_maps", "tag_extract")

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.meas = schema.measurement(spec.measurement)
        self.index = spec.index
        self.base_index = [n.rstrip("*") for n in spec.index]
        self.key = spec.key if spec.key is not None else self.base_index
        self.tags = spec.tags
        self.fields = spec.fields
        self.col_oid = {name: c.oid for name, c in spec.columns.items()}
        self.col_index = {name: c.index for name, c in spec.columns.items()}
        self.tag_cols = {tag: [c for c in spec.columns if "{" + c + "}" in tpl] for tag, tpl in spec.tags.items()}
        self.tag_maps = spec.tag_maps
        self.tag_extract = {k: re.compile(rx) for k, rx in spec.tag_extract.items()}


def parse(profile: Profile, walk: Walk, base_tags: Mapping[str, str] | None = None,
          time_ns: int | None = None, *, sources: bool = False) -> ParseResult:
    """Turn one walk of a device into records of SI fields (rows merged by measurement and tags)."""
    base = dict(base_tags or {})
    merged: dict[tuple, Record] = {}
    unsupported: set[str] = set()
    # (measurement, tags, field) -> source: a later table's value replaces an earlier one's, and so does its source
    found: dict[tuple, Source] | None = {} if sources else None
    # (record key, field) answered with a sentinel: unsupported unless another table filled that field
    later_check: list[tuple[tuple, str]] = []
    odd: list[str] = []
    for table in profile.compiled():
        _parse_table(profile, table, walk, base, time_ns, merged, unsupported, found, later_check, odd)
    for key, name in later_check:
        rec = merged.get(key)
        if rec is None or name not in rec.fields:
            unsupported.add(f"{key[0]}.{name}")
    records = [r for r in merged.values() if r.fields]
    return ParseResult(records, unsupported, list(found.values()) if found is not None else None, odd)


def _parse_table(profile: Profile, t: _CompiledTable, walk: Walk, base: dict[str, str],
                 time_ns: int | None, merged: dict[tuple, Record], unsupported: set[str],
                 found: dict[tuple, Source] | None, later_check: list[tuple[tuple, str]],
                 odd: list[str]) -> None:
    # column name -> {lookup key: value}; own-index columns keyed by full arcs
    cols: dict[str, dict[tuple, Any]] = {}
    own_rows: dict[tuple[int, ...], None] = {}
    field_cols = {f.column for f in t.fields}
    for name, oid in t.col_oid.items():
        rows = walk.get(oid, ())
        cols[name] = dict(rows)
        if name in field_cols and t.col_index[name] is None:
            for idx, _ in rows:
                own_rows.setdefault(idx, None)
    default_sentinels = t.spec.sentinels
    meas_name = t.meas.name
    for arcs in own_rows:
        parts = _split_index(t.index, arcs)
        if parts is None:
            continue

        def get(col: str, _arcs: tuple[int, ...] = arcs, _parts: dict = parts) -> Any:
            proj = t.col_index[col]
            if proj is None:
                return cols[col].get(_arcs)
            return cols[col].get(tuple(_parts[p] for p in proj) or (0,))  # index [] = the scalar (.0)

        values: dict[str, FieldValue] = {}
        used: dict[str, str] = {}
        row_unsupported: list[str] = []
        for f in t.fields:
            if f.when and not _matches(f.when, parts, get, t.col_oid):
                continue
            if f.unless and _matches_any(f.unless, parts, get, t.col_oid):
                continue
            raw = get(f.column)
            if not isinstance(raw, (int, bytes)):  # absent, an OID, or noSuchInstance / endOfMibView
                continue
            sentinels = f.sentinels if f.sentinels is not None else default_sentinels
            if isinstance(raw, int) and (raw in sentinels or (f.range is not None
                                                              and not f.range[0] <= raw <= f.range[1])):
                row_unsupported.append(f.name)
                continue
            value = _convert(profile, t, f, raw, get)
            if value is None:
                continue
            values[f.name] = value
            used[f.name] = f.column
        if not values and not row_unsupported:
            continue
        # the device's own tags, less those this measurement does not have (a cooling unit's loop on its
        # air-side sensors): they still fill templates ("{pdu}-B") through ``base``
        tags = {k: v for k, v in base.items() if k in t.meas.tags}
        index_text = ".".join(map(str, arcs))
        for tag, template in t.tags.items():
            # a row with nothing to report warns about nothing (an unused APC sensor slot has an empty name)
            tags[tag] = _render(template, parts, get, t.tag_cols[tag], t.tag_maps, base, index_text,
                                odd if values else None, t.tag_extract)
        key = (meas_name, tuple(sorted(tags.items())))
        for n in row_unsupported:
            if n not in values:
                later_check.append((key, n))
        if not values:
            continue
        if found is not None:
            coerced = schema.coerce(t.meas, values)
            for name, col in used.items():
                found[(key, name)] = Source(f"{t.col_oid[col]}.{'.'.join(map(str, arcs))}", meas_name, tags, name,
                                            coerced[name])
        rec = merged.get(key)
        if rec is None:
            merged[key] = Record(meas_name, tags, schema.coerce(t.meas, values), time_ns)
        else:
            rec.fields.update(schema.coerce(t.meas, values))


def _equal(have: Any, want: Scalar | None) -> bool:
    if want is None or have is None:
        return have is want
    return have == want or str(have) == str(want)


def _matches(when: Mapping[str, Any], parts: Mapping[str, Any], get: Any, col_oid: Mapping[str, str]) -> bool:
    for k, want in when.items():
        have = _text(get(k) if k in col_oid else parts.get(k))
        if isinstance(want, list):
            if not any(_equal(have, w) for w in want):
                return False
        elif not _equal(have, want):
            return False
    return True


def _matches_any(unless: Mapping[str, Any], parts: Mapping[str, Any], get: Any,
                 col_oid: Mapping[str, str]) -> bool:
    return any(_matches({k: v}, parts, get, col_oid) for k, v in unless.items())


def odd_label(value: Any) -> str | None:
    """Why a device string cannot be a tag value as it is (None when it can).

    Empty, absent, holding a control character (newline, tab, NUL...) or ending in a backslash:
    line protocol cannot carry these, and a tag that silently loses characters would merge
    two rows. The caller then uses the row index instead (:func:`_render`).
    """
    if value is None:
        return "absent"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"not text ({type(value).__name__})"
    text = str(value)
    if not text:
        return "empty"
    if any(not c.isprintable() and c != " " for c in text):
        return "a control character"
    if text.endswith("\\"):
        return "a trailing backslash"
    return None


def _render(template: str, parts: Mapping[str, Any], get: Any, cols: list[str],
            maps: Mapping[str, Mapping[Scalar, str]], base: Mapping[str, str], index: str,
            odd: list[str] | None = None, extract: Mapping[str, re.Pattern[str]] | None = None) -> str:
    """A tag value from its template; a device string unfit for a tag becomes the row index."""
    # the device's own tags ({pdu}) are template names too: a daisy-chained unit becomes "{pdu}-B"
    names: dict[str, Any] = {**base, **parts}
    for c in cols:
        value = _text(get(c))
        rx = extract.get(c) if extract else None
        if rx is not None and isinstance(value, str) and (m := rx.fullmatch(value)) is not None:
            value = m.group(1)
        why = odd_label(value)
        if why is not None:
            if odd is not None:
                odd.append(f"{c} of row {index} is {why}")
            value = index
        names[c] = value
    for k, m in maps.items():
        if k in names:
            names[k] = m.get(names[k], names[k])
    try:
        out = template.format(**names)
    except (KeyError, IndexError, ValueError):
        out = template
    why = odd_label(out)
    if why is not None:  # a literal in the template or a mapped value: still never an unwritable tag
        if odd is not None:
            odd.append(f"tag {template!r} of row {index} is {why}")
        return index
    return out


def _convert(profile: Profile, t: _CompiledTable, f: FieldSpec, raw: Any, get: Any) -> FieldValue | None:
    ftype = t.meas.fields[f.name].type
    if f.map is not None:
        v = f.map.get(raw)
        if v is None:
            v = f.map.get(_text(raw))
        if v is None:
            return None
        return bool(v) if ftype == "bool" else v
    if ftype == "str":
        return str(_text(raw))
    if f.parse_float:
        try:
            x = float(_text(raw))
        except ValueError:
            return None
    elif isinstance(raw, int):
        x = raw
    else:
        return None
    if ftype == "bool":
        return bool(x)
    if ftype in ("uint", "int"):
        # counters stay exact integers (a Counter64 does not survive a float)
        n = x * int(f.scale) if float(f.scale).is_integer() else int(x * f.scale)
        if ftype == "uint":
            return UInt(n) if n >= 0 else None
        return int(n)
    x = x * f.scale
    if f.decimals is not None:
        d = get(f.decimals)
        if not isinstance(d, int):
            return None
        x = x / 10**d
    if f.divisor is not None:
        d = get(f.divisor)
        if not isinstance(d, int) or d == 0:
            return None
        x = x / d
    if f.unit is not None:
        fo = _unit_factor(profile.units[f.units], _text(get(f.unit)))  # type: ignore[index]
        if fo is None:
            return None
        x = x * fo[0] + fo[1]
    x = x + f.offset
    if not math.isfinite(x):
        return None
    # round away binary noise from the fixed-point scaling (0.1 * 3 = 0.30000000000000004)
    return round(x, 9)
