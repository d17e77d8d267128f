"""Rule files: loading, and errors that name the file, the rule and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules, parse_duration
from dcim.errors import RuleError


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_default_pack_is_the_rules_package_folder():
    from dcim.alerts import rules

    assert DEFAULT_RULES_DIR.name == "rules" and DEFAULT_RULES_DIR == Path(rules.__file__).parent


def test_loads_a_file_and_a_directory(tmp_path):
    write(tmp_path, """
rules:
  - name: GpuHot
    kind: threshold
    measurement: gpu
    field: temp_c
    threshold: 85
    clear: 80
    for: 30s
    keep_firing_for: 2m
    annotations: {summary: "GPU {{ $labels.gpu }} at {{ $value:.1f }} C"}
""", "a.yaml")
    write(tmp_path, "rules:\n  - {name: Leak, kind: state, measurement: coolant_loop, field: leak, equals: true}\n",
          "b.yml")
    write(tmp_path, "not: a rule file", "notes.txt")
    rules = load_rules([tmp_path])
    assert [r.name for r in rules] == ["GpuHot", "Leak"]
    assert rules[0].for_ == 30 and rules[0].keep_firing_for == 120 and rules[0].clear == 80


@pytest.mark.parametrize(("body", "rule", "field", "words"), [
    ("{name: X, kind: threshold, measurement: gpu, field: temp_cc, threshold: 1}", "X", "field", "temp_cc"),
    ("{name: X, kind: threshold, measurement: gpus, field: temp_c, threshold: 1}", "X", "measurement", "gpus"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c, threshold: 1, match: {rak: A}}", "X", "match",
     "rak"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c, threshold: 85, clear: 90}", "X", "clear",
     "above"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c}", "X", "threshold", "threshold"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c, threshold: 1, for: 5 minutes}", "X", "for",
     "duration"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c, threshold: 1, treshold: 2}", "X", "treshold",
     "unknown key"),
    ("{name: X, kind: thresold}", "X", "kind", "thresold"),
    ("{name: X, kind: state, measurement: gpu, field: lost, equals: yes please}", "X", "equals", "bool"),
    ("{name: X, kind: ratio, measurement: pdu_phase, field: current_a, rating: pdu.fuse_a, threshold: 80}", "X",
     "rating", "fuse_a"),
    ("{name: X, kind: aggregate, measurement: gpu, field: temp_c, func: max, by: [cabinet], threshold: 1}", "X",
     "by", "cabinet"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c, threshold: 1, annotations: {summary: '{{ $valu }}'}}",
     "X", "annotations", "$valu"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c, threshold_field: slowdown_c}", "X",
     "threshold_field", "slowdown_c"),
    ("{name: X, kind: threshold, measurement: gpu, field: temp_c, threshold_field: temp_slowdown_c, "
     "threshold_default: gpu.slowdown}", "X", "threshold_default", "gpu.slowdown"),
    ("{name: X, kind: aggregate, measurement: pdu, field: load_state, func: sum, by: [rack], threshold: 1}", "X",
     "field", "not a number"),
    ("{kind: state, measurement: gpu, field: lost, equals: true}", "#1", "name", "missing"),
])
def test_bad_rules_name_file_rule_and_field(tmp_path, body, rule, field, words):
    p = write(tmp_path, f"rules:\n  - {body}\n")
    with pytest.raises(RuleError) as info:
        load_rules([p])
    err = info.value
    assert err.file == str(p)
    assert err.rule == rule
    assert err.field == field
    text = str(err)
    assert text.startswith(f"{p}: rule '{rule}': {field}: ")
    assert words in text


def test_duplicate_rule_names_across_files(tmp_path):
    body = "rules:\n  - {name: Leak, kind: state, measurement: coolant_loop, field: leak, equals: true}\n"
    write(tmp_path, body, "a.yaml")
    b = write(tmp_path, body, "b.yaml")
    with pytest.raises(RuleError, match="already used") as info:
        load_rules([tmp_path])
    assert info.value.file == str(b) and info.value.rule == "Leak" and info.value.field == "name"


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = write(tmp_path, "rules:\n  - name: X\n    kind: [threshold\n")
    with pytest.raises(RuleError, match=r"line \d+") as info:
        load_rules([p])
    assert info.value.file == str(p)


def test_top_level_must_be_rules(tmp_path):
    p = write(tmp_path, "groups: []\n")
    with pytest.raises(RuleError, match="groups"):
        load_rules([p])


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), (12, 12)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "-1", "m5", "", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
