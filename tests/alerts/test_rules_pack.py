"""The default rule pack, its unit-test files, the promtool-style test runner and `dcim alerts check/test`."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from dcim.alerts.ruletest import expand_values, parse_series, run_files
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, KINDS, load_rules
from dcim.app.cli import cli, main

PACK_TESTS = DEFAULT_RULES_DIR / "tests"


@pytest.fixture(scope="module")
def pack_result():
    return run_files([PACK_TESTS])


def test_default_pack_tests_pass(pack_result):
    assert pack_result.failures == [], "\n".join(map(str, pack_result.failures))
    assert pack_result.cases >= 40


def test_every_rule_of_the_pack_has_a_test_expecting_it(pack_result):
    pack = {r.name for r in load_rules([DEFAULT_RULES_DIR])}
    assert pack_result.rules == pack  # the test files load the whole pack
    assert pack - pack_result.covered == set()


def test_every_rule_of_the_pack_names_its_source():
    for path in sorted(DEFAULT_RULES_DIR.glob("*.yaml")):
        blocks = re.split(r"\n  - name: ", path.read_text())[1:]
        assert blocks, path
        for block in blocks:
            name = block.split("\n", 1)[0]
            assert re.search(r"^\s+#", block, re.M), f"{path.name}: rule {name} has no comment naming its source"


def test_the_pack_covers_the_issue_list():
    rules = load_rules([DEFAULT_RULES_DIR])
    names = {r.name for r in rules}
    assert {r.kind for r in rules} >= set(KINDS) - {"rate", "aggregate"}  # those two are for site rules
    for wanted in ("GpuTempNearSlowdown", "GpuMemTempHigh", "GpuThermalThrottling", "GpuLost", "GpuXidErrors",
                   "GpuEccDoubleBit", "PduPhaseCurrentHigh", "PduPhaseImbalance", "FeedRedundancyLost",
                   "LoopSupplyAboveClass", "LoopDeltaTHigh", "LoopDeltaTLow", "LoopFlowLow", "LoopSupplyPressureLow",
                   "LoopLeak", "LoopEnergyImbalance", "GpuTelemetryStale", "GpuAllocatedIdle"):
        assert wanted in names


def test_a_wrong_expectation_fails_with_a_useful_message(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - {name: Hot, kind: threshold, measurement: gpu, field: temp_c, threshold: 80, flap: null}\n")
    (tmp_path / "t.yaml").write_text("""
rule_files: [r.yaml]
tests:
  - name: wrong
    interval: 1s
    input_series:
      - {series: 'gpu.temp_c{node="A01-n01",gpu="0"}', values: '70 90x3'}
    alert_rule_test:
      - {eval_time: 0s, alertname: Hot, exp_alerts: [{exp_labels: {gpu: "0"}}]}
      - {eval_time: 2s, alertname: Hot, exp_alerts: [{exp_labels: {gpu: "1"}}]}
      - {eval_time: 3s, alertname: Hot, exp_alerts: [{exp_labels: {gpu: "0"}}]}
""")
    result = run_files([tmp_path / "t.yaml"])
    assert [(f.eval_time_s, f.alertname) for f in result.failures] == [(0.0, "Hot"), (2.0, "Hot")]
    assert "missing: firing labels {'gpu': '0'}" in str(result.failures[0])
    assert "unexpected: firing" in str(result.failures[1]) and "'gpu': '0'" in str(result.failures[1])
    res = CliRunner().invoke(cli, ["alerts", "test", str(tmp_path / "t.yaml")])
    assert res.exit_code == 1 and "FAILED" in res.output


@pytest.mark.parametrize(("text", "ftype", "values"), [
    ("1+2x3", "float", [1.0, 3.0, 5.0, 7.0]),
    ("-2+4x3", "float", [-2.0, 2.0, 6.0, 10.0]),
    ("10-1x2", "float", [10.0, 9.0, 8.0]),
    ("5x2 _ _x2 stale 7", "float", [5.0, 5.0, 5.0, None, None, None, None, 7.0]),
    ("3x1", "int", [3, 3]),
    ("false truex2", "bool", [False, True, True, True]),
    ("normal near_overloadx1", "str", ["normal", "near_overload", "near_overload"]),
])
def test_expanding_notation(text, ftype, values):
    assert expand_values(text, ftype) == values


def test_series_notation_checks_the_schema():
    assert parse_series('pdu_phase.current_a{rack="A01",phase="L1"}') == ("pdu_phase", "current_a",
                                                                          {"rack": "A01", "phase": "L1"})
    with pytest.raises(Exception, match="temp_cc"):
        parse_series('gpu.temp_cc{gpu="0"}')


def test_cli_check_ok_and_bad(tmp_path, capsys):
    res = CliRunner().invoke(cli, ["alerts", "check", str(DEFAULT_RULES_DIR)])
    assert res.exit_code == 0, res.output
    assert "cooling.yaml: ok" in res.output and re.search(r"\d+ rules ok", res.output)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: Hot, kind: threshold, measurement: gpu, field: tmp_c, threshold: 80}\n")
    with pytest.raises(SystemExit) as info:
        main(["alerts", "check", str(bad)])  # the real entry point: DcimError -> "error: ..." and exit 2
    assert info.value.code == 2
    assert f"error: {bad}: rule 'Hot': field: measurement 'gpu' has no field 'tmp_c'" in capsys.readouterr().err


def test_cli_test_runs_the_pack():
    res = CliRunner().invoke(cli, ["alerts", "test", str(PACK_TESTS)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith("0 failures") and "SUCCESS" in res.output
    assert "no test expecting" not in res.output
