"""What a rule file declares about remediation: ``actions: [{do: drain, scope: node}]`` and the
check that a rule's alerts can name the nodes of the declared scope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from dcim import schema

Do = Literal["drain", "cordon", "webhook"]
Scope = Literal["node", "rack", "loop"]


class ActionSpec(BaseModel):
    """One declared remediation of a rule: what to do, to which nodes, and whether its resolve may resume them.

    - ``do``: ``drain`` (Slurm DRAIN; Kubernetes cordon plus a NoExecute taint), ``cordon`` (no new
      work: Slurm DRAIN; Kubernetes cordon plus a NoSchedule taint), ``webhook`` (tell the webhook
      drivers only; nothing is taken out).
    - ``scope``: ``node`` (the alert's node), ``rack`` (every node of the alert's rack, e.g. the rack of
      a tripped PDU feed), ``loop`` (every node of every rack the alert's coolant loop cools).
    - ``resume``: ``on_resolve`` (resume when the alert resolves, if the operator policy allows) or
      ``manual`` (the node stays out until an operator returns it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    do: Do
    scope: Scope = "node"
    resume: Literal["on_resolve", "manual"] = "on_resolve"


def check_scope(spec: ActionSpec, rule: Any) -> str | None:
    """Why ``rule``'s alerts cannot name the nodes of ``spec.scope``, or None when they can.

    The engine places an alert from its tags and the topology: a node gives its rack and loop, a
    rack its loop; nothing goes downwards except through the scope itself.
    """
    kind = getattr(rule, "kind", None)
    if kind == "energy_balance":
        tags: set[str] = {"loop"}
    else:
        meas = getattr(rule, "measurement", None)
        if meas is None or meas not in schema.MEASUREMENTS:
            return None  # the rule's own check reports the measurement
        by = getattr(rule, "by", None)
        tags = set(schema.MEASUREMENTS[meas].tags) | set(by or ())
        if by and kind in ("aggregate", "imbalance", "redundancy", "absent"):
            tags = set(by)  # grouped alerts keep only their group labels (and the place the topology adds)
        if "node" in tags:
            tags |= {"rack", "loop"}
        if "rack" in tags:
            tags.add("loop")
    if spec.scope in tags:  # a scope is named by the label of the same name
        return None
    return f"scope {spec.scope!r} needs alerts labelled with {spec.scope!r}; this rule's alerts carry {sorted(tags)}"

