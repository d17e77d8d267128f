"""The site topology as the alert engine needs it: places of devices, loops, PDU and rack ratings, GPU models."""

from __future__ import annotations

from typing import Any

from dcim.config import SiteConfig

#: Record tags that become alert labels (uuid and model are device attributes, not places).
LABEL_TAGS = ("site", "room", "row", "rack", "loop", "cdu", "pdu", "feed", "phase", "bank", "outlet", "node",
              "gpu", "xid", "sensor", "ups", "switch", "ifname", "component", "device", "host")
#: Labels that place an alert in the topology, outermost first; inhibition compares these.
SCOPE_TAGS = ("site", "room", "row", "loop", "rack", "pdu", "feed", "phase", "node", "gpu")

_LABEL_ORDER = {k: i for i, k in enumerate(LABEL_TAGS)}


def ordered(labels: dict[str, str]) -> dict[str, str]:
    """Labels outermost place first, then the device, then anything else by name (stable output)."""
    return dict(sorted(labels.items(), key=lambda kv: (_LABEL_ORDER.get(kv[0], len(_LABEL_ORDER)), kv[0])))


class Topology:
    """Lookups from the site configuration, prepared once: rack places, loops, PDUs, GPU models."""

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.rack_tags: dict[str, dict[str, str]] = {}
        self.rack_loop: dict[str, str] = {}
        self.node_rack: dict[str, str] = {}
        self.node_model: dict[str, Any] = {}
        self.pdus: dict[tuple[str, str], Any] = {}
        self.racks: dict[str, Any] = {}
        self.loops = {loop.name: loop for loop in site.loops}
        for room, row, rack in site.locations():
            self.rack_tags[rack.name] = {"site": site.site, "room": room.name, "row": row.name}
            self.racks[rack.name] = rack
            for node in rack.nodes:
                self.node_rack[node.name] = rack.name
                self.node_model[node.name] = site.gpu_models.get(node.gpu_model)
            for pdu in rack.pdus:
                self.pdus[(rack.name, pdu.name)] = pdu
        for loop in site.loops:
            for r in loop.racks:
                self.rack_loop[r] = loop.name
        self.loop_tags = {loop.name: site.loop_tags(loop) for loop in site.loops}

    def enrich(self, labels: dict[str, str]) -> dict[str, str]:
        """Fill the place of a device from the topology: rack from node, site/room/row and loop from rack."""
        rack = labels.get("rack")
        if rack is None and "node" in labels and labels["node"] in self.node_rack:
            rack = labels["rack"] = self.node_rack[labels["node"]]
        if rack is not None and rack in self.rack_tags:
            for k, v in self.rack_tags[rack].items():
                labels.setdefault(k, v)
            if rack in self.rack_loop:
                labels.setdefault("loop", self.rack_loop[rack])
        elif "loop" in labels and labels["loop"] in self.loop_tags:
            for k, v in self.loop_tags[labels["loop"]].items():
                labels.setdefault(k, v)
        return ordered(labels)

    def rating(self, name: str, tags: dict[str, str]) -> float | None:
        obj, _, attr = name.partition(".")
        rack = tags.get("rack") or self.node_rack.get(tags.get("node", ""))
        if obj == "pdu":
            pdu = self.pdus.get((rack or "", tags.get("pdu", "")))
            return getattr(pdu, attr) if pdu is not None else None
        if obj == "rack":
            r = self.racks.get(rack or "")
            return getattr(r, attr) if r is not None else None
        if obj == "loop":
            loop = self.loops.get(tags.get("loop") or self.rack_loop.get(rack or "", ""))
            return getattr(loop, attr) if loop is not None else None
        return None

    def gpu_default(self, ref: str, tags: dict[str, str]) -> float | None:
        spec = self.node_model.get(tags.get("node", ""))
        if spec is None:
            return None
        return getattr(spec, ref.partition(".")[2], None)
