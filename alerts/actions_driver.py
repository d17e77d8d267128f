"""The driver contract of alert actions: the ``Action`` a driver is handed and the ``Driver`` protocol.

The planner (``alerts.actions``) makes actions; the drivers (``actions_slurm``, ``actions_k8s``,
``actions_webhook``) carry them out, need only this module, and raise ``dcim.errors.DriverError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from dcim.alerts.recording import format_time
from dcim.record import Record

#: The measurement actions are recorded in (alert timeline, recording, replay).
ACTION_MEASUREMENT = "alert_action"


@dataclass(frozen=True, slots=True)
class Action:
    """One action on one node at event time ``time_ns``, as planned and (later) as executed.

    ``status``: ``planned`` (to the drivers), ``suppressed`` (over the share limit: waiting for room),
    ``held`` (the alert resolved, the policy keeps the node out), ``done`` / ``failed`` (driver
    outcome), ``skipped`` (dry run).
    """

    time_ns: int
    action: str  # drain | cordon | resume | webhook
    node: str
    rule: str
    fingerprint: str
    severity: str
    scope: str
    target: str
    alert_state: str  # firing | resolved
    status: str
    reason: str
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    driver: str = ""
    detail: str = ""

    def to_record(self) -> Record:
        """The ``alert_action`` row: the timeline, the recording and Grafana read it."""
        tags = {"alertname": self.rule, "action": self.action, "node": self.node, "status": self.status}
        for k in ("site", "room", "row", "rack", "loop"):
            if self.labels.get(k):
                tags[k] = self.labels[k]
        if self.driver:
            tags["driver"] = self.driver
        fields: dict[str, Any] = {"scope": self.scope, "target": self.target, "alert_state": self.alert_state,
                                  "reason": self.reason, "fingerprint": self.fingerprint}
        if self.detail:
            fields["detail"] = self.detail
        return Record(ACTION_MEASUREMENT, tags, fields, self.time_ns)

    def payload(self) -> dict[str, Any]:
        """The action as JSON: what the webhook driver posts and ``dcim replay --format json`` prints."""
        return {"version": "dcim-action-1", "time": format_time(self.time_ns), "action": self.action,
                "node": self.node, "status": self.status, "reason": self.reason,
                "alert": {"name": self.rule, "severity": self.severity, "state": self.alert_state,
                          "fingerprint": self.fingerprint, "labels": dict(self.labels), "summary": self.summary},
                "scope": {"kind": self.scope, "target": self.target}}

    def text(self) -> str:
        """One timeline line."""
        extra = f" ({self.detail})" if self.detail else ""
        via = f" via {self.driver}" if self.driver else ""
        return (f"{format_time(self.time_ns)} ACTION   {self.action:<7} {self.node:<10} {self.status}{via}"
                f" [{self.rule} {self.scope}={self.target}]{extra}")


class Driver(Protocol):
    """Executes actions on one orchestrator; must be idempotent (an action may be retried)."""

    name: str

    def apply(self, action: Action) -> str: ...  # returns a short note of what was done / read back

