"""Fault scenarios: YAML timelines of faults (validated by pydantic) that the hall model plays back.

A scenario names its targets by topology name (rack, node, gpu, pdu, phase, loop); times are
relative to the start (``at: 2m``); a fault ramps in over ``ramp`` and, when it has ``until``,
ramps back out over ``recover`` so an alert can fire and resolve within one run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from dcim.config import _yaml_lines, format_loc, load_yaml
from dcim.errors import ConfigError

#: Where the shipped scenarios live.
SCENARIO_DIR = Path(__file__).resolve().parent

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s)?\s*(?:(\d+(?:\.\d+)?)ms)?\s*$")


def parse_duration(value: Any) -> float:
    """``90``, ``"90s"``, ``"2m"``, ``"1m30s"``, ``"1h"``, ``"500ms"`` -> seconds (float)."""
    if isinstance(value, bool):
        msg = f"not a duration: {value!r}"
        raise ValueError(msg)
    if isinstance(value, (int, float)):
        if value < 0:
            msg = f"duration must not be negative, got {value}"
            raise ValueError(msg)
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_duration(float(text))
        except ValueError:
            pass
        m = _DURATION.match(text)
        if m and any(m.groups()):
            h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
            return h * 3600 + mi * 60 + s + ms / 1000
    msg = f"not a duration: {value!r} (use e.g. 90, 90s, 2m, 1m30s, 1h)"
    raise ValueError(msg)


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Fault(_Model):
    """Fields every fault has: when it starts, how it ramps in, and when (if ever) it recovers."""

    at: Duration = 0.0
    ramp: Duration = Field(0.0, description="time to reach full strength")
    until: Duration | None = Field(None, description="when recovery starts; None: lasts to the end")
    recover: Duration | None = Field(None, description="time to ramp back out; default: the ramp")
    note: str | None = Field(None, description="what an operator should see; shown as the event text")

    @model_validator(mode="after")
    def _order(self) -> _Fault:
        if self.until is not None and self.until < self.at + self.ramp:
            msg = f"until ({self.until:g} s) is before the fault has ramped in (at + ramp = {self.at + self.ramp:g} s)"
            raise ValueError(msg)
        return self

    def strength(self, t_s: float) -> float:
        """0..1: how strongly the fault acts at ``t_s`` seconds after the start."""
        if t_s < self.at:
            return 0.0
        up = 1.0 if self.ramp <= 0 else min(1.0, (t_s - self.at) / self.ramp)
        if self.until is None or t_s < self.until:
            return up
        rec = self.ramp if self.recover is None else self.recover
        if rec <= 0:
            return 0.0
        return max(0.0, 1.0 - (t_s - self.until) / rec)

    def end_s(self) -> float | None:
        if self.until is None:
            return None
        return self.until + (self.ramp if self.recover is None else self.recover)

    def target(self) -> str:
        parts = [
            f"{k} {v}" for k in ("loop", "rack", "pdu", "phase", "node", "gpu") if (v := getattr(self, k, None)) is not None
        ]
        return ", ".join(parts)


class PumpDegradation(_Fault):
    """Pump wear or a clogged strainer: the loop's flow falls to ``flow_fraction`` of normal."""

    kind: Literal["pump_degradation"]
    loop: str
    flow_fraction: float = Field(0.3, ge=0.0, le=1.0)


class PumpSpeed(_Fault):
    """Someone (or the CDU's control) changes the pump speed setting."""

    kind: Literal["pump_speed"]
    loop: str
    pump_speed_pct: float = Field(gt=0, le=100)


class SetpointDrift(_Fault):
    """The CDU's supply temperature drifts ``delta_c`` away from its (unchanged) setpoint."""

    kind: Literal["setpoint_drift"]
    loop: str
    delta_c: float = 5.0


class Leak(_Fault):
    """A leak detector trips; the loop slowly loses static pressure while it lasts."""

    kind: Literal["leak"]
    loop: str
    pressure_loss_kpa: float = Field(30.0, ge=0)


LoopSensor = Literal[
    "supply_temp_c", "return_temp_c", "flow_lpm", "supply_pressure_kpa", "return_pressure_kpa", "pump_speed_pct",
]


class StuckSensor(_Fault):
    """A loop sensor freezes at the value it had when the fault began; the physics goes on."""

    kind: Literal["stuck_sensor"]
    loop: str
    sensor: LoopSensor = "flow_lpm"


class NoisySensor(_Fault):
    """A loop sensor reads with large gaussian noise of ``sigma`` (in the sensor's unit)."""

    kind: Literal["noisy_sensor"]
    loop: str
    sensor: LoopSensor = "supply_temp_c"
    sigma: float = Field(3.0, gt=0)


class NotAnswering(_Fault):
    """A PDU (rack + pdu) or a CDU (loop) stops answering: no records, ``answering=False``."""

    kind: Literal["not_answering"]
    loop: str | None = None
    rack: str | None = None
    pdu: str | None = None

    @model_validator(mode="after")
    def _one_device(self) -> NotAnswering:
        if (self.loop is None) == (self.rack is None or self.pdu is None):
            msg = "give either loop, or rack and pdu"
            raise ValueError(msg)
        return self


Profile = Literal["training", "inference", "idle", "burn"]


class Workload(_Fault):
    """The GPUs of a rack, node or one GPU switch workload profile (``burn`` = 100 % surge)."""

    kind: Literal["workload"]
    profile: Profile
    rack: str | None = None
    node: str | None = None
    gpu: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _where(self) -> Workload:
        if self.rack is None and self.node is None:
            msg = "give rack or node"
            raise ValueError(msg)
        if self.gpu is not None and self.node is None:
            msg = "gpu needs node"
            raise ValueError(msg)
        return self


class FeedLoss(_Fault):
    """A PDU stops delivering power (upstream breaker); the nodes' other supplies carry the load."""

    kind: Literal["feed_loss"]
    rack: str
    pdu: str


class ExtraLoad(_Fault):
    """An extra load (a burn-in cart, a mis-planned server) on one phase of a PDU."""

    kind: Literal["extra_load"]
    rack: str
    pdu: str
    phase: Literal["L1", "L2", "L3"]
    power_w: float = Field(gt=0)


class GpuLostFault(_Fault):
    """A GPU falls off the bus (XID 79) at ``at``; ``until``: the node is reset and it returns."""

    kind: Literal["gpu_lost"]
    node: str
    gpu: int = Field(ge=0)


class EccErrors(_Fault):
    """A GPU's memory reports corrected errors at a rate and, optionally, uncorrected ones (XID 48)."""

    kind: Literal["ecc_errors"]
    node: str
    gpu: int = Field(ge=0)
    sbe_per_min: float = Field(10.0, ge=0)
    dbe: int = Field(0, ge=0, description="uncorrected errors at the start (each raises XID 48)")


class Xid(_Fault):
    """One XID error of ``code`` on a GPU."""

    kind: Literal["xid"]
    node: str
    gpu: int = Field(ge=0)
    code: int = Field(ge=1)


_FAULT_TYPES = (
    PumpDegradation, PumpSpeed, SetpointDrift, Leak, StuckSensor, NoisySensor, NotAnswering, Workload, FeedLoss,
    ExtraLoad, GpuLostFault, EccErrors, Xid,
)
Fault = Annotated[Union[_FAULT_TYPES], Field(discriminator="kind")]  # noqa: UP007 - a tuple needs Union


_KINDS = frozenset(get_args(m.model_fields["kind"].annotation)[0] for m in _FAULT_TYPES)


class Scenario(_Model):
    """A named timeline of faults and what an operator should see while it plays."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str
    duration: Duration = 600.0
    faults: list[Fault] = Field(default_factory=list)

    def check_site(self, site: Any) -> None:
        """ConfigError when a fault names a rack, node, GPU, PDU or loop the site does not have."""
        racks = {r.name: r for r in site.racks()}
        nodes = {n.name: n for r in racks.values() for n in r.nodes}
        loops = {lp.name for lp in site.loops}
        for i, f in enumerate(self.faults):
            where = f"faults[{i}]"
            if getattr(f, "loop", None) is not None and f.loop not in loops:
                raise ConfigError(f"unknown loop {f.loop!r} (site has {sorted(loops)})", file=self.name, path=where)
            rack = getattr(f, "rack", None)
            if rack is not None:
                if rack not in racks:
                    raise ConfigError(f"unknown rack {rack!r}", file=self.name, path=where)
                pdu = getattr(f, "pdu", None)
                if pdu is not None and pdu not in {p.name for p in racks[rack].pdus}:
                    raise ConfigError(f"rack {rack!r} has no PDU {pdu!r}", file=self.name, path=where)
            node = getattr(f, "node", None)
            if node is not None:
                if node not in nodes:
                    raise ConfigError(f"unknown node {node!r}", file=self.name, path=where)
                gpu = getattr(f, "gpu", None)
                if gpu is not None and gpu >= nodes[node].gpus:
                    raise ConfigError(f"node {node!r} has no GPU {gpu}", file=self.name, path=where)


def _error(exc: ValidationError, *, file: str, text: str | None) -> ConfigError:
    """One ConfigError naming file, path (as written in the YAML) and line for every problem."""
    lines = _yaml_lines(text) if text else {}
    problems = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        # the fault kind pydantic puts after a list index is not part of the YAML path
        if len(loc) >= 3 and loc[0] == "faults" and isinstance(loc[1], int) and loc[2] in _KINDS:
            del loc[2]
        loc_t = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        line = next((lines[loc_t[:n]] for n in range(len(loc_t), -1, -1) if loc_t[:n] in lines), None)
        where = format_loc(loc_t) + (f" (line {line})" if line else "")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of a scenario; check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown fault kind {err.get('input', {}).get('kind')!r}; known: {', '.join(sorted(_KINDS))}"
        problems.append(f"{where}: {msg}")
    return ConfigError("invalid scenario:\n  " + "\n  ".join(problems), file=file)


def _from_data(data: Any, *, file: str, text: str | None) -> Scenario:
    if data is None:
        data = {}
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _error(exc, file=file, text=text) from None


def list_scenarios() -> list[tuple[str, str]]:
    """The shipped scenarios as (name, description), sorted by name."""
    out = []
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        sc = load_scenario(path)
        out.append((sc.name, sc.description))
    return out


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (``pump-degradation``) or any scenario file by path."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if not (text_name.endswith((".yaml", ".yml")) or path.exists()):
        path = SCENARIO_DIR / f"{text_name}.yaml"
        if not path.exists():
            msg = f"unknown scenario {text_name!r}; known: {', '.join(scenario_names())}"
            raise ConfigError(msg)
    data, text = load_yaml(path)
    return _from_data(data, file=str(path), text=text)


def parse_scenario(text: str, *, file: str = "<string>") -> Scenario:
    """A scenario from YAML text (tests, what-if tools)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from exc
    return _from_data(data, file=file, text=text)
