"""Generated sites: a hall of any size, for benchmarks and scale tests (the embedded sites are in dcim/data/sites/)."""

from __future__ import annotations

from dcim.config import SiteConfig


def make_site(
    racks: int,
    *,
    nodes_per_rack: int = 4,
    gpus_per_node: int = 8,
    racks_per_row: int = 8,
    racks_per_loop: int = 4,
    site: str = "sim",
    room: str = "hall1",
    flow_lpm_per_rack: float = 55.0,
) -> SiteConfig:
    """A hall of ``racks`` racks like the default one: rows of ``racks_per_row``, a loop per ``racks_per_loop``.

    Each rack has the default two 3-phase PDUs (feed A and B, 24 outlets); node n plugs into
    outlets n, n+8 and n+16 of both (one per phase bank). ``make_site(32)`` is the 1,024-GPU hall.
    """
    if racks < 1:
        msg = f"racks must be at least 1, got {racks}"
        raise ValueError(msg)
    rows: list[dict] = []
    names: list[str] = []
    for r in range(racks):
        row_i, pos = divmod(r, racks_per_row)
        if pos == 0:
            rows.append({"name": _row_name(row_i), "racks": []})
        name = f"{_row_name(row_i)}{pos + 1:02d}"
        names.append(name)
        rows[-1]["racks"].append({"name": name, "nodes": nodes_per_rack})
    loops = []
    for k in range(0, racks, racks_per_loop):
        members = names[k : k + racks_per_loop]
        i = k // racks_per_loop
        loops.append({
            "name": f"loop-{i + 1:02d}",
            "cdu": f"cdu-{i + 1:02d}",
            "racks": members,
            "nominal_flow_lpm": flow_lpm_per_rack * len(members),
        })
    data = {
        "site": site,
        "defaults": {"nodes_per_rack": nodes_per_rack, "gpus_per_node": gpus_per_node},
        "rooms": [{"name": room, "rows": rows}],
        "loops": loops,
    }
    return SiteConfig.model_validate(data)


def _row_name(i: int) -> str:
    """A, B, ..., Z, AA, AB, ...: row names as halls letter them."""
    out = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


def row_site(site: SiteConfig, rows: set[str] | frozenset[str]) -> SiteConfig:
    """``site`` cut down to ``rows`` (their racks and the loops that cool them): the topology one alert
    engine of a row-partitioned deployment knows, so it expects no devices of the other rows."""
    data = site.model_dump()
    for room in data["rooms"]:
        room["rows"] = [r for r in room["rows"] if r["name"] in rows]
    data["rooms"] = [room for room in data["rooms"] if room["rows"]]
    racks = {rack["name"] for room in data["rooms"] for row in room["rows"] for rack in row["racks"]}
    data["loops"] = [lp for lp in data["loops"] if set(lp["racks"]) <= racks]
    if not data["rooms"]:
        msg = f"no rows {sorted(rows)} in site {site.site}"
        raise ValueError(msg)
    return SiteConfig.model_validate(data)


def row_topic_filters(site: SiteConfig, row: str, prefix: str = "dcim") -> list[str]:
    """The MQTT topic filters that carry everything of one row: the agents publish under
    ``<prefix>/<site>/<rack>/...`` (GPU agents, PDUs) and ``<prefix>/<site>/<row>/...`` (a row's CDUs)."""
    racks = [rack.name for _room, r, rack in site.locations() if r.name == row]
    return [f"{prefix}/{site.site}/{row}/#", *(f"{prefix}/{site.site}/{rack}/#" for rack in racks)]
