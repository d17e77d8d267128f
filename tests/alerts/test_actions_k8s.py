"""The Kubernetes driver against a local API-server stand-in that answers with the API's own shapes.

No cluster can run here, so a loopback HTTP server plays the API server's part of the exchange:
``GET /api/v1/nodes/{name}`` answers the Node object (tests/alerts/data/k8s_node.json, the shape
``kubectl get node -o json`` prints), ``PATCH`` with ``application/merge-patch+json`` applies
RFC 7386 and bumps ``metadata.resourceVersion``, a stale resourceVersion answers 409 with a
``Status`` object (reason Conflict), an unknown node 404 (NotFound), a missing token 401
(https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dcim.alerts.actions_driver import Action
from dcim.alerts.actions_k8s import CORDONED_ANNOTATION, KubernetesDriver
from dcim.errors import DriverError

NODE = json.loads((Path(__file__).parent / "data" / "k8s_node.json").read_text())
TOKEN = "test-token-0123456789"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class ApiServer:
    def __init__(self) -> None:
        self.nodes = {NODE["metadata"]["name"]: copy.deepcopy(NODE)}
        self.exchange: list[tuple[str, str, str | None, Any, int]] = []
        self.conflicts_to_inject = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _answer(self, code: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                ctype = self.headers.get("Content-Type")
                code, doc = api.handle(method, self.path, self.headers.get("Authorization"), ctype, body)
                api.exchange.append((method, self.path, ctype, body, code))
                self._answer(code, doc)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, method: str, path: str, auth: str | None, ctype: str | None, body: Any) -> tuple[int, Any]:
        if auth != f"Bearer {TOKEN}":
            return 401, status(401, "Unauthorized", "Unauthorized")
        prefix = "/api/v1/nodes/"
        if not path.startswith(prefix):
            return 404, status(404, "NotFound", "the server could not find the requested resource")
        name = path[len(prefix):]
        node = self.nodes.get(name)
        if node is None:
            return 404, status(404, "NotFound", f'nodes "{name}" not found')
        if method == "GET":
            return 200, node
        if ctype != "application/merge-patch+json":
            return 415, status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                            f"accepted media types include: application/merge-patch+json")
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if self.conflicts_to_inject or (rv is not None and rv != node["metadata"]["resourceVersion"]):
            if self.conflicts_to_inject:
                self.conflicts_to_inject -= 1
                node["metadata"]["resourceVersion"] = str(int(node["metadata"]["resourceVersion"]) + 1)
            return 409, status(409, "Conflict", f'Operation cannot be fulfilled on nodes "{name}": the object has '
                                                f"been modified; please apply your changes to the latest version "
                                                f"and try again")
        new = merge_patch(node, body)
        new["metadata"]["resourceVersion"] = str(int(node["metadata"]["resourceVersion"]) + 1)
        self.nodes[name] = new
        return 200, new

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api() -> Iterator[ApiServer]:
    s = ApiServer()
    yield s
    s.close()


def act(action: str, node: str = "A01-n01", rule: str = "GpuLost") -> Action:
    return Action(0, action, node, rule, "0123456789abcdef", "critical", "node", node, "firing", "planned",
                  f"dcim {rule} 0123456789ab: GPU 3 on {node} fell off the bus")


def test_drain_cordons_and_taints_noexecute_keeping_other_taints(api):
    d = KubernetesDriver(api.url, token=SecretStr(TOKEN))
    note = d.apply(act("drain"))
    node = api.nodes["A01-n01"]
    assert node["spec"]["unschedulable"] is True
    assert node["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu-health", "value": "GpuLost", "effect": "NoExecute"}]
    assert node["metadata"]["annotations"][CORDONED_ANNOTATION].startswith("dcim GpuLost ")
    assert node["metadata"]["labels"] == NODE["metadata"]["labels"]  # a merge patch leaves the rest alone
    assert "unschedulable=True" in note and "NoExecute" in note
    methods = [(m, c) for m, _p, c, _b, _code in api.exchange]
    assert methods == [("GET", None), ("PATCH", "application/merge-patch+json")]
    assert api.exchange[1][3]["metadata"]["resourceVersion"] == "81234"


def test_drain_is_idempotent_and_cordon_does_not_weaken_it(api):
    d = KubernetesDriver(api.url, token=SecretStr(TOKEN))
    d.apply(act("drain"))
    n = len(api.exchange)
    assert d.apply(act("drain")).startswith("already cordoned")
    assert d.apply(act("cordon")).startswith("already cordoned")
    assert [m for m, *_ in api.exchange[n:]] == ["GET", "GET"]


def test_resume_removes_our_taint_and_uncordons(api):
    d = KubernetesDriver(api.url, token=SecretStr(TOKEN))
    d.apply(act("cordon"))
    assert api.nodes["A01-n01"]["spec"]["taints"][-1]["effect"] == "NoSchedule"
    d.apply(act("resume"))
    node = api.nodes["A01-n01"]
    assert "unschedulable" not in node["spec"]
    assert node["spec"]["taints"] == NODE["spec"]["taints"]
    assert CORDONED_ANNOTATION not in node["metadata"]["annotations"]


def test_an_operators_cordon_stays(api):
    api.nodes["A01-n01"]["spec"]["unschedulable"] = True  # kubectl cordon by a person
    d = KubernetesDriver(api.url, token=SecretStr(TOKEN))
    d.apply(act("drain"))
    assert CORDONED_ANNOTATION not in api.nodes["A01-n01"]["metadata"]["annotations"]
    note = d.apply(act("resume"))
    assert "left cordoned" in note
    node = api.nodes["A01-n01"]
    assert node["spec"]["unschedulable"] is True
    assert all(t["key"] != "nvidia.com/gpu-health" for t in node["spec"]["taints"])


def test_a_conflict_reads_again(api):
    api.conflicts_to_inject = 1
    d = KubernetesDriver(api.url, token=SecretStr(TOKEN))
    d.apply(act("drain"))
    assert [code for *_x, code in api.exchange] == [200, 409, 200, 200]
    assert api.nodes["A01-n01"]["spec"]["unschedulable"] is True


def test_errors_name_the_answer(api):
    with pytest.raises(DriverError, match=r"HTTP 404 NotFound: nodes \"Z99-n01\" not found"):
        KubernetesDriver(api.url, token=SecretStr(TOKEN)).apply(act("drain", node="Z99-n01"))
    with pytest.raises(DriverError, match="HTTP 401 Unauthorized") as err:
        KubernetesDriver(api.url, token=SecretStr("wrong")).apply(act("drain"))
    assert "wrong" not in str(err.value)
    assert TOKEN not in repr(KubernetesDriver(api.url, token=SecretStr(TOKEN)))


def test_node_names_map_site_names_to_the_clusters(api):
    api.nodes["gpu-a01-1.example"] = merge_patch(NODE, {"metadata": {"name": "gpu-a01-1.example"}})
    d = KubernetesDriver(api.url, token=SecretStr(TOKEN), node_names={"A01-n01": "gpu-a01-1.example"})
    d.apply(act("cordon"))
    assert api.nodes["gpu-a01-1.example"]["spec"]["unschedulable"] is True
    assert "unschedulable" not in api.nodes["A01-n01"]["spec"]
