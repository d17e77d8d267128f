"""docs/alerts.md: every YAML example in it is parsed (rule files, a rule test, the notifier config)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from dcim.alerts.notifiers import alertmanager_config
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rule_file
from dcim.alerts.ruletest import run_files
from dcim.config import AlertsConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def blocks() -> list[dict]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def test_every_rule_example_loads(tmp_path):
    rules = [b for b in blocks() if "rules" in b and "route" not in b]
    assert len(rules) >= 10
    kinds = set()
    for i, b in enumerate(rules):
        p = tmp_path / f"ex{i}.yaml"
        p.write_text(yaml.safe_dump(b))
        kinds |= {r.kind for r in load_rule_file(p)}
    assert kinds == {"threshold", "rate", "aggregate", "ratio", "imbalance", "absent", "increase", "state",
                     "redundancy", "energy_balance"}


def test_the_rule_test_example_passes(tmp_path):
    (b,) = [b for b in blocks() if "rule_files" in b]
    b["rule_files"] = [str(DEFAULT_RULES_DIR / Path(f).name) for f in b["rule_files"]]
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(b, allow_unicode=True))
    result = run_files([p])
    assert result.cases == 2 and result.ok, [str(f) for f in result.failures]


def test_the_notifier_and_alertmanager_examples_parse():
    (site_part,) = [b for b in blocks() if "alerts" in b]
    cfg = AlertsConfig.model_validate(site_part["alerts"])
    assert [n.kind for n in cfg.notifiers] == ["alertmanager", "webhook", "log"]
    (am,) = [b for b in blocks() if "route" in b]
    ours = alertmanager_config("pager")
    assert am["route"]["group_by"] == ours["route"]["group_by"]
    assert all(rule in ours["inhibit_rules"] for rule in am["inhibit_rules"])
