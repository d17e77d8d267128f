"""Every panel, annotation and template-variable query of every dashboard, expanded the way Grafana
expands it for every value of every variable, runs on a real InfluxDB 1.6.7 that the demo pipeline
filled (GPU agents, SNMP poller on the simulated PDUs and CDUs, collector, alert engine) and returns
data: a panel that no component of the pipeline feeds is a failure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from dcim.dashboards import sample
from dcim.dashboards.build import context, dashboards
from dcim.dashboards.expand import TimeRange, expand, resolve_variables, targets, variable_selections
from dcim.config import default_site
from dcim.app.demo import run_demo
from dcim.app.pipeline import PipelineOptions
from dcim.simulators.scenarios import load_scenario

pytestmark = pytest.mark.integration

INTERVAL = "10s"
#: Open the rack and node dashboards where the scenario's faults are, as an operator following a link would.
PREFER = sample.FOCUS
#: Something for every panel to show: a failing pump on loop-a (its alerts fire and resolve), ECC
#: errors and XIDs on B01 (firing at the end), and a PDU that stops answering (stale at the end).
SCENARIO = """\
name: dashboards
description: every kind of record the dashboards show, from the pipeline
duration: 5m
faults:
  - {kind: pump_degradation, loop: loop-a, flow_fraction: 0.25, at: 20s, ramp: 20s, until: 1m40s, recover: 10s,
     note: loop-a pump}
  - {kind: ecc_errors, node: B01-n03, gpu: 2, sbe_per_min: 30, at: 1m, note: corrected ECC}
  - {kind: ecc_errors, node: B01-n03, gpu: 2, sbe_per_min: 0, dbe: 1, at: 2m, note: XID 48}
  - {kind: xid, node: B01-n01, gpu: 0, code: 13, at: 2m30s, note: XID 13}
  - {kind: not_answering, rack: B02, pdu: pdu-b, at: 3m, note: B02 pdu-b silent}
"""


@pytest.fixture(scope="module")
def filled(influxdb: Any, mosquitto: Any, tmp_path_factory: Any) -> Iterator[tuple[Any, str, TimeRange, Any]]:
    db = "dash_pipeline"
    influxdb.drop_database(db)
    folder = tmp_path_factory.mktemp("dash-pipeline")
    path = folder / "dashboards.yaml"
    path.write_text(SCENARIO)
    run = run_demo(default_site(), load_scenario(str(path)),
                   PipelineOptions(out_dir=folder / "run", mqtt_url=mosquitto.url, influx_url=influxdb.url,
                                   influx_db=db),
                   speed=100_000.0, echo=lambda _: None)
    pipe = run.pipeline
    yield influxdb, db, TimeRange(pipe.first_ns // 10**6, pipe.last_ns // 10**6 + 1), run
    influxdb.drop_database(db)


def _run(influxdb: Any, db: str, q: str) -> list[dict[str, Any]]:
    answer = influxdb.query(q, db, epoch="ms")
    results = answer.get("results", [])
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, f"InfluxDB refused {q!r}: {errors}"
    return [s for r in results for s in r.get("series", [])]


def _tag_values(influxdb: Any, db: str, q: str) -> list[str]:
    return sorted({row[1] for s in _run(influxdb, db, q) for row in s.get("values", [])})


ALL = dashboards(context())


def _panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def _no_value(dash: dict[str, Any]) -> dict[str, str]:
    """Panel title -> what it shows instead of "No data" (fieldConfig.defaults.noValue), where it says."""
    return {p["title"]: p["fieldConfig"]["defaults"]["noValue"] for p in _panels(dash)
            if p.get("fieldConfig", {}).get("defaults", {}).get("noValue")}


@pytest.mark.parametrize("key", sorted(ALL))
def test_every_query_returns_data_for_every_variable_value(filled: tuple[Any, str, TimeRange, Any], key: str) -> None:
    influxdb, db, time_range, _ = filled
    dash = ALL[key]
    found = list(targets(dash))
    assert found, f"{key}: no queries at all"
    said_instead = _no_value(dash)

    @cache
    def has_data(q: str) -> bool:
        return any(s.get("values") for s in _run(influxdb, db, q))

    fed: dict[str, bool] = {where: False for where, _ in found}
    empty: list[str] = []
    selections = 0
    seen: set[tuple[tuple[str, str], ...]] = set()
    for shown, values in variable_selections(dash, lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL):
        if tuple(sorted(values.items())) in seen:
            continue
        seen.add(tuple(sorted(values.items())))
        selections += 1
        for where, target in found:
            q = expand(target["query"], values, time_range, INTERVAL)
            # Nothing Grafana would have replaced may survive (a regex's closing $/ is InfluxQL, not a variable).
            assert not re.search(r"\$\w|\[\[", q), f"{key} {where}: unexpanded variable in {q}"
            assert "$timeFilter" not in target["query"] or "ms and time <=" in q
            if has_data(q):
                fed[where] = True
                continue
            title = where.split("'")[1] if "'" in where else where
            # A panel may be empty for one selection only where it says something instead of "No data"
            # (no XIDs on this GPU, nothing stale, nothing firing); annotations mark nothing when nothing happened.
            if not where.startswith("annotation") and title not in said_instead:
                empty.append(f"{where} with {shown}: {q}")
    assert selections > 1 or not dash.get("templating", {}).get("list")
    unfed = [where for where, ok in fed.items() if not ok]
    assert not unfed, f"{key}: no component of the pipeline feeds:\n" + "\n".join(unfed)
    assert not empty, f"{key}: queries without data:\n" + "\n".join(empty[:20])


def test_the_loop_differential_pressure_is_supply_minus_return(filled: tuple[Any, str, TimeRange, Any]) -> None:
    # the CDUs' MIBs give supply and return pressure; the SNMP agent derives the difference the schema defines
    influxdb, db, _, _ = filled
    rows = influxdb.points('SELECT "supply_pressure_kpa", "return_pressure_kpa", "diff_pressure_kpa" '
                           'FROM "coolant_loop"', db)
    assert len(rows) > 10
    for r in rows:
        assert r["diff_pressure_kpa"] == pytest.approx(r["supply_pressure_kpa"] - r["return_pressure_kpa"], abs=1e-3)
    assert min(r["diff_pressure_kpa"] for r in rows) < 0.5 * max(r["diff_pressure_kpa"] for r in rows)  # the pump


def test_every_value_of_every_variable_is_selected(filled: tuple[Any, str, TimeRange, Any]) -> None:
    influxdb, db, time_range, run = filled
    site = run.pipeline.site
    shown = [s for s, _ in variable_selections(ALL["node"], lambda q: _tag_values(influxdb, db, q), time_range,
                                               INTERVAL)]
    nodes = {n.name for r in site.racks() for n in r.nodes}
    assert {s["node"] for s in shown} == nodes
    assert {(s["node"], s["gpu"]) for s in shown} >= {(n, "All") for n in nodes} | {("B01-n03", "2")}
    racks = {s["rack"] for s, _ in variable_selections(ALL["rack"], lambda q: _tag_values(influxdb, db, q),
                                                        time_range, INTERVAL)}
    assert racks == {r.name for r in site.racks()}


def test_count_panels_show_0_where_nothing_is_stale_or_firing(filled: tuple[Any, str, TimeRange, Any]) -> None:
    # Grafana shows a stat panel's noValue when the query returns no series: a count of stale devices
    # over a selection where none is stale is such a query.
    influxdb, db, time_range, _ = filled
    dash = ALL["health"]
    values = resolve_variables(dash, lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL)
    values["component"] = "gpu"  # the GPU agents never went stale in the run
    stale = next(t for where, t in targets(dash) if "'Stale devices'" in where)
    assert not any(s.get("values") for s in _run(influxdb, db, expand(stale["query"], values, time_range, INTERVAL)))
    for key, dash in ALL.items():
        for p in _panels(dash):
            if p.get("type") == "stat" and any("count(" in t["query"] for t in p.get("targets", [])):
                assert p["fieldConfig"]["defaults"].get("noValue") == "0", f"{key} {p['title']!r}"


def test_variables_expand_as_regex_groups(filled: tuple[Any, str, TimeRange, Any]) -> None:
    influxdb, db, time_range, run = filled
    site = run.pipeline.site
    values = resolve_variables(ALL["hall"], lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL)
    assert values["site"] == site.site
    rows = sorted(row.name for room in site.rooms for row in room.rows)
    assert values["row"] == "(" + "|".join(rows) + ")"  # "All" of a multi-value variable
    rack = resolve_variables(ALL["rack"], lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL)
    assert rack["rack"] == sorted(r.name for r in site.racks())[0]  # single-value: first value, unescaped
    node = resolve_variables(ALL["node"], lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL, PREFER)
    n = next(n for r in site.racks() for n in r.nodes if n.name == PREFER["node"])
    assert node["node"] == PREFER["node"] and node["gpu"] == "(" + "|".join(map(str, range(n.gpus))) + ")"


def test_a_renamed_tag_value_is_no_data(filled: tuple[Any, str, TimeRange, Any]) -> None:
    # The check above must be able to fail: the same query with a rack that does not exist is empty.
    influxdb, db, time_range, _ = filled
    dash = ALL["rack"]
    values = resolve_variables(dash, lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL)
    values["rack"] = "Z99"
    where, target = next(targets(dash))
    assert not any(s.get("values") for s in _run(influxdb, db, expand(target["query"], values, time_range, INTERVAL)))


def test_render_draws_every_dashboard_from_the_database(filled: tuple[Any, str, TimeRange, Any], tmp_path: Any) -> None:
    from dcim.dashboards.render import influx_runner, render

    influxdb, db, time_range, _ = filled
    run = influx_runner(influxdb.url, db)
    for key in ("hall", "node"):  # two are enough to prove the path; docs/img has all five
        path = render(ALL[key], run, time_range, tmp_path / f"{key}.png", interval=INTERVAL, prefer=PREFER)
        assert path.stat().st_size > 20_000, key


@pytest.mark.parametrize("key", sorted(ALL))
def test_drill_down_links_find_their_labels_in_the_data(filled: tuple[Any, str, TimeRange, Any], key: str) -> None:
    # A link built from ${__field.labels.rack} or ${__data.fields.node} only works if the query returns
    # that tag (series label) or column; otherwise Grafana would open the next dashboard on nothing.
    influxdb, db, time_range, _ = filled
    dash = ALL[key]
    values = resolve_variables(dash, lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL, PREFER)
    checked = 0
    for p in dash["panels"]:
        links = json.dumps(p.get("fieldConfig", {}).get("defaults", {}).get("links", []))
        wanted = set(re.findall(r"__field\.labels\.(\w+)", links)) | set(re.findall(r"__data\.fields\.(\w+)", links))
        for t in p.get("targets", []) if wanted else []:
            for s in _run(influxdb, db, expand(t["query"], values, time_range, INTERVAL)):
                have = set(s.get("tags") or {}) | set(s["columns"])
                assert wanted <= have, f"{key} {p['title']!r}: link needs {wanted - have}"
                checked += 1
    if key in ("hall", "rack"):
        assert checked
