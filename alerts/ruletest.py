"""Rule unit tests in the spirit of ``promtool test rules``: input series in expanding notation,
evaluation times, and the alerts expected at each (labels, annotations, state, inhibition).

A test file::

    rule_files: [../gpu.yaml]          # relative to the test file
    evaluation_interval: 1s            # the engine's interval (default 1s)
    tests:
      - name: hot GPU fires after 30 s
        interval: 10s                  # spacing of input samples (default: evaluation_interval)
        input_series:
          - series: 'gpu.temp_c{rack="A01",node="A01-n01",gpu="0"}'
            values: '70 80+5x4 _x3 95'
        alert_rule_test:
          - eval_time: 1m
            alertname: GpuTempHigh
            exp_alerts:
              - exp_labels: {node: A01-n01, gpu: "0"}      # a subset of the alert's labels
                exp_annotations: {summary: "..."}         # exact, for the keys given
                exp_state: firing                         # default firing; or pending
                exp_inhibited: false                      # optional

Values: ``a`` one sample; ``a+bxn`` / ``a-bxn`` n+1 samples stepping by b; ``axn`` n+1 copies;
``_`` a missing sample, ``_xn`` n of them; ``true``/``false`` and words (``near_overload``) for
boolean and string fields, ``wordxn`` n+1 copies. ``stale`` is a missing sample, as in promtool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dcim.alerts.engine import Engine
from dcim.alerts.state import NS, Alert
from dcim.alerts.rulefile import load_rules, parse_duration
from dcim import schema
from dcim.config import SiteConfig, default_site, load_site
from dcim.errors import DcimError, RuleError
from dcim.record import Record


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpAlert(_M):
    exp_labels: dict[str, str] = Field(default_factory=dict)
    exp_annotations: dict[str, str] = Field(default_factory=dict)
    exp_state: str = Field("firing", pattern="^(pending|firing)$")
    exp_inhibited: bool | None = None

    @field_validator("exp_labels", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        return {k: str(x) for k, x in v.items()} if isinstance(v, dict) else v


class AlertCase(_M):
    eval_time: float
    alertname: str
    exp_alerts: list[ExpAlert] = Field(default_factory=list)

    _dur = field_validator("eval_time", mode="before")(lambda v: parse_duration(v))


class Series(_M):
    series: str
    values: str | int | float | bool


class RuleTestGroup(_M):
    name: str = "unnamed"
    interval: float | None = None
    start_timestamp: float = 0.0
    input_series: list[Series] = Field(default_factory=list)
    alert_rule_test: list[AlertCase] = Field(default_factory=list)

    _dur = field_validator("interval", mode="before")(lambda v: None if v is None else parse_duration(v))


class RuleTestFile(_M):
    rule_files: list[str] = Field(min_length=1)
    evaluation_interval: float = 1.0
    site: str | None = None
    tests: list[RuleTestGroup] = Field(default_factory=list)

    _dur = field_validator("evaluation_interval", mode="before")(lambda v: parse_duration(v))


_SERIES = re.compile(r"^\s*([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\s*(?:\{(.*)\})?\s*$")
_TAG = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EXPAND = re.compile(rf"^({_NUM})(?:([-+])({_NUM}))?x(\d+)$")
_WORDX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*?)x(\d+)$")


def parse_series(text: str) -> tuple[str, str, dict[str, str]]:
    """``gpu.temp_c{node="n1",gpu="0"}`` -> (measurement, field, tags), checked against the schema."""
    m = _SERIES.match(text)
    if not m:
        raise ValueError(f"series {text!r}: write measurement.field{{tag=\"value\",...}}")
    meas, fld, body = m.group(1), m.group(2), m.group(3) or ""
    schema.measurement(meas).field(fld)
    tags: dict[str, str] = {}
    pos = 0
    body = body.strip()
    while pos < len(body):
        t = _TAG.match(body, pos)
        if not t:
            raise ValueError(f"series {text!r}: cannot read tags at {body[pos:]!r}")
        tags[t.group(1)] = t.group(2).replace('\\"', '"')
        pos = t.end()
    return meas, fld, tags


def expand_values(text: str | int | float | bool, ftype: str) -> list[Any]:
    """Expanding notation to a list of values (None = missing sample)."""
    if isinstance(text, bool):
        tokens = [str(text).lower()]
    else:
        tokens = str(text).split()
    out: list[Any] = []
    for tok in tokens:
        if tok in ("_", "stale"):
            out.append(None)
            continue
        if tok.startswith("_x") and tok[2:].isdigit():
            out.extend([None] * int(tok[2:]))
            continue
        m = _EXPAND.match(tok)
        if m and ftype not in ("str", "bool"):
            start, sign, step, n = float(m.group(1)), m.group(2), float(m.group(3) or 0), int(m.group(4))
            step = -step if sign == "-" else step
            out.extend(_coerce(start + i * step, ftype, tok) for i in range(n + 1))
            continue
        w = _WORDX.match(tok)
        if w and ftype in ("str", "bool"):
            out.extend([_coerce(w.group(1), ftype, tok)] * (int(w.group(2)) + 1))
            continue
        out.append(_coerce(tok, ftype, tok))
    return out


def _coerce(v: Any, ftype: str, tok: str) -> Any:
    if ftype == "bool":
        if str(v).lower() in ("true", "1"):
            return True
        if str(v).lower() in ("false", "0"):
            return False
        raise ValueError(f"value {tok!r} is not a boolean")
    if ftype == "str":
        return str(v)
    try:
        x = float(v)
    except ValueError:
        raise ValueError(f"value {tok!r} is not a number") from None
    return int(x) if ftype in ("int", "uint") else x


@dataclass
class Failure:
    file: str
    test: str
    eval_time_s: float
    alertname: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: test {self.test!r}: eval_time {self.eval_time_s:g}s, {self.alertname}: {self.message}"


@dataclass
class Result:
    files: int = 0
    groups: int = 0
    cases: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: alert names that some test expected to be pending or firing
    covered: set[str] = field(default_factory=set)
    #: every rule loaded by the test files, by name
    rules: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.failures


def load_test_file(path: Path) -> RuleTestFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except yaml.YAMLError as exc:
        raise RuleError(f"invalid YAML: {exc}", file=str(path)) from None
    try:
        return RuleTestFile.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise RuleError(err["msg"], file=str(path), field=loc) from None


def _records(group: RuleTestGroup, interval_s: float, file: str) -> list[Record]:
    step_ns = int(round((group.interval or interval_s) * NS))
    start_ns = int(round(group.start_timestamp * NS))
    recs = []
    for i, s in enumerate(group.input_series):
        try:
            meas, fld, tags = parse_series(s.series)
            ftype = schema.MEASUREMENTS[meas].fields[fld].type
            values = expand_values(s.values, ftype)
        except (ValueError, DcimError) as exc:
            raise RuleError(str(exc), file=file, field=f"tests[{group.name}].input_series[{i}]") from None
        for k, v in enumerate(values):
            if v is not None:
                recs.append(Record(meas, dict(tags), {fld: v}, start_ns + k * step_ns))
    recs.sort(key=lambda r: r.time_ns)
    return recs


def _matches(exp: ExpAlert, got: Alert) -> bool:
    if got.state != exp.exp_state:
        return False
    if any(got.labels.get(k) != v for k, v in exp.exp_labels.items()):
        return False
    if any(got.annotations.get(k) != v for k, v in exp.exp_annotations.items()):
        return False
    return exp.exp_inhibited is None or got.inhibited == exp.exp_inhibited


def _describe(a: Alert) -> str:
    inh = ", inhibited" if a.inhibited else ""
    return f"{a.state}{inh} {a.labels} summary={a.annotations.get('summary')!r}"


def run_group(group: RuleTestGroup, rules: list[Any], site: SiteConfig, interval_s: float, file: str
              ) -> list[Failure]:
    engine = Engine(rules, site=site, evaluation_interval_s=interval_s)
    recs = _records(group, interval_s, file)
    start_ns = int(round(group.start_timestamp * NS))
    failures = []
    pos = 0
    for case in sorted(group.alert_rule_test, key=lambda c: c.eval_time):
        t_ns = start_ns + int(round(case.eval_time * NS))
        end = pos
        while end < len(recs) and recs[end].time_ns <= t_ns:
            end += 1
        engine.process(recs[pos:end])
        pos = end
        engine.advance(t_ns)
        got = [a for a in engine.active() if a.rule == case.alertname]
        states = {e.exp_state for e in case.exp_alerts} or {"firing"}
        got = [a for a in got if a.state in states]
        unmatched = list(got)
        missing = []
        for exp in case.exp_alerts:
            hit = next((a for a in unmatched if _matches(exp, a)), None)
            if hit is None:
                missing.append(exp)
            else:
                unmatched.remove(hit)
        if missing or unmatched:
            lines = [f"expected {len(case.exp_alerts)} {'/'.join(sorted(states))} alert(s), got {len(got)}"]
            lines += [f"  missing: {e.exp_state} labels {e.exp_labels} annotations {e.exp_annotations}"
                      + (f" inhibited={e.exp_inhibited}" if e.exp_inhibited is not None else "") for e in missing]
            lines += [f"  unexpected: {_describe(a)}" for a in unmatched]
            failures.append(Failure(file, group.name, case.eval_time, case.alertname, "\n".join(lines)))
    return failures


def find_test_files(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file()))
        else:
            out.append(p)
    return out


def run_files(paths: Iterable[Path | str], *, site: SiteConfig | None = None, run: str | None = None) -> Result:
    """Run every test file (directories: all *.yaml beneath); RuleError for files that cannot be read."""
    result = Result()
    pattern = re.compile(run) if run else None
    for path in find_test_files(paths):
        tf = load_test_file(path)
        rules = load_rules([(path.parent / f) for f in tf.rule_files])
        result.rules.update(r.name for r in rules)
        file_site = site
        if tf.site is not None:
            file_site = load_site(path.parent / tf.site)
        file_site = file_site or default_site()
        result.files += 1
        for group in tf.tests:
            if pattern and not pattern.search(group.name):
                continue
            result.groups += 1
            result.cases += len(group.alert_rule_test)
            for case in group.alert_rule_test:
                if case.exp_alerts:
                    result.covered.add(case.alertname)
            result.failures += run_group(group, rules, file_site, tf.evaluation_interval, str(path))
    return result
