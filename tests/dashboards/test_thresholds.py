"""Panel thresholds come from the alert rule pack (loaded with the engine's own loader)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dcim.dashboards.build import context, dashboards
from dcim.dashboards.thresholds import Thresholds, from_rule_pack
from dcim.config import named_site
from dcim.errors import RuleError

PACK = """\
rules:
  - name: PduPhaseCurrentHigh
    kind: ratio
    measurement: pdu_phase
    field: current_a
    rating: pdu.breaker_a
    threshold: {phase_pct}
  - name: PduPhaseCurrentCritical
    kind: ratio
    severity: critical
    measurement: pdu_phase
    field: current_a
    rating: pdu.breaker_a
    threshold: 95
  - name: PduPhaseImbalance
    kind: imbalance
    measurement: pdu_phase
    threshold: 25
  - name: CoolantSupplyHot
    kind: threshold
    measurement: coolant_loop
    field: supply_temp_c
    threshold: 33.5
  - name: CoolantFlowLow
    kind: ratio
    measurement: coolant_loop
    field: flow_lpm
    rating: loop.nominal_flow_lpm
    op: "<"
    threshold: 70
  - name: LoopDeltaTHigh
    kind: threshold
    measurement: coolant_loop
    field: return_temp_c
    minus: supply_temp_c
    threshold: 11
  - name: LoopDeltaTLow
    kind: threshold
    measurement: coolant_loop
    field: return_temp_c
    minus: supply_temp_c
    op: "<"
    threshold: 1.5
  - name: LoopDiffPressureLow
    kind: ratio
    measurement: coolant_loop
    field: diff_pressure_kpa
    rating: loop.diff_pressure_kpa
    op: "<"
    threshold: 40
  - name: GpuNearSlowdown
    kind: threshold
    measurement: gpu
    field: temp_c
    threshold_field: temp_slowdown_c
    threshold_default: gpu_model.slowdown_temp_c
    threshold_offset: -3
"""


def _pack(tmp_path: Path, phase_pct: float = 80) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "power.yaml").write_text(PACK.format(phase_pct=phase_pct))
    return d


def test_every_threshold_comes_from_its_rule(tmp_path: Path) -> None:
    site = named_site("h100-hall")
    th = from_rule_pack(_pack(tmp_path, 75), site)
    assert th.missing() == []
    assert th.phase_current_pct == 75  # the warning line, not the critical one
    assert th.phase_imbalance_pct == 25
    assert th.coolant_supply_max_c == 33.5
    assert th.coolant_flow_low_lpm == pytest.approx(0.7 * max(loop.nominal_flow_lpm for loop in site.loops))
    slowdown = min(m.slowdown_temp_c for m in site.gpu_models.values())
    assert th.gpu_slowdown_fallback_c == slowdown
    assert th.gpu_temp_alert_c == slowdown - 3
    assert (th.coolant_delta_t_min_k, th.coolant_delta_t_max_k) == (1.5, 11)
    assert th.coolant_dp_low_kpa == pytest.approx(0.4 * max(loop.diff_pressure_kpa for loop in site.loops))
    assert th.sources["phase_current_pct"] == "PduPhaseCurrentHigh"


def _panel(d: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in d["panels"] if p.get("title") == title)


def test_a_threshold_change_reaches_the_panels(tmp_path: Path) -> None:
    site = named_site("h100-hall")
    breaker_a = min(p.breaker_a for r in site.racks() for p in r.pdus)
    steps = {}
    for pct in (80, 70):
        rack = dashboards(context(site, _pack(tmp_path, pct)))["rack"]
        steps[pct] = [s["value"] for s in _panel(rack, "Phase current")["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps[80][1] == pytest.approx(0.8 * breaker_a)
    assert steps[70][1] == pytest.approx(0.7 * breaker_a)


def test_the_slowdown_fallback_reaches_every_gpu_temperature_panel(tmp_path: Path) -> None:
    built = dashboards(context(named_site("h100-hall"), _pack(tmp_path)))
    want = from_rule_pack(_pack(tmp_path)).gpu_slowdown_fallback_c
    for key, title in (("rack", "GPU temperature"), ("node", "Temperatures against slowdown")):
        steps = _panel(built[key], title)["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1]["value"] == want, key
    assert json.dumps(built, ensure_ascii=False).count(f"{want:g} °C") >= 2


def test_no_rules_means_defaults_and_says_so(tmp_path: Path) -> None:
    site = named_site("h100-hall")
    th = from_rule_pack(tmp_path / "nowhere", site)
    base = Thresholds()
    assert (th.phase_current_pct, th.phase_imbalance_pct, th.gpu_slowdown_fallback_c) == (
        base.phase_current_pct, base.phase_imbalance_pct, base.gpu_slowdown_fallback_c)
    # without a rule the low-flow line still fits the site: half the smallest nominal flow
    assert th.coolant_flow_low_lpm == 0.5 * min(loop.nominal_flow_lpm for loop in site.loops)
    assert "phase_current_pct" in th.missing() and "gpu_slowdown_fallback_c" in th.missing()


def test_a_broken_rule_file_is_an_error_naming_it(tmp_path: Path) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "bad.yaml").write_text("rules: [{name: X, kind: ratio, measurement: pdu_phase")
    with pytest.raises(RuleError, match="bad.yaml"):
        from_rule_pack(d)


def test_the_default_pack_gives_every_line() -> None:
    # If a rule of the default pack changes what it watches, a panel would fall back to a built-in
    # number; this says which one, so the pack and the dashboards are brought back together.
    assert from_rule_pack().missing() == []
