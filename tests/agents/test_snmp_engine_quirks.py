"""Profile engine rules for what real firmware sends: odd labels, sentinels, absent columns, `.0` row indices."""

from __future__ import annotations

import pytest

from dcim.agents.snmp.profile import Profile, odd_label, parse

COL = "1.3.6.1.4.1.99999.1.1"


def _profile(**table: object) -> Profile:
    base = {"name": "t", "measurement": "env", "index": ["row"], "tags": {"sensor": "{name}"},
            "columns": {"name": f"{COL}.2", "temp": f"{COL}.3"}, "fields": [{"name": "temp_c", "column": "temp"}],
            "sentinels": [-1, 2147483647]}
    base.update(table)
    return Profile.model_validate({"name": "t", "title": "t", "mib": "TEST-MIB", "kind": "pdu", "tables": [base]})


@pytest.mark.parametrize(("value", "why"), [
    ("", "empty"), (None, "absent"), ("rack\n7", "a control character"), ("a\tb", "a control character"),
    ("x\x00", "a control character"), ("inlet\\", "a trailing backslash"), ((1, 3), "not text (tuple)"),
    ("Rack 7 inlet", None), ("Température", None), (3, None)])
def test_odd_label_rule(value: object, why: str | None) -> None:
    assert odd_label(value) == why


def test_odd_labels_become_the_row_index_and_are_reported() -> None:
    walk = {f"{COL}.2": [((1,), b""), ((2,), b"a\nb"), ((3,), b"ok\\"), ((4,), b"Inlet")],
            f"{COL}.3": [((1,), 10), ((2,), 20), ((3,), 30), ((4,), 40)]}
    res = parse(_profile(), walk)
    assert {r.tags["sensor"]: r.fields["temp_c"] for r in res.records} == {"1": 10, "2": 20, "3": 30, "Inlet": 40}
    assert len(res.odd_labels) == 3 and "name of row 1 is empty" in res.odd_labels[0]


def test_absent_label_column_never_renders_none() -> None:
    res = parse(_profile(), {f"{COL}.3": [((5,), 21)]})
    assert [r.tags for r in res.records] == [{"sensor": "5"}]


def test_sentinels_are_omitted_and_listed() -> None:
    walk = {f"{COL}.2": [((1,), b"a"), ((2,), b"b")], f"{COL}.3": [((1,), -1), ((2,), 2147483647)]}
    res = parse(_profile(), walk)
    assert res.records == [] and res.unsupported == {"env.temp_c"}


def test_row_index_with_a_trailing_zero_is_the_row() -> None:
    walk = {f"{COL}.2": [((1, 0), b"a")], f"{COL}.3": [((1, 0), 215)]}
    res = parse(_profile(fields=[{"name": "temp_c", "column": "temp", "scale": 0.1}]), walk)
    assert [(r.tags, r.fields) for r in res.records] == [({"sensor": "a"}, {"temp_c": 21.5})]


def test_when_null_selects_rows_whose_column_is_absent() -> None:
    prof = _profile(columns={"name": f"{COL}.2", "temp": f"{COL}.3", "kind": f"{COL}.4"},
                    fields=[{"name": "temp_c", "column": "temp", "when": {"kind": [0, None]}}])
    walk = {f"{COL}.2": [((1,), b"a"), ((2,), b"b"), ((3,), b"c")], f"{COL}.3": [((1,), 1), ((2,), 2), ((3,), 3)],
            f"{COL}.4": [((1,), 0), ((2,), 7)]}
    assert sorted(r.tags["sensor"] for r in parse(prof, walk).records) == ["a", "c"]


def test_a_field_filled_by_a_later_table_is_not_unsupported_and_its_source_is_the_winner() -> None:
    prof = Profile.model_validate({"name": "t", "title": "t", "mib": "TEST-MIB", "kind": "pdu", "tables": [
        {"name": "old", "measurement": "pdu", "index": ["i"], "columns": {"w": f"{COL}.5"},
         "fields": [{"name": "power_w", "column": "w"}], "sentinels": [-1]},
        {"name": "new", "measurement": "pdu", "index": ["i"], "columns": {"w": f"{COL}.6"},
         "fields": [{"name": "power_w", "column": "w", "scale": 10}], "sentinels": [-1]}]})
    res = parse(prof, {f"{COL}.5": [((0,), 300)], f"{COL}.6": [((0,), -1)]}, sources=True)
    assert [r.fields for r in res.records] == [{"power_w": 300.0}] and res.unsupported == set()
    assert [s.oid for s in res.sources] == [f"{COL}.5.0"]
    res = parse(prof, {f"{COL}.5": [((0,), 300)], f"{COL}.6": [((0,), 31)]}, sources=True)
    assert [r.fields for r in res.records] == [{"power_w": 310.0}]
    assert [(s.oid, s.value) for s in res.sources] == [(f"{COL}.6.0", 310.0)]


def test_default_probes_are_one_real_column_per_table_with_its_sentinels() -> None:
    assert _profile().probes() == [(f"{COL}.3", frozenset({-1, 2147483647}))]


def test_entity_sensor_mib_scale_precision_and_status() -> None:
    from dcim.agents.snmp.profile import load_profiles

    prof = load_profiles()["if_mib"]
    e = "1.3.6.1.2.1.99.1.1.1"
    rows = {  # index: (type, scale, precision, value, status, name)
        5: (8, 9, 1, 345, 1, b"CPU"),           # 34.5 degC
        6: (9, 9, 0, 41, 1, b"Inlet RH"),       # 41 %RH
        7: (8, 8, 0, 36500, 1, b"ASIC"),        # milli-degrees: 36.5 degC
        8: (8, 9, -1, 3, 1, b"Hot spot"),       # precision -1: 30 degC
        9: (8, 9, 1, 999, 2, b"Unplugged"),     # unavailable: omitted
        10: (5, 9, 2, 1234, 1, b"PSU1"),        # amperes: no env field
    }
    walk = {f"{e}.{c + 1}": [((i,), r[c]) for i, r in rows.items()] for c in range(5)}
    walk["1.3.6.1.2.1.47.1.1.1.1.7"] = [((i,), r[5]) for i, r in rows.items()]
    got = {r.tags["sensor"]: r.fields for r in parse(prof, walk, {"switch": "tor1"}).records}
    assert got == {"CPU": {"temp_c": 34.5}, "Inlet RH": {"humidity_pct": 41.0}, "ASIC": {"temp_c": 36.5},
                   "Hot spot": {"temp_c": 30.0}}
