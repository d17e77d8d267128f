"""``push`` against a local HTTP server that checks the requests follow Grafana's folder and dashboard API."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dcim.dashboards.build import context, dashboards
from dcim.dashboards.push import push
from dcim.errors import PushError

TOKEN = "glsa_test-secret-token-value"
ROOT = Path(__file__).resolve().parents[2]


class FakeGrafana:
    """Grafana's /api/folders and /api/dashboards/db, strict about what Grafana requires."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.errors: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                fake.requests.append((method, self.path, body))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"message": "Unauthorized"})
                status, answer = fake.route(method, self.path.split("?")[0], body)
                self._answer(status, answer)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/api/folders"):
            return 200, [{"id": i, "uid": f["uid"], "title": f["title"]} for i, f in enumerate(self.folders.values())]
        if (method, path) == ("POST", "/api/folders"):
            if not isinstance(body, dict) or not body.get("title"):
                return 400, {"message": "folder title missing"}
            if body.get("uid") in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
            return 200, {"id": len(self.folders), "uid": body["uid"], "title": body["title"]}
        if (method, path) == ("POST", "/api/dashboards/db"):
            dash = body.get("dashboard") if isinstance(body, dict) else None
            if not isinstance(dash, dict) or not dash.get("uid") or not dash.get("title"):
                return 400, {"message": "dashboard with uid and title required"}
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            if dash.get("id") is not None:
                self.errors.append(f"{dash['uid']}: id {dash['id']} sent; a new instance would not know it")
            old = self.dashboards.get(dash["uid"])
            if old is not None and body.get("overwrite") is not True:
                return 412, {"status": "version-mismatch", "message": "dashboard exists"}
            version = (old["version"] + 1) if old else 1
            self.dashboards[dash["uid"]] = {"dashboard": dash, "folderUid": body["folderUid"], "version": version}
            return 200, {"id": 1, "uid": dash["uid"], "url": f"/d/{dash['uid']}/x", "status": "success",
                         "version": version}
        return 404, {"message": "not found"}


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    g = FakeGrafana()
    g.thread.start()
    yield g
    g.server.shutdown()
    g.server.server_close()


ALL = dashboards(context())


def test_push_creates_the_folder_and_overwrites_each_dashboard(grafana: FakeGrafana) -> None:
    done = push(grafana.url, TOKEN, ALL, folder="DCIM", folder_uid="dcim")
    assert sorted(d.uid for d in done) == sorted(d["uid"] for d in ALL.values())
    assert grafana.folders == {"dcim": {"uid": "dcim", "title": "DCIM"}}
    assert [r[:2] for r in grafana.requests[:2]] == [("GET", "/api/folders"), ("POST", "/api/folders")]
    posts = [b for m, p, b in grafana.requests if p == "/api/dashboards/db"]
    assert len(posts) == len(ALL)
    assert all(b["overwrite"] is True and b["folderUid"] == "dcim" for b in posts)
    assert grafana.errors == []
    # Again: the folder is found, not created twice, and every dashboard gets a new version.
    grafana.requests.clear()
    again = push(grafana.url, TOKEN, ALL, folder="DCIM", folder_uid="dcim")
    assert ("POST", "/api/folders") not in [r[:2] for r in grafana.requests]
    assert {d.version for d in again} == {2}


def test_push_points_every_query_at_the_given_datasource(grafana: FakeGrafana) -> None:
    push(grafana.url, TOKEN, ALL, folder="DCIM", folder_uid="dcim", datasource_uid="prod-influx")
    text = json.dumps([d["dashboard"] for d in grafana.dashboards.values()])
    assert '"uid": "prod-influx"' in text
    assert context().cfg.datasource_uid not in text


def test_a_refused_token_is_a_clear_error_without_the_token(grafana: FakeGrafana) -> None:
    with pytest.raises(PushError) as err:
        push(grafana.url, "wrong-" + TOKEN, ALL, folder="DCIM", folder_uid="dcim")
    assert "401" in str(err.value) and TOKEN not in str(err.value)
    assert grafana.dashboards == {}


def test_an_unreachable_grafana_is_a_push_error() -> None:
    from servers import free_tcp_port

    with pytest.raises(PushError, match="folder"):
        push(f"http://127.0.0.1:{free_tcp_port()}", TOKEN, ALL, folder="DCIM", folder_uid="dcim", timeout_s=2)


def _cli(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcim.app.cli", "dashboards", "push", "--url", url, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_cli_push_takes_the_token_from_the_environment(grafana: FakeGrafana) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_TOKEN"}
    res = _cli(grafana.url, env)
    assert res.returncode == 2 and "error: environment variable GRAFANA_TOKEN is not set" in res.stderr
    res = _cli(grafana.url, {**env, "MY_TOKEN": TOKEN}, "--token-env", "MY_TOKEN", "--folder", "Ops",
               "--folder-uid", "ops", "--datasource-uid", "ds1")
    assert res.returncode == 0, res.stderr
    assert TOKEN not in res.stdout + res.stderr
    assert set(grafana.dashboards) == {d["uid"] for d in ALL.values()}
    assert grafana.folders == {"ops": {"uid": "ops", "title": "Ops"}}
    res = _cli(grafana.url, {**env, "GRAFANA_TOKEN": "nope"})
    assert res.returncode == 2 and "401" in res.stderr and "nope" not in res.stderr
