"""Every panel, annotation and template-variable query of every dashboard, expanded the way Grafana
expands it, runs on a real InfluxDB 1.6.7 filled with a simulated scenario and returns data."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dashboards import sample
from dashboards.build import context, dashboards
from dashboards.expand import TimeRange, expand, resolve_variables, targets

pytestmark = pytest.mark.integration

DURATION_S = 600
STEP_S = 5.0
INTERVAL = "10s"
#: Open the rack and node dashboards where the scenario's faults are, as an operator following a link would.
PREFER = sample.FOCUS


@pytest.fixture(scope="module")
def filled(influxdb: Any) -> Iterator[tuple[Any, str, TimeRange]]:
    db = f"dash_{uuid.uuid4().hex[:8]}"
    influxdb.create_database(db)
    start_ns = (int(time.time()) - DURATION_S - 60) * 10**9
    end_ns = sample.fill(lambda lines: influxdb.write(lines, db), context().site, start_ns, DURATION_S, STEP_S)
    yield influxdb, db, TimeRange(start_ns // 10**6, end_ns // 10**6 + 1)
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


@pytest.mark.parametrize("key", sorted(ALL))
def test_every_query_returns_data(filled: tuple[Any, str, TimeRange], key: str) -> None:
    influxdb, db, time_range = filled
    dash = ALL[key]
    values = resolve_variables(dash, lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL, PREFER)
    found = list(targets(dash))
    assert found, f"{key}: no queries at all"
    empty = []
    for where, target in found:
        q = expand(target["query"], values, time_range, INTERVAL)
        # Nothing Grafana would have replaced may survive (a regex's closing $/ is InfluxQL, not a variable).
        assert not re.search(r"\$\w|\[\[", q), f"{key} {where}: unexpanded variable in {q}"
        assert "$timeFilter" not in target["query"] or "ms and time <=" in q
        series = _run(influxdb, db, q)
        if not any(s.get("values") for s in series):
            empty.append(f"{where}: {q}")
    assert not empty, f"{key}: queries without data:\n" + "\n".join(empty)


def test_variables_expand_as_regex_groups(filled: tuple[Any, str, TimeRange]) -> None:
    influxdb, db, time_range = filled
    values = resolve_variables(ALL["hall"], lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL)
    assert values["site"] == "dc1"
    assert values["row"] == "(A|B)"  # "All" of a multi-value variable
    rack = resolve_variables(ALL["rack"], lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL)
    assert rack["rack"] == "A01"  # single-value: first value, unescaped
    node = resolve_variables(ALL["node"], lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL, PREFER)
    assert node["node"] == "B01-n03" and node["gpu"] == "(0|1|2|3|4|5|6|7)"


def test_a_renamed_tag_value_is_no_data(filled: tuple[Any, str, TimeRange]) -> None:
    # The check above must be able to fail: the same query with a rack that does not exist is empty.
    influxdb, db, time_range = filled
    dash = ALL["rack"]
    values = resolve_variables(dash, lambda q: _tag_values(influxdb, db, q), time_range, INTERVAL)
    values["rack"] = "Z99"
    where, target = next(targets(dash))
    assert not any(s.get("values") for s in _run(influxdb, db, expand(target["query"], values, time_range, INTERVAL)))


def test_render_draws_every_dashboard_from_the_database(filled: tuple[Any, str, TimeRange], tmp_path: Any) -> None:
    from dashboards.render import influx_runner, render

    influxdb, db, time_range = filled
    run = influx_runner(influxdb.url, db)
    for key in ("hall", "node"):  # two are enough to prove the path; docs/img has all five
        path = render(ALL[key], run, time_range, tmp_path / f"{key}.png", interval=INTERVAL, prefer=PREFER)
        assert path.stat().st_size > 20_000, key


@pytest.mark.parametrize("key", sorted(ALL))
def test_drill_down_links_find_their_labels_in_the_data(filled: tuple[Any, str, TimeRange], key: str) -> None:
    # A link built from ${__field.labels.rack} or ${__data.fields.node} only works if the query returns
    # that tag (series label) or column; otherwise Grafana would open the next dashboard on nothing.
    influxdb, db, time_range = filled
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
