"""Kubernetes driver for alert actions: cordon and taint a node through the API server, and undo it on resume.

A drain or cordon reads the Node (``GET /api/v1/nodes/{name}``), then sends one JSON merge patch
(``PATCH``, ``Content-Type: application/merge-patch+json``, RFC 7386) that sets
``spec.unschedulable: true`` (what ``kubectl cordon`` sets) and adds the taint
``nvidia.com/gpu-health=<alert rule>`` to ``spec.taints``: effect ``NoSchedule`` for cordon,
``NoExecute`` for drain (pods without a toleration are evicted by the taint manager). A merge
patch replaces the whole taints list, so the patch carries ``metadata.resourceVersion`` from the
read: a concurrent change answers 409 Conflict and the driver reads and patches again.
Resume removes our taint and uncordons only a node we cordoned (annotation ``dcim/cordoned``); a
node an operator cordoned stays cordoned.

API references: Node v1 https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/node-v1/,
patches https://kubernetes.io/docs/reference/using-api/api-concepts/ ("Patch and apply"),
taints https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/,
the Status object of errors https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/.
RBAC: ``nodes``: ``get``, ``patch`` (docs/failover.md has the ClusterRole).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from dcim.alerts.actions_driver import Action
from dcim.errors import DriverError

CORDONED_ANNOTATION = "dcim/cordoned"
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")


def taint_value(rule: str) -> str:
    """A valid label value (at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends)."""
    v = _LABEL_VALUE.sub("-", rule)[:63].strip("._-")
    return v or "alert"


class KubernetesDriver:
    """Cordons and taints through the API server (see the module docstring)."""

    name = "kubernetes"

    def __init__(self, url: str, *, token: SecretStr | None = None, ca_file: str | Path | None = None,
                 taint_key: str = "nvidia.com/gpu-health", node_names: dict[str, str] | None = None,
                 timeout_s: float = 10.0, client: httpx.Client | None = None, conflict_retries: int = 3) -> None:
        self.base = url.rstrip("/") + "/api/v1/nodes/"
        self.taint_key = taint_key
        self.node_names = dict(node_names or {})
        self.conflict_retries = conflict_retries
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = "Bearer " + token.get_secret_value()
        verify: Any = str(ca_file) if ca_file else True
        self.client = client or httpx.Client(timeout=timeout_s, verify=verify)
        self.headers = headers

    def __repr__(self) -> str:
        return f"KubernetesDriver({self.base!r})"

    def _request(self, method: str, name: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        try:
            resp = self.client.request(method, self.base + name, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DriverError(f"kubernetes {method} nodes/{name}: {type(exc).__name__}") from None
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        if resp.status_code >= 300 and resp.status_code != 409:
            msg = doc.get("message") if isinstance(doc, dict) else None
            raise DriverError(f"kubernetes {method} nodes/{name}: HTTP {resp.status_code} "
                              f"{doc.get('reason', '') if isinstance(doc, dict) else ''}: {msg or resp.text[:200]}")
        return resp.status_code, doc

    def node(self, name: str) -> dict[str, Any]:
        """The Node object as the API server has it now."""
        return self._request("GET", name)[1]

    def apply(self, action: Action) -> str:
        name = self.node_names.get(action.node, action.node)
        for _attempt in range(self.conflict_retries + 1):
            node = self.node(name)
            patch, note = self._patch_for(node, action)
            if patch is None:
                return note
            code, doc = self._request("PATCH", name, patch)
            if code == 409:
                continue  # changed since our read: read again
            return f"{note}; {self._describe(doc)}"
        raise DriverError(f"kubernetes PATCH nodes/{name}: still conflicting after {self.conflict_retries} retries")

    def _ours(self, taints: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((t for t in taints if t.get("key") == self.taint_key), None)

    def _patch_for(self, node: dict[str, Any], action: Action) -> tuple[dict[str, Any] | None, str]:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        taints = list(spec.get("taints") or [])
        ours = self._ours(taints)
        unschedulable = bool(spec.get("unschedulable"))
        annotations = meta.get("annotations") or {}
        rv = meta.get("resourceVersion")
        if action.action in ("drain", "cordon"):
            effect = "NoExecute" if action.action == "drain" else "NoSchedule"
            want = {"key": self.taint_key, "value": taint_value(action.rule), "effect": effect}
            if unschedulable and ours is not None and (ours.get("effect") == effect or effect == "NoSchedule"):
                return None, f"already cordoned with taint {self.taint_key}={ours.get('value')}:{ours.get('effect')}"
            rest = [t for t in taints if t.get("key") != self.taint_key]
            patch: dict[str, Any] = {"metadata": {"resourceVersion": rv}, "spec": {"unschedulable": True,
                                                                                   "taints": [*rest, want]}}
            if not unschedulable:
                patch["metadata"]["annotations"] = {CORDONED_ANNOTATION: action.reason[:250]}
            return patch, f"cordoned, taint {want['key']}={want['value']}:{effect}"
        if action.action == "resume":
            if ours is None and CORDONED_ANNOTATION not in annotations:
                return None, "not cordoned by us; left as it is"
            rest = [t for t in taints if t.get("key") != self.taint_key]
            patch = {"metadata": {"resourceVersion": rv}, "spec": {"taints": rest or None}}
            if CORDONED_ANNOTATION in annotations:
                patch["spec"]["unschedulable"] = None  # remove the field: schedulable (kubectl uncordon)
                patch["metadata"]["annotations"] = {CORDONED_ANNOTATION: None}
                return patch, "uncordoned, taint removed"
            return patch, "taint removed; cordoned by someone else, left cordoned"
        return None, "nothing to do"

    def _describe(self, node: dict[str, Any]) -> str:
        spec = node.get("spec") or {}
        ours = self._ours(list(spec.get("taints") or []))
        taint = f"{ours.get('key')}={ours.get('value')}:{ours.get('effect')}" if ours else "no taint"
        return f"read back unschedulable={bool(spec.get('unschedulable'))}, {taint}"

    def close(self) -> None:
        self.client.close()


def make_kubernetes_driver(cfg: Any) -> KubernetesDriver:
    """From an ``alerts.actions.drivers`` entry of kind kubernetes; the token is resolved now."""
    if not cfg.url:
        raise ValueError("a kubernetes action driver needs url (the API server)")
    token = cfg.secret.resolve() if cfg.secret is not None else None
    return KubernetesDriver(cfg.url, token=token, ca_file=cfg.ca_file, taint_key=cfg.taint_key,
                            node_names=cfg.node_names, timeout_s=cfg.timeout_s)
