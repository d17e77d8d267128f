"""Alert thresholds the panels draw, read from the alert rule pack so one edit there reaches every panel.

The dashboards never spell a limit of their own: the 80 % phase-current line, the phase-imbalance
limit, the coolant supply class limit, the low-flow line and the GPU slowdown fallback are all looked
up here, by rule, in the same YAML files the alert engine loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dcim.errors import RuleError

#: Where the engine's default pack lives (alerts/rules beside the alerts package).
DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "alerts" / "rules"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The limits panels draw; ``sources`` says which rule (file: name) gave each one."""

    phase_current_pct: float = 80.0  # of the breaker rating
    phase_imbalance_pct: float = 20.0
    coolant_supply_max_c: float = 32.0
    coolant_flow_low_lpm: float = 400.0
    gpu_slowdown_fallback_c: float = 87.0
    sources: Mapping[str, str] = field(default_factory=dict)

    def missing(self) -> list[str]:
        """Thresholds that fell back to the built-in default because no rule gave them."""
        return [f.name for f in fields(self) if f.name != "sources" and f.name not in self.sources]


#: Threshold -> predicate on a rule's lower-cased name; the first rule that matches gives the value.
_MATCHERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "phase_imbalance_pct": (("imbalance",),),
    "phase_current_pct": (("phase", "current"), ("phase", "overload"), ("phase", "load")),
    "coolant_supply_max_c": (("supply", "temp"), ("supply", "hot"), ("supply", "high")),
    "coolant_flow_low_lpm": (("flow", "low"),),
    "gpu_slowdown_fallback_c": (("slowdown",),),
}


def _rules_in(doc: Any) -> Iterator[Mapping[str, Any]]:
    """Rules from one YAML document: a list, ``rules:``, or Prometheus-style ``groups: [{rules}]``."""
    if isinstance(doc, list):
        for item in doc:
            yield from _rules_in(item) if isinstance(item, Mapping) and ("rules" in item) else [item]
    elif isinstance(doc, Mapping):
        if "groups" in doc:
            for group in doc["groups"] or []:
                yield from _rules_in(group)
        elif "rules" in doc:
            yield from _rules_in(doc["rules"] or [])
        else:
            yield doc


def _name(rule: Mapping[str, Any]) -> str:
    return str(rule.get("name") or rule.get("alert") or "")


_NUMBER_KEYS = ("threshold", "threshold_pct", "limit", "above", "below", "value")
_EXPR_NUMBER = re.compile(r"(?:>=|<=|>|<|==)\s*(-?\d+(?:\.\d+)?)")


def _number(rule: Mapping[str, Any]) -> float | None:
    """The rule's limit: a threshold-like key (also one level down), else the number an expression compares to."""
    for scope in (rule, *(v for v in rule.values() if isinstance(v, Mapping))):
        for key in _NUMBER_KEYS:
            value = scope.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    for key in ("expr", "condition", "when"):
        text = rule.get(key)
        if isinstance(text, str) and (m := _EXPR_NUMBER.search(text)):
            return float(m.group(1))
    return None


def _as_pct(name: str, value: float) -> float:
    # Fractions (0.8) and percentages (80) both appear in rule packs; panels want percent.
    return value * 100.0 if name.endswith("_pct") and 0 < value <= 1.0 else value


def from_rule_pack(rules_dir: str | Path = DEFAULT_RULES_DIR) -> Thresholds:
    """Read every ``*.yaml``/``*.yml`` under ``rules_dir`` and pick each panel threshold from its rule.

    A threshold no rule provides keeps its default and is listed by ``Thresholds.missing()``; a file
    that is not valid YAML raises RuleError naming it.
    """
    root = Path(rules_dir)
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    files = sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]) if root.is_dir() else []
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise RuleError(f"cannot read rule file: {exc}", file=str(path)) from exc
        for doc in docs:
            for rule in _rules_in(doc):
                if not isinstance(rule, Mapping):
                    continue
                name = _name(rule)
                low = name.lower()
                for key, alternatives in _MATCHERS.items():
                    if key in values or not any(all(w in low for w in words) for words in alternatives):
                        continue
                    number = _number(rule)
                    if number is not None:
                        values[key] = _as_pct(key, number)
                        sources[key] = f"{path.name}: {name}"
                    break
    return Thresholds(**values, sources=sources)
