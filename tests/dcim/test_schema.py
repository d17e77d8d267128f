"""The schema is data: names carry units, every record type checks, and validation names what is wrong."""

from __future__ import annotations

import re

import pytest

from dcim import schema
from dcim.errors import SchemaError
from dcim.record import Record, UInt

UNIT_SUFFIX = {"W": "_w", "degC": "_c", "J": "_j", "A": "_a", "V": "_v", "L/min": "_lpm", "kPa": "_kpa", "%": "_pct",
               "MHz": "_mhz", "s": "_s", "VA": "_va", "Hz": "_hz", "bit/s": "_bps"}


@pytest.mark.parametrize("meas", schema.MEASUREMENTS.values(), ids=lambda m: m.name)
def test_field_names_carry_their_unit(meas: schema.Measurement) -> None:
    for f in meas.fields.values():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name), f.name
        suffix = UNIT_SUFFIX.get(f.unit)
        if suffix:
            assert f.name.endswith(suffix) or f.name.endswith(suffix + "_total"), (meas.name, f.name, f.unit)
        if f.kind == "counter" and f.unit not in ("J", "s"):
            assert f.name.endswith("_total") or f.name.startswith(("retired_", "remapped_")), f.name
        assert f.description


def test_location_tags_come_first() -> None:
    for meas in schema.MEASUREMENTS.values():
        if meas.name == "alert":
            continue
        n = len([t for t in meas.tags if t in schema.LOCATION_TAGS])
        assert meas.tags[:n] == schema.LOCATION_TAGS[:n]
        assert all(t in schema.TAGS for t in meas.tags)


def test_validate_names_each_problem() -> None:
    ok = Record("gpu", {"node": "n"}, {"temp_c": 40.0, "processes": 2, "lost": False}, 1)
    assert schema.validate(ok) == []
    assert schema.validate(Record("nope", {}, {"x": 1.0})) == ["unknown measurement 'nope'"]
    problems = schema.validate(Record("gpu", {}, {"temp_c": "hot", "bogus": 1.0, "lost": 1}))
    assert problems == [
        "field 'temp_c' of 'gpu' must be float, got str 'hot'",
        "unknown field 'bogus' for measurement 'gpu'",
        "field 'lost' of 'gpu' must be bool, got int 1",
    ]
    # an integer is a fine float reading (line protocol writes 1 for 1.0), but not the other way round
    assert schema.validate(Record("gpu", {}, {"temp_c": 40})) == []
    assert schema.validate(Record("gpu", {}, {"processes": 2.5})) != []
    assert schema.validate(Record("netif", {}, {"rx_bytes_total": UInt(5)})) == []
    assert schema.validate(Record("gpu", {}, {"temp_c": 1.0}, 1), allow_extra_tags=False) == []
    assert schema.validate(Record("gpu", {"colour": "red"}, {"temp_c": 1.0}), allow_extra_tags=False) == [
        "unknown tag 'colour' for measurement 'gpu'"
    ]


def test_coerce_and_lookup() -> None:
    out = schema.coerce(schema.NETIF, {"rx_bytes_total": 5, "oper_up": True, "speed_bps": 10})
    assert type(out["rx_bytes_total"]) is UInt and type(out["speed_bps"]) is float
    with pytest.raises(SchemaError, match="unknown measurement 'nope'"):
        schema.measurement("nope")
    with pytest.raises(SchemaError, match="has no field 'x'"):
        schema.GPU.field("x")
    assert "temp_c" in schema.field_names(schema.GPU, ["gauge"])
    assert "energy_j" not in schema.field_names(schema.GPU, ["gauge"])


def test_docs_schema_is_generated_from_the_code() -> None:
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
    assert doc.read_text() == schema.markdown(), "docs/schema.md is stale: run `dcim schema > docs/schema.md`"
