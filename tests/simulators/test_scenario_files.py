"""Scenario files: durations, validation errors that name file and path, targets checked against the site."""

from __future__ import annotations

import pytest

from dcim.errors import ConfigError
from dcim.simulators.hall import Hall
from dcim.simulators.scenarios import load_scenario, parse_duration, parse_scenario
from tests.simulators.helpers import site


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("2m", 120.0), ("1m30s", 90.0), ("1h", 3600.0), ("500ms", 0.5), (1.5, 1.5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "2x", "-5", True, "m"])
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_unknown_key_names_file_path_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\ndescription: x\nfaults:\n  - kind: pump_degradation\n    loop: loop-a\n    flow_fractoin: 0.2\n"
    )
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "faults[0].flow_fractoin" in msg
    assert "line 6" in msg
    assert "unknown key" in msg


def test_bad_duration_and_unknown_kind_are_named(tmp_path):
    path = tmp_path / "bad2.yaml"
    path.write_text("name: bad2\ndescription: x\nfaults:\n  - {kind: leak, loop: loop-a, at: soon}\n  - {kind: meteor}\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    msg = str(info.value)
    assert "faults[0].at (line 4)" in msg and "not a duration" in msg
    assert "faults[1]" in msg and "meteor" in msg


def test_recovery_before_ramp_is_refused():
    with pytest.raises(ConfigError, match="until"):
        parse_scenario("name: x\ndescription: y\nfaults:\n  - {kind: leak, loop: loop-a, at: 2m, ramp: 1m, until: 2m30s}\n")


def test_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'.*pump-degradation"):
        load_scenario("nope")


@pytest.mark.parametrize(
    ("fault", "what"),
    [
        ("{kind: leak, loop: loop-z}", "unknown loop 'loop-z'"),
        ("{kind: feed_loss, rack: Z09, pdu: pdu-a}", "unknown rack 'Z09'"),
        ("{kind: feed_loss, rack: A01, pdu: pdu-c}", "has no PDU 'pdu-c'"),
        ("{kind: gpu_lost, node: A01-n09, gpu: 0}", "unknown node 'A01-n09'"),
        ("{kind: gpu_lost, node: A01-n01, gpu: 8}", "has no GPU 8"),
    ],
)
def test_targets_are_checked_against_the_site(fault, what):
    sc = parse_scenario(f"name: x\ndescription: y\nfaults:\n  - {fault}\n", file="x.yaml")
    with pytest.raises(ConfigError, match=what):
        Hall(site(), scenario=sc)


def test_fault_strength_ramps_in_and_out():
    sc = parse_scenario("name: x\ndescription: y\nfaults:\n  - {kind: leak, loop: loop-a, at: 60, ramp: 20, until: 100, recover: 40}\n")
    f = sc.faults[0]
    assert [f.strength(t) for t in (0, 59, 60, 70, 80, 99, 100, 120, 140, 200)] == [0, 0, 0, 0.5, 1, 1, 1, 0.5, 0, 0]
    assert f.end_s() == 140


def test_the_sample_scenario_in_the_docs_parses_and_runs():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()
    sample = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    sc = parse_scenario(sample, file="docs/simulator.md")
    assert len(sc.faults) == 14
    kinds = {f.kind for f in sc.faults}
    assert len(kinds) == 13  # every fault kind is shown
    hall = Hall(site(), scenario=sc)
    for _ in range(8):
        hall.advance(60.0)
    assert hall.lines()
