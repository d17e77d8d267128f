"""Schema units map to Grafana units; InfluxQL helpers refuse unknown fields; Grafana-style expansion."""

from __future__ import annotations

import pytest

from dcim.dashboards.expand import TimeRange, escape_regex, expand, format_value, interval_ms, resolve_variables
from dcim.dashboards.influxql import Influx, InfluxQuery, fld, number, tag_match, where
from dcim.dashboards.units import GRAFANA_UNITS, grafana_unit, unit_of
from dcim.errors import ExpandError, SchemaError
from dcim.schema import COOLANT_LOOP, GPU, MEASUREMENTS, PDU_PHASE

TR = TimeRange(1_700_000_000_000, 1_700_000_600_000)


def test_every_schema_unit_has_a_grafana_unit() -> None:
    units = {f.unit for m in MEASUREMENTS.values() for f in m.fields.values()}
    assert units <= set(GRAFANA_UNITS)
    assert unit_of(COOLANT_LOOP, "flow_lpm") == "flowlpm"
    assert unit_of(COOLANT_LOOP, "diff_pressure_kpa") == "pressurekpa"
    assert unit_of(PDU_PHASE, "current_a") == "amp"
    assert unit_of(GPU, "temp_c") == "celsius"


def test_unknown_units_and_fields_fail_the_build() -> None:
    with pytest.raises(SchemaError, match="furlong"):
        grafana_unit("furlong")
    with pytest.raises(SchemaError, match="power_watts"):
        fld(GPU, "power_watts")
    with pytest.raises(SchemaError):
        unit_of(GPU, "power_watts")


def test_influx_query_round_trips() -> None:
    q = Influx('SELECT 1 FROM "gpu"').ref_id("B").alias("$tag_rack").table().build()
    again = InfluxQuery.from_json(q.to_json())
    assert again.to_json() == q.to_json() == {
        "refId": "B", "query": 'SELECT 1 FROM "gpu"', "rawQuery": True, "resultFormat": "table", "alias": "$tag_rack",
    }


def test_numbers_in_queries_are_plain_influxql_literals() -> None:
    # InfluxQL has no exponent notation: "1.14294e+06" is "found e, expected FROM" on InfluxDB 1.x.
    assert number(1142940.0) == "1142940"
    assert number(132000) == "132000"
    assert number(0.25) == "0.25"
    assert number(1e-7) == "0.0000001"
    assert "e+" not in number(3.6e12) and number(3.6e12) == "3600000000000"


def test_where_always_ends_with_the_time_filter() -> None:
    assert where() == "WHERE $timeFilter"
    assert where(*tag_match("rack", "node")) == 'WHERE "rack" =~ /^$rack$/ AND "node" =~ /^$node$/ AND $timeFilter'


def test_expansion_like_grafana() -> None:
    q = 'SELECT mean("x") FROM "gpu" WHERE "rack" =~ /^$rack$/ AND $timeFilter GROUP BY time($__interval)'
    out = expand(q, {"rack": format_value(["A01", "A02"], multi=True, include_all=True)}, TR, "10s")
    assert out == ('SELECT mean("x") FROM "gpu" WHERE "rack" =~ /^(A01|A02)$/ AND '
                   "time >= 1700000000000ms and time <= 1700000600000ms GROUP BY time(10s)")
    assert expand("$__interval_ms ${rack} [[rack]]", {"rack": "A01"}, TR, "1m") == "60000 A01 A01"
    assert interval_ms("250ms") == 250


def test_values_are_regex_escaped_only_for_multi_or_all() -> None:
    assert format_value(["a.b"], multi=False, include_all=False) == "a.b"
    assert format_value(["a.b"], multi=True, include_all=False) == r"a\.b"
    assert format_value(["x/y", "z"], multi=True, include_all=True) == r"(x\/y|z)"
    assert escape_regex("(1)") == r"\(1\)"


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(ExpandError, match=r"\$nope"):
        expand("SELECT $nope", {}, TR, "10s")


def test_variables_resolve_in_order_with_the_ones_above_expanded() -> None:
    dash = {"templating": {"list": [
        {"name": "row", "query": 'SHOW TAG VALUES WITH KEY = "row"', "multi": True, "includeAll": True},
        {"name": "rack", "query": 'SHOW TAG VALUES WITH KEY = "rack" WHERE "row" =~ /^$row$/', "multi": False},
    ]}}
    seen = []

    def run(q: str) -> list[str]:
        seen.append(q)
        return ["A", "B"] if "row\"" in q.split("WHERE")[0] else ["A01", "B01"]

    values = resolve_variables(dash, run, TR, "10s")
    assert values == {"row": "(A|B)", "rack": "A01"}
    assert seen[1].endswith('/^(A|B)$/')
    assert resolve_variables(dash, run, TR, "10s", prefer={"rack": "B01"})["rack"] == "B01"
    with pytest.raises(ExpandError, match="no values"):
        resolve_variables(dash, lambda q: [], TR, "10s")
