"""The shipped mapping files turn sample third-party payloads into exactly the expected records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcim.collector.mapping import builtin_mappings, load_mapping
from dcim.errors import ConfigError, MappingError
from dcim.record import Record
from dcim.schema import validate

DATA = Path(__file__).parent / "data"
NOW = 1_800_000_000 * 10**9


def test_every_shipped_mapping_loads():
    names = {p.stem for p in builtin_mappings()}
    assert {"cdu_gateway", "bms_cdu"} <= names
    for p in builtin_mappings():
        load_mapping(p)


def test_cdu_gateway_document_becomes_one_coolant_loop_record():
    m = load_mapping("cdu_gateway")
    topic = "cdugw/dc1/hall1/A/cdu-a/loop-a"
    caps = m.match(topic)
    assert caps == {"site": "dc1", "room": "hall1", "row": "A", "cdu": "cdu-a", "loop": "loop-a"}
    (rec,) = m.apply(caps, (DATA / "cdu_gateway.json").read_bytes(), NOW)
    assert rec.measurement == "coolant_loop"
    assert rec.tags == {"site": "dc1", "room": "hall1", "row": "A", "cdu": "cdu-a", "loop": "loop-a"}
    assert rec.time_ns == 1_795_821_600 * 10**9  # 2026-11-27T23:20:00Z
    expected = {
        "supply_temp_c": (86.9 - 32) * 5 / 9,
        "return_temp_c": 40.0,
        "supply_pressure_kpa": 43.5 * 6.894757293168361,
        "return_pressure_kpa": 21.75 * 6.894757293168361,
        "diff_pressure_kpa": 21.75 * 6.894757293168361,
        "flow_lpm": 58.0 * 3.785411784,
        "setpoint_c": 30.0,
        "pump_speed_pct": 71.5,
        "heat_w": 210500.0,
        "facility_supply_temp_c": 25.0,
        "leak": False,
    }
    assert rec.fields.keys() == expected.keys()
    for k, v in expected.items():
        assert rec.fields[k] == pytest.approx(v, rel=1e-12), k
    assert validate(rec) == []


def test_cdu_gateway_refuses_documents_it_cannot_trust():
    m = load_mapping("cdu_gateway")
    caps = m.match("cdugw/dc1/hall1/A/cdu-a/loop-a")
    doc = json.loads((DATA / "cdu_gateway.json").read_text())
    offline = dict(doc, status="offline")
    with pytest.raises(MappingError, match="status") as exc:
        m.apply(caps, json.dumps(offline).encode(), NOW)
    assert exc.value.reason == "mapping_error"
    broken = dict(doc)
    del broken["secondary"]
    with pytest.raises(MappingError, match="supply_temp_c"):
        m.apply(caps, json.dumps(broken).encode(), NOW)
    with pytest.raises(MappingError) as exc:
        m.apply(caps, b"{not json", NOW)
    assert exc.value.reason == "json_error"
    # the optional fields may be missing
    lean = dict(doc)
    del lean["heat_kw"]
    (rec,) = m.apply(caps, json.dumps(lean).encode(), NOW)
    assert "heat_w" not in rec.fields
    assert m.match("cdugw/dc1/hall1/A/cdu-a") is None


def test_bms_per_point_topics():
    m = load_mapping("bms_cdu")
    assert m.filter == "BMS/v1/PUB/Value/CDU/+/+/+/+/+/+/+"
    payload = (DATA / "bms_cdu_supply_temp.json").read_bytes()
    topic = "BMS/v1/PUB/Value/CDU/LiquidTemperature/dc1/hall1/A/cdu-a/loop-a/SecondarySupply"
    (rec,) = m.apply(m.match(topic), payload, NOW)
    assert rec == Record("coolant_loop", {"site": "dc1", "room": "hall1", "row": "A", "cdu": "cdu-a", "loop": "loop-a"},
                         {"supply_temp_c": 30.25}, 1743620423000 * 10**6)
    flow = "BMS/v1/PUB/Value/CDU/LiquidFlow/dc1/hall1/A/cdu-a/loop-a/Secondary"
    (rec,) = m.apply(m.match(flow), b'{"value": 212, "timestamp": 1743620424000, "quality": 1}', NOW)
    assert rec.fields == {"flow_lpm": 212.0} and isinstance(rec.fields["flow_lpm"], float)
    dp = "BMS/v1/PUB/Value/CDU/LiquidDifferentialPressure/dc1/hall1/A/cdu-a/loop-a/Secondary"
    (rec,) = m.apply(m.match(dp), b'{"value": 150.5, "timestamp": 1743620424000, "quality": 1}', NOW)
    assert rec.fields == {"diff_pressure_kpa": 150.5}


def test_bms_quality_null_and_unknown_points():
    m = load_mapping("bms_cdu")
    topic = "BMS/v1/PUB/Value/CDU/LiquidTemperature/dc1/hall1/A/cdu-a/loop-a/SecondaryReturn"
    with pytest.raises(MappingError, match="quality"):
        m.apply(m.match(topic), b'{"value": 40.0, "timestamp": 1743620423000, "quality": 0}', NOW)
    assert m.apply(m.match(topic), b'{"value": null, "timestamp": 1743620423000, "quality": 1}', NOW) == []
    status = "BMS/v1/PUB/Value/CDU/Status/dc1/hall1/A/cdu-a/loop-a/Pump1"
    assert m.apply(m.match(status), b'{"value": 1, "timestamp": 1743620423000, "quality": 1}', NOW) == []
    assert m.spec.unmatched == "ignore"


def _write(tmp_path, text):
    p = tmp_path / "m.yaml"
    p.write_text(text)
    return p


def test_mapping_file_errors_name_file_and_problem(tmp_path):
    with pytest.raises(ConfigError, match="no field 'bogus_c'"):
        load_mapping(_write(tmp_path, "name: x\ntopic: a/{b}\nmeasurement: coolant_loop\n"
                                      "fields: [{field: bogus_c, path: v}]\n"))
    with pytest.raises(ConfigError, match="no conversion from 'furlong'"):
        load_mapping(_write(tmp_path, "name: x\ntopic: a/{b}\nmeasurement: coolant_loop\n"
                                      "fields: [{field: flow_lpm, path: v, unit: furlong}]\n"))
    with pytest.raises(ConfigError, match="does not capture"):
        load_mapping(_write(tmp_path, "name: x\ntopic: a/{b}\nmeasurement: coolant_loop\n"
                                      "tags: {site: '{nope}'}\nfields: [{field: flow_lpm, path: v}]\n"))
    with pytest.raises(ConfigError, match="m.yaml"):
        load_mapping(_write(tmp_path, "name: x\ntopic: a/{b}\nmeasurement: nope\nfields: [{field: a, path: v}]\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_mapping(tmp_path / "missing.yaml")


def test_rest_capture_and_payload_tags(tmp_path):
    m = load_mapping(_write(tmp_path, """
name: t
topic: "plant/{site}/{rest#}"
measurement: coolant_loop
tags: {site: "{site}", loop: {path: meta.loop}}
fields:
  - {field: supply_temp_c, path: "temps[1]", unit: K}
  - {field: pump_speed_pct, path: pump, unit: ratio, scale: 0.5}
"""))
    assert m.filter == "plant/+/#"
    caps = m.match("plant/dc9/a/b/c")
    assert caps == {"site": "dc9", "rest": "a/b/c"}
    (rec,) = m.apply(caps, b'{"meta": {"loop": "l7"}, "temps": [0, 303.15], "pump": 1.5}', NOW)
    assert rec.tags == {"site": "dc9", "loop": "l7"}
    assert rec.fields["supply_temp_c"] == pytest.approx(30.0)
    assert rec.fields["pump_speed_pct"] == pytest.approx(75.0)
    assert rec.time_ns == NOW
    with pytest.raises(MappingError, match="not a number"):
        m.apply(caps, b'{"meta": {"loop": "l7"}, "temps": [0, "hot"], "pump": 1}', NOW)


def test_non_finite_timestamps_are_refused():
    m = load_mapping("bms_cdu")
    topic = "BMS/v1/PUB/Value/CDU/LiquidFlow/dc1/hall1/A/cdu-a/loop-a/Secondary"
    for ts in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(MappingError, match="finite"):
            m.apply(m.match(topic), b'{"value": 1.0, "quality": 1, "timestamp": ' + ts + b"}", NOW)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["value", "timestamp", "quality", "status", "ts", "secondary", "supply", "temp_f",
                         "pumps", "alarms", "leak", "flow_gpm", "setpoint_f"]), inner, max_size=6),
    max_leaves=20,
)


@given(_json, st.sampled_from(["cdu_gateway", "bms_cdu"]))
@settings(max_examples=300, deadline=None)
def test_any_json_gives_records_or_a_mapping_error(doc, name):
    m = load_mapping(name)
    topic = ("cdugw/dc1/hall1/A/cdu-a/loop-a" if name == "cdu_gateway"
             else "BMS/v1/PUB/Value/CDU/LiquidFlow/dc1/hall1/A/cdu-a/loop-a/Secondary")
    try:
        payload = json.dumps(doc).encode()
    except ValueError:
        return
    try:
        records = m.apply(m.match(topic), payload, NOW)
    except MappingError as exc:
        assert exc.reason in ("json_error", "mapping_error")
        return
    for rec in records:
        assert validate(rec) == []
