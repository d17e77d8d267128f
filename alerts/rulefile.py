"""Alert rule files: pydantic models for every rule kind and the loader whose errors name file, rule and field.

A rule file is YAML with one key, ``rules:``, a list of rules. Every rule names its measurement and
fields by the names in ``dcim.schema``; unknown measurements, fields and tags are errors.
See docs/alerts.md for the language.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from dcim.alerts.actions_spec import ActionSpec, check_scope
from dcim.alerts import templates
from dcim import schema
from dcim.errors import FieldError, RuleError, SchemaError, TemplateError

#: The default rule pack, a directory of YAML files (its tests live in ``tests/`` beneath it).
DEFAULT_RULES_DIR = Path(__file__).resolve().parent / "rules"

Severity = Literal["info", "warning", "critical", "page"]
Op = Literal[">", ">=", "<", "<="]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``30s``, ``5m``, ``1h30m``, ``500ms`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (write e.g. 30s, 5m, 1h30m)")
    return total


Duration = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Flap(_Model):
    """Flap suppression: an alert that fired ``max_fires`` times within ``window`` must stay clear
    for the whole window before it resolves, so a flapping sensor pages once."""

    window: Duration = 900.0
    max_fires: int = Field(3, ge=2)

    _dur = field_validator("window", mode="before")(lambda v: parse_duration(v))


class RuleBase(_Model):
    """What every rule kind shares: identity, severity, timing, labels, annotations, inhibition."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=100)
    severity: Severity = "warning"
    for_: Duration = Field(0.0, alias="for")
    keep_firing_for: Duration = 0.0
    stale_after: Duration = Field(300.0, description="samples this old count as no data: a firing alert holds, a pending one is dropped")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    inhibits: list[str] = Field(default_factory=list, description="rule names (globs) this rule explains beneath it")
    inhibit_grace: Duration = Field(120.0, description="how long the alerts it explained stay marked after it ends")
    flap: Flap | None = Flap()
    source: str | None = Field(None, description="where the threshold comes from (documentation only)")
    actions: list[ActionSpec] = Field(default_factory=list,
                                      description="remediation on the alert's nodes (docs/failover.md)")

    @model_validator(mode="after")
    def _action_scopes(self) -> RuleBase:
        for i, spec in enumerate(self.actions):
            problem = check_scope(spec, self)
            if problem:
                raise FieldError(f"actions[{i}].scope", problem)
        return self

    @field_validator("for_", "keep_firing_for", "stale_after", "inhibit_grace", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"label name {key!r} is not a valid label name")
            if key in ("alertname", "severity"):
                raise ValueError(f"label {key!r} is set by the engine; use the rule's name/severity")
            try:  # labels are templated like annotations (Prometheus: labels are <tmpl_string>)
                templates.check(v[key], label=True)
            except TemplateError as exc:
                raise ValueError(f"label {key!r}: {exc}") from None
        return v

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            try:
                templates.check(text)
            except TemplateError as exc:
                raise ValueError(f"annotation {key!r}: {exc}") from None
        return v

    def matches_inhibit(self, other_rule: str) -> bool:
        return any(fnmatch.fnmatchcase(other_rule, pat) for pat in self.inhibits)


def _meas(name: str, key: str = "measurement") -> schema.Measurement:
    try:
        return schema.measurement(name)
    except SchemaError as exc:
        raise FieldError(key, str(exc)) from None


def _check_field(meas: str, name: str, *, numeric: bool = False, key: str = "field") -> None:
    m = _meas(meas)
    fld = m.fields.get(name)
    if fld is None:
        raise FieldError(key, f"measurement {meas!r} has no field {name!r} (known: {', '.join(sorted(m.fields))})")
    if numeric and fld.type in ("str",):
        raise FieldError(key, f"field {name!r} of {meas!r} is a {fld.type}, not a number")


Matchers = dict[str, str]
_MATCH_OPS = ("=~", "!~", "!=")


def _check_matchers(meas: str, match: Matchers, by: Iterable[str] = ()) -> None:
    m = _meas(meas)
    for key, tags in (("match", match), ("by", by)):
        for tag in tags:
            if tag not in m.tags:
                raise FieldError(key, f"measurement {meas!r} has no tag {tag!r} (known: {', '.join(m.tags)})")
    for tag, pat in match.items():
        if pat.startswith(("=~", "!~")):
            try:
                re.compile(pat[2:])
            except re.error as exc:
                raise FieldError(f"match.{tag}", f"bad regular expression {pat[2:]!r}: {exc}") from None


class _SeriesRule(RuleBase):
    """A rule over one measurement's series selected by tag matchers."""

    measurement: str
    match: Matchers = Field(default_factory=dict, description="tag: value, or =~regex, !~regex, !=value")

    @field_validator("measurement")
    @classmethod
    def _measurement(cls, v: str) -> str:
        _meas(v)
        return v


def _clear_check(op: str, threshold: float | None, clear: float | None) -> None:
    if clear is None or threshold is None:
        return
    if op in (">", ">=") and clear > threshold:
        raise FieldError("clear", f"clear ({clear}) must not be above the threshold ({threshold}) for op {op!r}")
    if op in ("<", "<=") and clear < threshold:
        raise FieldError("clear", f"clear ({clear}) must not be below the threshold ({threshold}) for op {op!r}")


class ThresholdRule(_SeriesRule):
    """A field against a threshold: a number, another field of the same series, or a topology default."""

    kind: Literal["threshold"]
    field: str
    op: Op = ">"
    threshold: float | None = None
    threshold_field: str | None = Field(None, description="the threshold is this field of the same series")
    threshold_default: float | str | None = Field(
        None, description="when threshold_field has no value: a number or gpu_model.<attribute>")
    threshold_offset: float = 0.0
    clear: float | None = Field(None, description="absolute clear threshold (hysteresis)")
    clear_delta: float | None = Field(None, ge=0, description="clear this far on the safe side of the threshold")
    minus: str | None = Field(None, description="compare field - minus (e.g. return - supply temperature)")
    where: dict[str, str] = Field(default_factory=dict,
                                  description="conditions on other fields of the series: {processes: '> 0'}")
    unless: dict[str, str] = Field(default_factory=dict,
                                   description="no alert while one of these holds on a fresh sample: {lost: '== true'}")

    @model_validator(mode="after")
    def _check(self) -> ThresholdRule:
        _check_field(self.measurement, self.field, numeric=True)
        _check_matchers(self.measurement, self.match)
        if self.minus is not None:
            _check_field(self.measurement, self.minus, numeric=True, key="minus")
        for part, conds in (("where", self.where), ("unless", self.unless)):
            for fld, cond in conds.items():
                _check_field(self.measurement, fld, key=f"{part}.{fld}")
                try:
                    parse_condition(cond)
                except ValueError as exc:
                    raise FieldError(f"{part}.{fld}", str(exc)) from None
        if self.threshold is None and self.threshold_field is None:
            raise FieldError("threshold", "give threshold or threshold_field")
        if self.threshold is not None and self.threshold_field is not None:
            raise FieldError("threshold", "give threshold or threshold_field, not both")
        if self.threshold_field is not None:
            _check_field(self.measurement, self.threshold_field, numeric=True, key="threshold_field")
        if isinstance(self.threshold_default, str):
            _check_topology_attr(self.threshold_default)
        if self.clear is not None and self.clear_delta is not None:
            raise FieldError("clear", "give clear or clear_delta, not both")
        if self.clear is not None and self.threshold is None:
            raise FieldError("clear", "clear needs a fixed threshold; use clear_delta with threshold_field")
        _clear_check(self.op, self.threshold, self.clear)
        return self


_COND = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


def parse_condition(text: str) -> tuple[str, float | bool | str]:
    """``'> 0'`` -> ('>', 0.0); ``'== true'`` -> ('==', True); ``'== normal'`` -> ('==', 'normal')."""
    m = _COND.match(str(text))
    if not m:
        raise ValueError(f"condition {text!r}: write '<op> <value>' with op one of > >= < <= == !=")
    op, raw = m.group(1), m.group(2)
    value: float | bool | str
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = float(raw)
        except ValueError:
            value = raw
    if isinstance(value, (bool, str)) and op not in ("==", "!="):
        raise ValueError(f"condition {text!r}: only == and != compare booleans and words")
    return op, value


def _check_topology_attr(ref: str) -> None:
    from dcim.config import GpuModelSpec

    obj, _, attr = ref.partition(".")
    if obj != "gpu_model" or attr not in GpuModelSpec.model_fields:
        raise FieldError("threshold_default", f"unknown topology default {ref!r} (write gpu_model.<attribute>, e.g. "
                         "gpu_model.slowdown_temp_c)")


class RateRule(_SeriesRule):
    """Rate of change of a field, in units per ``per`` (e.g. °C per minute), over ``window``."""

    kind: Literal["rate"]
    field: str
    window: Duration = 60.0
    per: Duration = 60.0
    op: Op = ">"
    threshold: float
    clear: float | None = None

    _dur = field_validator("window", "per", mode="before")(lambda v: parse_duration(v))

    @model_validator(mode="after")
    def _check(self) -> RateRule:
        _check_field(self.measurement, self.field, numeric=True)
        _check_matchers(self.measurement, self.match)
        if self.window <= 0 or self.per <= 0:
            raise FieldError("window", "window and per must be positive")
        _clear_check(self.op, self.threshold, self.clear)
        return self


class AggregateRule(_SeriesRule):
    """sum / max / min / avg / count of the latest value of each series in a group (by tags)."""

    kind: Literal["aggregate"]
    field: str
    func: Literal["sum", "max", "min", "avg", "count"]
    by: list[str] = Field(min_length=1)
    op: Op = ">"
    threshold: float
    clear: float | None = None

    @model_validator(mode="after")
    def _check(self) -> AggregateRule:
        _check_field(self.measurement, self.field, numeric=self.func != "count")
        _check_matchers(self.measurement, self.match, self.by)
        _clear_check(self.op, self.threshold, self.clear)
        return self


#: Ratings the topology knows, by the object a series belongs to.
RATINGS = {
    "pdu.breaker_a": "phase breaker rating of the series' PDU (A)",
    "pdu.capacity_w": "nameplate capacity of the series' PDU (W)",
    "rack.budget_w": "power budget of the series' rack (W)",
    "loop.nominal_flow_lpm": "nominal flow of the series' coolant loop (L/min)",
    "loop.supply_pressure_kpa": "nominal supply pressure of the series' coolant loop (kPa)",
    "loop.diff_pressure_kpa": "nominal differential pressure of the series' coolant loop (kPa)",
}


class RatioRule(_SeriesRule):
    """A field as a percentage of a rating from the topology (phase current against its breaker)."""

    kind: Literal["ratio"]
    field: str
    rating: str
    op: Op = ">"
    threshold: float = Field(description="percent of the rating")
    clear: float | None = None

    @model_validator(mode="after")
    def _check(self) -> RatioRule:
        _check_field(self.measurement, self.field, numeric=True)
        _check_matchers(self.measurement, self.match)
        if self.rating not in RATINGS:
            raise FieldError("rating", f"unknown rating {self.rating!r} (known: {', '.join(RATINGS)})")
        _clear_check(self.op, self.threshold, self.clear)
        return self


class ImbalanceRule(_SeriesRule):
    """Phase imbalance in percent: 100 x max|Li - mean| / mean over the series of a group (Raritan's formula)."""

    kind: Literal["imbalance"]
    field: str = "current_a"
    by: list[str] = Field(default_factory=lambda: ["rack", "pdu"])
    min_mean: float = Field(0.0, ge=0, description="no judgement below this mean (imbalance explodes at low load)")
    min_members: int = Field(2, ge=2)
    op: Literal[">", ">="] = ">"
    threshold: float
    clear: float | None = None

    @model_validator(mode="after")
    def _check(self) -> ImbalanceRule:
        _check_field(self.measurement, self.field, numeric=True)
        _check_matchers(self.measurement, self.match, self.by)
        _clear_check(self.op, self.threshold, self.clear)
        return self


class AbsentRule(_SeriesRule):
    """No sample from a device (the tags in ``by``) for ``after``: the silent failure Prometheus resolves."""

    kind: Literal["absent"]
    by: list[str] = Field(min_length=1)
    field: str | None = Field(None, description="only samples carrying this field count")
    after: Duration = 60.0
    expect: Literal["seen", "topology"] = Field(
        "seen", description="seen: devices that reported once; topology: also devices the site lists")

    _dur = field_validator("after", mode="before")(lambda v: parse_duration(v))

    @model_validator(mode="after")
    def _check(self) -> AbsentRule:
        if self.field is not None:
            _check_field(self.measurement, self.field)
        _check_matchers(self.measurement, self.match, self.by)
        if self.after <= 0:
            raise FieldError("after", "after must be positive")
        return self


class IncreaseRule(_SeriesRule):
    """A counter went up by more than ``threshold`` within ``window`` (resets count as restarts)."""

    kind: Literal["increase"]
    field: str
    window: Duration = 300.0
    threshold: float = 0.0
    new_series_from_zero: bool = Field(
        False, description="a series first seen after the engine started counts its first value as an increase")

    _dur = field_validator("window", mode="before")(lambda v: parse_duration(v))

    @model_validator(mode="after")
    def _check(self) -> IncreaseRule:
        _check_field(self.measurement, self.field, numeric=True)
        _check_matchers(self.measurement, self.match)
        if self.window <= 0:
            raise FieldError("window", "window must be positive")
        return self


class StateRule(_SeriesRule):
    """A state field equals one of the given values (GPU lost, leak, PDU near overload)."""

    kind: Literal["state"]
    field: str
    equals: bool | str | float | list[bool | str | float]

    @model_validator(mode="after")
    def _check(self) -> StateRule:
        _check_field(self.measurement, self.field)
        _check_matchers(self.measurement, self.match)
        fld = schema.measurement(self.measurement).fields[self.field]
        for v in self.values():
            ok = (isinstance(v, bool) if fld.type == "bool" else isinstance(v, str) if fld.type == "str"
                  else isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok:
                raise FieldError("equals", f"{v!r} cannot be a value of {fld.type} field {self.field!r}")
        return self

    def values(self) -> list[bool | str | float]:
        return list(self.equals) if isinstance(self.equals, list) else [self.equals]


class RedundancyRule(_SeriesRule):
    """A/B feed redundancy: the load of all feeds of a group together against what one feed may carry alone."""

    kind: Literal["redundancy"]
    measurement: str = "pdu_phase"
    field: str = "current_a"
    rating: str = "pdu.breaker_a"
    by: list[str] = Field(default_factory=lambda: ["rack", "phase"])
    threshold: float = Field(80.0, description="percent of one feed's rating (NEC 80 % continuous load)")
    clear: float | None = None

    @model_validator(mode="after")
    def _check(self) -> RedundancyRule:
        _check_field(self.measurement, self.field, numeric=True)
        _check_matchers(self.measurement, self.match, self.by)
        if "feed" not in schema.measurement(self.measurement).tags:
            raise FieldError("measurement", f"measurement {self.measurement!r} has no feed tag")
        if self.rating not in ("pdu.breaker_a", "pdu.capacity_w"):
            raise FieldError("rating", "rating must be pdu.breaker_a or pdu.capacity_w")
        _clear_check(">", self.threshold, self.clear)
        return self


class EnergyBalanceRule(RuleBase):
    """Heat a loop removes (flow x density x cp x ΔT) against the electrical power of the racks it cools."""

    kind: Literal["energy_balance"]
    power_measurement: str = "pdu"
    power_field: str = "power_w"
    expected_ratio: float = Field(1.0, gt=0, description="share of electrical power the liquid should carry")
    min_power_w: float = Field(1000.0, ge=0)
    threshold: float = Field(description="percent deviation, either way")
    clear: float | None = None

    @model_validator(mode="after")
    def _check(self) -> EnergyBalanceRule:
        _check_field(self.power_measurement, self.power_field, numeric=True, key="power_field")
        if "rack" not in schema.measurement(self.power_measurement).tags:
            raise FieldError("power_measurement", f"power_measurement {self.power_measurement!r} has no rack tag")
        _clear_check(">", self.threshold, self.clear)
        return self


Rule = Annotated[
    ThresholdRule | RateRule | AggregateRule | RatioRule | ImbalanceRule | AbsentRule | IncreaseRule
    | StateRule | RedundancyRule | EnergyBalanceRule,
    Field(discriminator="kind"),
]
KINDS = ("threshold", "rate", "aggregate", "ratio", "imbalance", "absent", "increase", "state",
         "redundancy", "energy_balance")

_ADAPTER: TypeAdapter[Any] = TypeAdapter(Rule)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if not (isinstance(p, str) and p in KINDS)]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + ("for" if p == "for_" else str(p))
    return out


def parse_rule(data: Any, *, file: str = "<rules>", index: int = 0) -> Any:
    """Validate one rule mapping; RuleError names file, rule and field."""
    name = data.get("name") if isinstance(data, dict) else None
    rule_name = name if isinstance(name, str) else f"#{index + 1}"
    if not isinstance(data, dict):
        raise RuleError("a rule must be a mapping", file=file, rule=rule_name)
    kind = data.get("kind")
    if kind not in KINDS:
        msg = f"unknown kind {kind!r} (known: {', '.join(KINDS)})" if kind is not None else \
            f"required key is missing (one of: {', '.join(KINDS)})"
        raise RuleError(msg, file=file, rule=rule_name, field="kind")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = _loc(tuple(err["loc"])) or None
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError) and not (field or "").endswith(cause.field):
            field = ".".join(p for p in (field, cause.field) if p)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key for a {kind} rule (check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        raise RuleError(msg, file=file, rule=rule_name, field=field) from None


def load_rule_file(path: str | Path) -> list[Any]:
    """Load one YAML rule file."""
    p = Path(path)
    file = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"cannot read: {exc.strerror}", file=file) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RuleError(f"{where}invalid YAML: {getattr(exc, 'problem', None) or exc}", file=file) from None
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) - {"rules"}:
        extra = sorted(set(data) - {"rules"}) if isinstance(data, dict) else None
        msg = f"unknown top-level keys {extra}" if extra else "a rule file is a mapping with one key, rules:"
        raise RuleError(msg, file=file)
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise RuleError("rules: must be a list", file=file, field="rules")
    return [parse_rule(item, file=file, index=i) for i, item in enumerate(items)]


def rule_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Expand directories to their *.yaml / *.yml files (not recursing into tests/), sorted."""
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()))
        else:
            out.append(p)
    return out


def load_rules(paths: Iterable[Path | str]) -> list[Any]:
    """Load rule files or directories of them; rule names must be unique across all files."""
    rules: list[Any] = []
    seen: dict[str, str] = {}
    for p in rule_paths(paths):
        for rule in load_rule_file(p):
            if rule.name in seen:
                raise RuleError(f"rule name already used in {seen[rule.name]}", file=str(p), rule=rule.name,
                                field="name")
            seen[rule.name] = str(p)
            rules.append(rule)
    return rules
