"""The real-device acceptance harness itself: how it matches our values with LibreNMS's readings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dcim.agents.snmp.profile import Source
from tests.agents import librenms_corpus as corpus

PHASE_I = "1.3.6.1.4.1.318.1.1.26.6.3.1.5"
LEGACY = "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2"


def _exp(*sensors: tuple[str, str, float]) -> dict:
    return {"sensors": [{"class": c, "descr": c, "oid": "." + o, "value": v} for c, o, v in sensors]}


def test_missing_corpus_says_where_it_looked(tmp_path: Path) -> None:
    reason = corpus.corpus_missing_reason(tmp_path / "nowhere")
    assert reason is not None and "nowhere" in reason and "../shared" in reason


def test_without_the_corpus_a_test_skips_and_under_ci_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="corpus not found"):
        corpus.require_corpus(tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        corpus.require_corpus(tmp_path)


def test_match_by_oid_converts_units_and_flags_wrong_values() -> None:
    srcs = [Source(f"{PHASE_I}.1", "pdu_phase", {"phase": "L1"}, "current_a", 4.9),
            Source("1.3.6.1.4.1.318.1.1.26.4.3.1.9.1", "pdu", {}, "energy_j", 3512.8 * 3.6e6),
            Source("1.3.6.1.4.1.318.1.1.26.4.3.1.5.1", "pdu", {}, "power_w", 1150.0)]
    got = corpus.compare("x", _exp(("current", f"{PHASE_I}.1", 4.9),
                                   ("power_consumed", "1.3.6.1.4.1.318.1.1.26.4.3.1.9.1", 3512.8),
                                   ("power", "1.3.6.1.4.1.318.1.1.26.4.3.1.5.1", 1140.0),
                                   ("state", "1.3.6.1.4.1.318.1.1.26.4.3.1.4.1", 2),
                                   ("voltage", "1.3.6.1.4.1.318.1.1.26.6.3.1.6.1", 230.0)), srcs)
    assert [r.cls for r in got] == ["current", "power_consumed", "power", "voltage"]  # states are not counted
    cur, energy, power, volt = got
    assert (cur.via, cur.wrong) == ("oid", False)
    assert math.isclose(energy.got, 3512.8) and not energy.wrong  # J -> kWh
    assert power.wrong  # 1150 W against LibreNMS's 1140 W
    assert volt.got is None  # not reported: missing, not wrong


def test_alias_needs_same_class_and_value_and_never_reuses_a_value() -> None:
    srcs = [Source(f"{PHASE_I}.1", "pdu_phase", {"phase": "L1"}, "current_a", 4.9)]
    got = corpus.compare("x", _exp(("current", f"{LEGACY}.1", 4.9), ("current", f"{LEGACY}.2", 4.9),
                                   ("current", f"{LEGACY}.3", 1.0)), srcs)
    assert [(r.via, r.got) for r in got] == [("alias", 4.9), ("", None), ("", None)]


def test_a_reading_of_another_class_at_the_same_oid_is_wrong() -> None:
    srcs = [Source("1.2.3.1", "pdu", {}, "power_w", 5.0)]
    (r,) = corpus.compare("x", _exp(("current", "1.2.3.1", 5.0)), srcs)
    assert r.wrong and "class power" in r.ours


def test_results_serialize_to_json() -> None:
    import json

    res = corpus.DeviceResult("x", "fam", "1.3.6.1.4.1.318", "apc_rpdu2", None,
                              corpus.compare("x", _exp(("current", f"{PHASE_I}.1", 4.9)), []), 3, {"pdu.power_w"})
    out = json.loads(json.dumps(corpus.as_json([res])))
    assert out["totals"]["readings"] == 1 and out["devices"][0]["unsupported"] == ["pdu.power_w"]
