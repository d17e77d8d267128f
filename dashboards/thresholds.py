"""Alert thresholds the panels draw, read from the alert rule pack so one edit there reaches every panel.

The dashboards never spell a limit of their own: the phase-current line (percent of the breaker),
the phase-imbalance limit, the coolant supply class limit, the low-flow line and the GPU slowdown
fallback are found in the rules the engine loads (``alerts.rulefile.load_rules``), by what each rule
watches (kind, measurement, field, rating), not by its name. Where several severities watch the
same thing, the first line crossed (the warning) is the one drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dcim.config import SiteConfig, default_site
from dcim.schema import COOLANT_LOOP, GPU, PDU_PHASE

#: The engine's default pack (alerts/rules beside the alerts package).
DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "alerts" / "rules"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The limits panels draw; ``sources`` names the rule that gave each one (absent: built-in default)."""

    phase_current_pct: float = 80.0  # of the breaker rating
    phase_imbalance_pct: float = 20.0
    coolant_supply_max_c: float = 32.0
    coolant_flow_low_lpm: float = 400.0
    coolant_delta_t_max_k: float = 12.0
    coolant_delta_t_min_k: float = 2.0
    coolant_dp_low_kpa: float = 75.0
    gpu_slowdown_fallback_c: float = 87.0  # the slowdown temperature assumed when a GPU reports none
    gpu_temp_alert_offset_c: float = -3.0  # the GPU temperature alert fires this far from slowdown
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def gpu_temp_alert_c(self) -> float:
        """Where the GPU temperature alert fires for a GPU without its own slowdown threshold."""
        return self.gpu_slowdown_fallback_c + self.gpu_temp_alert_offset_c

    def missing(self) -> list[str]:
        """Thresholds that kept the built-in default because no rule gave them."""
        return [f.name for f in fields(self) if f.name != "sources" and f.name not in self.sources]


def _is(rule: Any, kind: str, measurement: str, fld: str) -> bool:
    return (getattr(rule, "kind", None) == kind and getattr(rule, "measurement", None) == measurement
            and getattr(rule, "field", None) == fld)


def _above(rule: Any) -> bool:
    return getattr(rule, "op", ">") in (">", ">=")


def _pick(found: dict[str, tuple[float, str]], key: str, value: float, rule: Any, *, lowest: bool) -> None:
    """Keep the first line crossed: the lowest of the upper limits, the highest of the lower ones."""
    old = found.get(key)
    if old is None or (value < old[0] if lowest else value > old[0]):
        found[key] = (value, rule.name)


def _gpu_default(rule: Any, site: SiteConfig) -> float | None:
    """The slowdown temperature a GPU-temperature rule assumes when the GPU reports none of its own."""
    default = rule.threshold_default
    if isinstance(default, str):  # gpu_model.<attribute>: the coolest model of the site is the safe line
        attr = default.partition(".")[2]
        values = [getattr(spec, attr) for spec in site.gpu_models.values()]
        default = min(values) if values else None
    return None if default is None else float(default)


def from_rules(rules: Iterable[Any], site: SiteConfig) -> Thresholds:
    """Thresholds from loaded rule objects (pure; ``from_rule_pack`` loads them)."""
    found: dict[str, tuple[float, str]] = {}
    nominal = [loop.nominal_flow_lpm for loop in site.loops]
    nominal_dp = [loop.diff_pressure_kpa for loop in site.loops]
    for r in rules:
        if _is(r, "ratio", PDU_PHASE.name, "current_a") and r.rating == "pdu.breaker_a" and _above(r):
            _pick(found, "phase_current_pct", r.threshold, r, lowest=True)
        elif _is(r, "imbalance", PDU_PHASE.name, "current_a"):
            _pick(found, "phase_imbalance_pct", r.threshold, r, lowest=True)
        elif (_is(r, "threshold", COOLANT_LOOP.name, "return_temp_c") and getattr(r, "minus", None) == "supply_temp_c"
              and r.threshold is not None):
            if _above(r):
                _pick(found, "coolant_delta_t_max_k", r.threshold, r, lowest=True)
            else:
                _pick(found, "coolant_delta_t_min_k", r.threshold, r, lowest=False)
        elif (_is(r, "ratio", COOLANT_LOOP.name, "diff_pressure_kpa") and r.rating == "loop.diff_pressure_kpa"
              and not _above(r) and nominal_dp):
            _pick(found, "coolant_dp_low_kpa", r.threshold / 100 * max(nominal_dp), r, lowest=False)
        elif (_is(r, "threshold", COOLANT_LOOP.name, "supply_temp_c") and _above(r) and r.threshold is not None
              and getattr(r, "minus", None) is None):
            _pick(found, "coolant_supply_max_c", r.threshold, r, lowest=True)
        elif _is(r, "threshold", COOLANT_LOOP.name, "flow_lpm") and not _above(r) and r.threshold is not None:
            _pick(found, "coolant_flow_low_lpm", r.threshold, r, lowest=False)
        elif (_is(r, "ratio", COOLANT_LOOP.name, "flow_lpm") and r.rating == "loop.nominal_flow_lpm"
              and not _above(r) and nominal):
            # Percent of nominal flow; one line per dashboard, so the loop with the most flow sets it.
            _pick(found, "coolant_flow_low_lpm", r.threshold / 100 * max(nominal), r, lowest=False)
        elif _is(r, "threshold", GPU.name, "temp_c") and getattr(r, "threshold_field", None) == "temp_slowdown_c":
            slowdown = _gpu_default(r, site)
            if slowdown is None:
                continue
            alert_c = slowdown + r.threshold_offset
            if "gpu_slowdown_fallback_c" in found:
                if alert_c >= found["gpu_slowdown_fallback_c"][0] + found["gpu_temp_alert_offset_c"][0]:
                    continue  # an earlier rule already fires first
            found["gpu_slowdown_fallback_c"] = (slowdown, r.name)
            found["gpu_temp_alert_offset_c"] = (float(r.threshold_offset), r.name)
    values = {k: v for k, (v, _) in found.items()}
    # No rule: half the smallest nominal is a line that fits the site rather than a fixed number.
    if "coolant_flow_low_lpm" not in values and nominal:
        values["coolant_flow_low_lpm"] = 0.5 * min(nominal)
    if "coolant_dp_low_kpa" not in values and nominal_dp:
        values["coolant_dp_low_kpa"] = 0.5 * min(nominal_dp)
    return Thresholds(**values, sources={k: n for k, (_, n) in found.items()})


def from_rule_pack(rules_dir: str | Path = DEFAULT_RULES_DIR, site: SiteConfig | None = None) -> Thresholds:
    """Load the rule pack with the engine's own loader (RuleError names a bad file) and pick the thresholds."""
    from dcim.alerts.rulefile import load_rules  # the engine's loader is the one definition of the format

    root = Path(rules_dir)
    rules = load_rules([root]) if root.exists() else []
    return from_rules(rules, site or default_site())
