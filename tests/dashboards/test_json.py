"""The generated dashboards pass the SDK's own decoding, and carry what Grafana and operators rely on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dcim.dashboards import influxql
from dcim.dashboards.build import context, dashboards
from dcim.dashboards.common import UIDS
from dcim.dashboards.expand import targets
from dcim.dashboards.units import GRAFANA_UNITS

ALL = dashboards(context())


def _panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _without_annotation_extras(d: dict[str, Any]) -> dict[str, Any]:
    # The SDK's AnnotationQuery has no InfluxDB fields; everything else must survive its decoder.
    d = json.loads(json.dumps(d))
    for a in d.get("annotations", {}).get("list", []):
        for k in ("query", "textColumn", "tagsColumn", "target"):
            a.pop(k, None)
    return d


@pytest.mark.parametrize("key", sorted(ALL))
def test_sdk_decodes_and_reencodes_unchanged(key: str) -> None:
    influxql.register()
    data = ALL[key]
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert _without_annotation_extras(again) == _without_annotation_extras(data)
    # Our targets decode as our InfluxQuery variant, not as the SDK's UnknownDataquery bag.
    decoded = Dashboard.from_json(data)
    kinds = {type(t).__name__ for p in decoded.panels or [] for t in getattr(p, "targets", None) or []}
    assert kinds == {"InfluxQuery"}


def test_uids_are_set_and_distinct() -> None:
    uids = [d["uid"] for d in ALL.values()]
    assert sorted(uids) == sorted(UIDS.values())
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("key", sorted(ALL))
def test_panel_ids_unique_and_layout_fits_the_grid(key: str) -> None:
    panels = _panels(ALL[key])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))


@pytest.mark.parametrize("key", sorted(ALL))
def test_every_query_has_a_datasource_and_every_panel_a_unit(key: str) -> None:
    d = ALL[key]
    uid = context().cfg.datasource_uid
    found = list(targets(d))
    assert found
    for where, t in found:
        assert t.get("datasource") == {"type": "influxdb", "uid": uid}, where
        assert t["query"].strip() and t.get("rawQuery") is True, where
    for var in d["templating"]["list"]:
        assert var["datasource"] == {"type": "influxdb", "uid": uid}, var["name"]
    known = set(GRAFANA_UNITS.values()) | {"percent", "kwatth", "cps", "bool"} | {"currency" + context().cfg.currency}
    for p in _panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == uid, p["title"]
        assert p["targets"], p["title"]
        assert p["fieldConfig"]["defaults"].get("unit") in known, p["title"]


@pytest.mark.parametrize("key", sorted(ALL))
def test_alert_transitions_annotate_every_dashboard(key: str) -> None:
    annos = ALL[key]["annotations"]["list"]
    states = {a["name"]: a for a in annos}
    assert {"Alerts firing", "Alerts resolved"} <= set(states)
    for a in annos:
        assert 'FROM "alert"' in a["query"] and "$timeFilter" in a["query"]
        assert a["target"]["query"] == a["query"] and a["datasource"]["type"] == "influxdb"


def test_template_variables_follow_the_location_hierarchy() -> None:
    names = {k: [v["name"] for v in d["templating"]["list"]] for k, d in ALL.items()}
    assert names["hall"] == ["site", "room", "row"]
    assert names["rack"] == ["site", "room", "row", "rack"]
    assert names["node"] == ["site", "room", "row", "rack", "node", "gpu"]
    # each variable query is filtered by every variable above it
    node_vars = ALL["node"]["templating"]["list"]
    for i, v in enumerate(node_vars):
        for above in node_vars[:i]:
            assert f'/^${above["name"]}$/' in v["query"]


def test_links_lead_from_overview_to_rack_to_node() -> None:
    def urls(d: dict[str, Any]) -> str:
        return json.dumps([p.get("fieldConfig", {}).get("defaults", {}).get("links", []) for p in _panels(d)])

    assert f"/d/{UIDS['rack']}/" in urls(ALL["hall"])
    assert f"/d/{UIDS['node']}/" in urls(ALL["rack"])
    # The whole variable chain travels, or Grafana would reset rack/node to the first of another row.
    for chain in ("var-room=", "var-row=", "var-rack="):
        assert chain in urls(ALL["hall"]) and chain in urls(ALL["rack"])
    assert "var-node=" in urls(ALL["rack"]) and "var-node=${__data.fields.node}" in urls(ALL["hall"])
    for d in ALL.values():
        assert any(link.get("type") == "dashboards" and "dcim" in link.get("tags", []) for link in d["links"])


def test_panel_units_come_from_the_schema() -> None:
    by_title = {p["title"]: p for d in ALL.values() for p in _panels(d)}
    assert by_title["Phase current"]["fieldConfig"]["defaults"]["unit"] == "amp"
    assert by_title["Flow"]["fieldConfig"]["defaults"]["unit"] == "flowlpm"
    assert by_title["Differential pressure"]["fieldConfig"]["defaults"]["unit"] == "pressurekpa"
    assert by_title["GPU power"]["fieldConfig"]["defaults"]["unit"] == "watt"
    assert by_title["GPU temperature"]["fieldConfig"]["defaults"]["unit"] == "celsius"


def test_a_rack_with_its_own_budget_gets_its_own_scale() -> None:
    from dcim.config import named_site

    site = named_site("h100-hall")
    rack = next(iter(site.racks()))
    rack.rating_w = 20_000.0
    hall = dashboards(context(site))["hall"]
    panel = next(p for p in _panels(hall) if p["title"] == "Power per rack against its rating")
    overrides = {o["matcher"]["options"]: o["properties"] for o in panel["fieldConfig"]["overrides"]}
    assert list(overrides) == [rack.name]
    props = {p["id"]: p["value"] for p in overrides[rack.name]}
    assert props["max"] == 20_000.0
    assert [s["value"] for s in props["thresholds"]["steps"]] == [None, 16_000.0, 20_000.0]
    # and the hall's capacity follows the budgets
    cap = next(p for p in _panels(hall) if p["title"] == "IT power against capacity")
    assert f"{sum(r.budget_w for r in site.racks()):g}" in cap["targets"][0]["query"]
