"""Templates print as Prometheus does: $value with Go's shortest 'g', the humanize functions with the
outputs of Prometheus's own template tests (prometheus/prometheus template/template_test.go), and
rule labels templated like annotations, refused at load when they cannot render."""

from __future__ import annotations

import math

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import parse_rule
from dcim.alerts.templates import check, go_float, humanize, humanize1024, humanize_duration, \
    humanize_percentage, printf, render
from dcim.config import named_site
from dcim.errors import RuleError, TemplateError
from dcim.record import Record

NS = 1_000_000_000


@pytest.mark.parametrize(("v", "text"), [
    (88.125, "88.125"), (1234567.0, "1.234567e+06"), (123456.0, "123456"), (1e6, "1e+06"), (85.0, "85"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (0.1, "0.1"), (1e21, "1e+21"), (100000.0, "100000"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (0.0, "0"), (1 / 3, "0.3333333333333333"),
])
def test_value_prints_like_go(v, text):
    assert go_float(v) == text


def test_humanize_matches_prometheus_template_tests():
    assert [humanize(v) for v in (0.0, 1.0, 1234567.0, 0.12)] == ["0", "1", "1.235M", "120m"]
    assert [humanize1024(v) for v in (0.0, 1.0, 1048576.0, 0.12)] == ["0", "1", "1Mi", "0.12"]
    secs = [0, 1, 60, 3600, 86400, 86400 + 3600, -(86400 * 2 + 3600 * 3 + 60 * 4 + 5), 899.99]
    assert [humanize_duration(v) for v in secs] == ["0s", "1s", "1m 0s", "1h 0m 0s", "1d 0h 0m 0s", "1d 1h 0m 0s",
                                                     "-2d 3h 4m 5s", "14m 59s"]
    sub = [0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345]
    assert [humanize_duration(v) for v in sub] == ["100ms", "100us", "123.5ms", "1m 0s", "1m 0s", "1.234s", "12.35s"]
    assert [humanize_percentage(v) for v in (-0.22222, 0.0, 0.1234567, 1.23456)] == ["-22.22%", "0%", "12.35%",
                                                                                     "123.5%"]
    for f in (humanize, humanize1024, humanize_duration):
        assert [f(v) for v in (math.inf, -math.inf, math.nan)] == ["+Inf", "-Inf", "NaN"]
    # newer Prometheus takes strings and integers too (its "- string" and uint64 cases)
    assert [humanize_duration(v) for v in ("0", "1", "60", "3600", "86400")] == ["0s", "1s", "1m 0s", "1h 0m 0s",
                                                                               "1d 0h 0m 0s"]
    assert [humanize1024(v) for v in (0, 1, 1234567, 2**64 - 1)] == ["0", "1", "1.177Mi", "16Ei"]
    with pytest.raises(TemplateError):
        humanize_duration("one")


def r(text, value=88.125, labels=None):
    return render(text, rule="R", severity="warning", state="firing", value=value, threshold=85.0,
                  labels=labels or {"rack": "A01", "node": "A01-n01"})


def test_pipelines_calls_printf_and_go_data_fields():
    assert r("{{ $value }}") == "88.125"
    assert r("{{ $value }}", 1234567.0) == "1.234567e+06"
    assert r("{{ $value | humanize }}W", 1234567.0) == "1.235MW"
    assert r("{{ humanize $value }}", 1234567.0) == "1.235M"
    assert r("{{ $value | humanizePercentage }}", 0.1234567) == "12.35%"
    assert r('{{ printf "%.1f" $value }} °C') == "88.1 °C"
    assert r('{{ $value | printf "%.2f" }}') == "88.12"  # binary 88.125 rounds half-even, as Go
    assert r("{{ .Value }} on {{ .Labels.node }}") == "88.125 on A01-n01"
    assert r("{{ $labels.rack | toLower }} {{ $threshold }}") == "a01 85"
    assert r("{{ $value:.1f }}") == "88.1"  # the Python format spec form stays
    assert r("{{ $value }}", None) == "n/a"


@pytest.mark.parametrize(("text", "why"), [
    ("{{ $valu }}", r"unknown template variable \$valu "),
    ("{{ humanise $value }}", "unknown function 'humanise'"),
    ("{{ $value ", "unclosed"),
    ("{{ $value | }}", "empty command"),
    ("{{ toUpper }}", "wrong number of arguments"),
    ('{{ humanize "x" }}', "needs a number"),
])
def test_bad_templates_are_refused(text, why):
    with pytest.raises(TemplateError, match=why):
        check(text)


def rule(**kw):
    base = {"name": "GpuHot", "kind": "threshold", "measurement": "gpu", "field": "temp_c", "threshold": 85,
            "flap": None}
    return parse_rule({**base, **kw})


def test_rule_labels_are_templated_and_set_the_identity():
    ru = rule(labels={"team": "gpu-{{ $labels.rack }}", "tier": "static"})
    e = Engine([ru], site=named_site("h100-hall"))
    ts = e.process([Record("gpu", {"rack": "A01", "node": "A01-n01", "gpu": "0"}, {"temp_c": 90.0}, 0)])
    ts += e.advance(1 * NS)
    assert ts and ts[0].labels["team"] == "gpu-A01" and ts[0].labels["tier"] == "static"


@pytest.mark.parametrize(("labels", "why"), [
    ({"team": "gpu-{{ $labels.rack "}, "unclosed"),
    ({"team": "{{ $value }}"}, r"\$value changes while the alert is active"),
    ({"team": "{{ nosuch $labels.rack }}"}, "unknown function"),
])
def test_a_label_template_that_cannot_render_is_refused_at_load_naming_the_rule(labels, why):
    with pytest.raises(RuleError, match=why) as exc:
        parse_rule({"name": "GpuHot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                    "threshold": 85, "labels": labels}, file="gpu.yaml")
    assert "GpuHot" in str(exc.value) and "labels" in str(exc.value)


def test_an_annotation_that_cannot_render_is_refused_at_load():
    with pytest.raises(RuleError, match="GpuHot.*humanize"):
        parse_rule({"name": "GpuHot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                    "threshold": 85, "annotations": {"summary": '{{ humanize "hot" }}'}}, file="gpu.yaml")


def test_printf_verbs():
    assert printf("%d GPUs at %.1f%%", 8, 88.125) == "8 GPUs at 88.1%"
    assert printf("%v/%s", 1234567.0, "x") == "1.234567e+06/x"
    assert printf("%5.2f|", 3.14159) == " 3.14|"
