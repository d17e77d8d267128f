"""Slurm driver for alert actions: drain and resume nodes through ``scontrol`` (or slurmrestd) and read the state back.

A drain sets ``State=DRAIN`` with a reason naming the alert (``scontrol update nodename=N state=drain
reason=...``, https://slurm.schedmd.com/scontrol.html): running jobs finish or checkpoint, no new job
lands. A resume (``state=resume``) clears DRAIN. Both are idempotent: the node's state is read first
and again afterwards. A node drained by someone else (its reason does not start with ``dcim ``) is
left alone both ways: we neither overwrite the operator's reason nor resume their drain.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from dcim.alerts.actions_driver import Action
from dcim.errors import DriverError

#: Reasons we set start with this, so a drain of our own is told from an operator's.
REASON_PREFIX = "dcim "

_STATE = re.compile(r"(?:^|\s)State=(\S+)")
_REASON = re.compile(r"(?:^|\s)Reason=(.*)$")
_REASON_STAMP = re.compile(r"\s\[[^\]@\s]*@[^\]]*\]\s*$")  # scontrol appends " [user@time]"


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node as Slurm reports it: base state and flags (``IDLE+DRAIN``), and the reason if any."""

    name: str
    state: str
    reason: str

    @property
    def flags(self) -> set[str]:
        return set(self.state.upper().rstrip("*~#!%$@^-").split("+"))

    @property
    def drained(self) -> bool:
        """DRAIN set: draining (jobs still running) or drained (idle)."""
        return "DRAIN" in self.flags or self.state.upper().startswith("DRAIN")

    @property
    def ours(self) -> bool:
        return self.reason.startswith(REASON_PREFIX)


def parse_show_node(text: str, name: str) -> NodeState:
    """The state and reason from one ``scontrol show node -o NAME`` line."""
    line = next((ln for ln in text.splitlines() if ln.startswith(f"NodeName={name} ")), None)
    if line is None:
        raise DriverError(f"scontrol show node {name}: no such node in the output")
    m = _STATE.search(line)
    if m is None:
        raise DriverError(f"scontrol show node {name}: no State= in {line[:200]!r}")
    r = _REASON.search(line)
    reason = _REASON_STAMP.sub("", r.group(1)).strip() if r else ""
    return NodeState(name, m.group(1), "" if reason == "(null)" else reason)


class SlurmDriver:
    """Drains and resumes through ``scontrol`` (see the module docstring)."""

    name = "slurm"

    def __init__(self, *, scontrol: str = "scontrol", slurm_conf: str | os.PathLike[str] | None = None,
                 node_names: dict[str, str] | None = None, timeout_s: float = 10.0,
                 run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> None:
        self.scontrol = scontrol
        self.env = dict(os.environ)
        if slurm_conf is not None:
            self.env["SLURM_CONF"] = str(slurm_conf)
        self.node_names = dict(node_names or {})
        self.timeout_s = timeout_s
        self._run = run

    def _scontrol(self, *args: str) -> str:
        cmd = [self.scontrol, *args]
        try:
            res = self._run(cmd, capture_output=True, text=True, timeout=self.timeout_s, env=self.env, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"{self.scontrol} {args[0]}: {exc}") from None
        if res.returncode != 0:
            msg = (res.stderr or res.stdout).strip()[:300]
            raise DriverError(f"{self.scontrol} {' '.join(args[:2])}: exit {res.returncode}: {msg}")
        return res.stdout

    def node(self, name: str) -> NodeState:
        """Read one node's state back (``scontrol show node -o NAME``)."""
        return parse_show_node(self._scontrol("show", "node", "-o", name), name)

    def apply(self, action: Action) -> str:
        name = self.node_names.get(action.node, action.node)
        before = self.node(name)
        if action.action in ("drain", "cordon"):
            if before.drained:
                who = "by us" if before.ours else f"by someone else ({before.reason!r}); left as it is"
                return f"already {before.state} {who}"
            self._scontrol("update", f"nodename={name}", "state=drain", f"reason={action.reason}")
            after = self.node(name)
            if not after.drained:
                raise DriverError(f"node {name} is {after.state} after the drain")
            return f"{before.state} -> {after.state}"
        if action.action == "resume":
            if not before.drained:
                return f"already {before.state}"
            if not before.ours:
                return f"drained by someone else ({before.reason!r}); left drained"
            self._scontrol("update", f"nodename={name}", "state=resume")
            after = self.node(name)
            if after.drained:
                raise DriverError(f"node {name} is {after.state} after the resume")
            return f"{before.state} -> {after.state}"
        return "nothing to do"


class SlurmRestDriver:
    """The same through slurmrestd: ``GET``/``POST /slurm/<version>/node/<name>`` with a JWT.

    Node updates over REST arrived in slurmrestd's v0.0.39 API (Slurm 23.02); the request body is
    ``{"state": ["DRAIN"], "reason": ...}`` and ``{"state": ["RESUME"]}``
    (https://slurm.schedmd.com/rest_api.html).
    """

    name = "slurm"

    def __init__(self, url: str, *, api: str = "v0.0.39", user: str | None = None, token: Any = None,
                 node_names: dict[str, str] | None = None, timeout_s: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self.base = url.rstrip("/") + f"/slurm/{api}/node/"
        headers = {}
        if user:
            headers["X-SLURM-USER-NAME"] = user
        if token is not None:
            headers["X-SLURM-USER-TOKEN"] = token.get_secret_value()
        self.client = client or httpx.Client(timeout=timeout_s)
        self.headers = headers
        self.node_names = dict(node_names or {})

    def __repr__(self) -> str:
        return f"SlurmRestDriver({self.base!r})"

    def node(self, name: str) -> NodeState:
        resp = self._call("GET", name)
        nodes = resp.get("nodes") or []
        if not nodes:
            raise DriverError(f"slurmrestd: no node {name!r}")
        n = nodes[0]
        state = n.get("state")
        flags = n.get("state_flags") or []
        if isinstance(state, list):
            parts = [str(s).upper() for s in state]
        else:
            parts = [str(state).upper(), *(str(f).upper() for f in flags)]
        return NodeState(name, "+".join(parts), str(n.get("reason") or ""))

    def _call(self, method: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            resp = self.client.request(method, self.base + name, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise DriverError(f"slurmrestd {method} node/{name}: {type(exc).__name__}") from None
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        errors = doc.get("errors") or []
        if resp.status_code >= 300 or errors:
            raise DriverError(f"slurmrestd {method} node/{name}: HTTP {resp.status_code} {errors or resp.text[:200]}")
        return doc

    def apply(self, action: Action) -> str:
        name = self.node_names.get(action.node, action.node)
        before = self.node(name)
        if action.action in ("drain", "cordon"):
            if before.drained:
                return f"already {before.state}" + ("" if before.ours else " by someone else; left as it is")
            self._call("POST", name, {"state": ["DRAIN"], "reason": action.reason})
        elif action.action == "resume":
            if not before.drained:
                return f"already {before.state}"
            if not before.ours:
                return f"drained by someone else ({before.reason!r}); left drained"
            self._call("POST", name, {"state": ["RESUME"]})
        else:
            return "nothing to do"
        after = self.node(name)
        if after.drained != (action.action != "resume"):
            raise DriverError(f"node {name} is {after.state} after the {action.action}")
        return f"{before.state} -> {after.state}"

    def close(self) -> None:
        self.client.close()


def make_slurm_driver(cfg: Any) -> SlurmDriver | SlurmRestDriver:
    """From an ``alerts.actions.drivers`` entry of kind slurm: slurmrestd when ``url`` is set, else scontrol."""
    if cfg.url:
        token = cfg.secret.resolve() if cfg.secret is not None else None
        return SlurmRestDriver(cfg.url, api=cfg.slurmrestd_api, user=cfg.slurm_user, token=token,
                               node_names=cfg.node_names, timeout_s=cfg.timeout_s)
    return SlurmDriver(scontrol=cfg.scontrol, slurm_conf=cfg.slurm_conf, node_names=cfg.node_names,
                       timeout_s=cfg.timeout_s)
