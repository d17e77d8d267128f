"""Upload dashboards to Grafana through grafana-client: make sure the folder exists, then overwrite each dashboard.

The token is only ever handed to grafana-client's bearer-token auth; error messages name the URL,
the step and Grafana's status, never the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaException

from dcim.errors import PushError


@dataclass(frozen=True, slots=True)
class Pushed:
    """One dashboard Grafana accepted: its uid, the version Grafana stored and its URL path."""

    uid: str
    version: int | None
    url: str | None


def with_datasource_uid(data: Any, uid: str) -> Any:
    """A copy of dashboard JSON with every InfluxDB datasource reference pointing at ``uid``."""
    if isinstance(data, dict):
        out = {k: with_datasource_uid(v, uid) for k, v in data.items()}
        if out.get("type") == "influxdb" and "uid" in out and set(out) <= {"type", "uid"}:
            out["uid"] = uid
        return out
    if isinstance(data, list):
        return [with_datasource_uid(v, uid) for v in data]
    return data


#: What grafana-client raises: its own errors for HTTP answers, niquests' for the network (not wrapped).
_ERRORS = (GrafanaException, niquests.exceptions.RequestException)


def _fail(step: str, url: str, exc: Exception) -> PushError:
    status = getattr(exc, "status_code", None)
    if isinstance(exc, GrafanaException):
        detail = exc.message or type(exc).__name__
    else:
        detail = f"cannot reach Grafana ({type(exc).__name__})"
    return PushError(f"grafana at {url}: {step} failed" + (f" (HTTP {status})" if status else "") + f": {detail}")


def ensure_folder(api: GrafanaApi, url: str, title: str, uid: str) -> str:
    """The uid of the folder titled ``title`` (or with ``uid``), created when missing."""
    try:
        for folder in api.folder.get_all_folders() or []:
            if folder.get("uid") == uid or folder.get("title") == title:
                return str(folder["uid"])
        created = api.folder.create_folder(title, uid=uid)
    except _ERRORS as exc:
        raise _fail("folder lookup/creation", url, exc) from None
    return str(created.get("uid", uid))


def push(url: str, token: str, dashboards: Mapping[str, Mapping[str, Any]], *, folder: str, folder_uid: str,
         datasource_uid: str | None = None, timeout_s: float = 10.0) -> list[Pushed]:
    """Upload every dashboard into ``folder`` with overwrite, so older versions are replaced."""
    if not token:
        raise PushError("no Grafana token given (set the environment variable named by --token-env)")
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    target_uid = ensure_folder(api, url, folder, folder_uid)
    done = []
    for key, data in dashboards.items():
        body = dict(data)
        if datasource_uid:
            body = with_datasource_uid(body, datasource_uid)
        body["id"] = None  # Grafana matches on uid; an id from another instance would clash
        payload = {"dashboard": body, "folderUid": target_uid, "overwrite": True,
                   "message": "dcim dashboards push"}
        try:
            answer = api.dashboard.update_dashboard(payload)
        except _ERRORS as exc:
            raise _fail(f"upload of dashboard {key!r}", url, exc) from None
        done.append(Pushed(str(answer.get("uid", body.get("uid"))), answer.get("version"), answer.get("url")))
    return done
