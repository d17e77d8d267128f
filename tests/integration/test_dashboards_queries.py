"""Every panel, annotation and template-variable query of every dashboard, expanded the way Grafana
expands it, runs on a real InfluxDB 1.6.7 filled with a simulated scenario and returns data."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dashboards.build import context, dashboards
from dashboards.expand import TimeRange, expand, resolve_variables, targets
from dcim.lineprotocol import encode
from dcim.record import Record
from simulators.hall import Hall
from simulators.scenarios import load_scenario

pytestmark = pytest.mark.integration

SCENARIO = "ecc-errors"  # has XIDs, so the gpu_xid panels have data too
DURATION_S = 600
STEP_S = 5.0
INTERVAL = "10s"
#: Open the rack and node dashboards where the scenario's faults are, as an operator following a link would.
PREFER = {"row": "B", "rack": "B01", "node": "B01-n03"}


def _health_and_alert_records(start_ns: int, end_ns: int) -> list[Record]:
    """What the agents and the alert engine would have written: health per device, alert transitions."""
    out = []
    devices = [("snmp", "poller-1", "A01-pdu-a"), ("snmp", "poller-1", "A01-pdu-b"), ("gpu", "A01-n01", "A01-n01")]
    for i, t in enumerate(range(start_ns, end_ns, 10 * 10**9)):
        for component, host, device in devices:
            stale = device == "A01-pdu-b" and t > end_ns - 120 * 10**9
            out.append(Record("agent", {"site": "dc1", "component": component, "host": host, "device": device},
                              {"poll_duration_s": 0.05 + 0.01 * (i % 5), "errors_total": i // 7 if stale else 0,
                               "stale": stale, "up": not stale, "queue_depth": i % 4, "dropped_total": i // 20},
                              t))
    loc = {"site": "dc1", "room": "hall1", "row": "B", "rack": "B01"}
    transitions = [
        (start_ns + 60 * 10**9, "PduPhaseCurrentHigh", "warning", "firing", {**loc, "pdu": "pdu-a", "phase": "L1"}),
        (start_ns + 240 * 10**9, "PduPhaseCurrentHigh", "warning", "resolved", {**loc, "pdu": "pdu-a", "phase": "L1"}),
        (start_ns + 300 * 10**9, "GpuEccUncorrected", "critical", "firing", {**loc, "node": "B01-n03", "gpu": "2"}),
    ]
    for t, name, severity, state, tags in transitions:
        out.append(Record("alert", {"alertname": name, "severity": severity, **tags},
                          {"state": state, "previous": "pending", "value": 1.0, "inhibited": False,
                           "summary": f"{name} {state}"}, t))
    return out


@pytest.fixture(scope="module")
def filled(influxdb: Any) -> Iterator[tuple[Any, str, TimeRange]]:
    db = f"dash_{uuid.uuid4().hex[:8]}"
    influxdb.create_database(db)
    start_ns = (int(time.time()) - DURATION_S - 60) * 10**9
    hall = Hall(context().site, seed=7, scenario=load_scenario(SCENARIO), start_ns=start_ns)
    batch: list[str] = []
    for _ in range(int(DURATION_S / STEP_S)):
        hall.advance(STEP_S)
        batch.append(hall.lines())
        if len(batch) == 10:
            influxdb.write("".join(batch), db)
            batch = []
    if batch:
        influxdb.write("".join(batch), db)
    end_ns = hall.time_ns
    influxdb.write(encode(_health_and_alert_records(start_ns, end_ns)), db)
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
