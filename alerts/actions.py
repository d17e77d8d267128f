"""Remediation actions on alerts: the event-time planner with its share limit, and the runner.

A rule declares what happens to the nodes beneath an alert (``actions: [{do: drain, scope: node}]``,
``alerts.actions_spec``).
The planner turns alert transitions into per-node actions on event time, like the notifiers turn
them into pages: the same transitions always give the same actions, live or in a replay. It is
idempotent (a node already out is not taken out again; it comes back only when every alert that
holds it has resolved), rate-limited (never more than ``max_drained_share`` of the site's nodes out
at once; the rest are recorded as suppressed and taken out in order when room frees), and resumes
only when the alert resolves and the operator policy (``alerts.actions.resume``) allows it.
The runner hands planned actions to the drivers (Slurm, Kubernetes, signed webhook) on a worker
thread, reads back what they did, and counts it for /metrics; the drivers implement
``alerts.actions_driver``. See docs/failover.md.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from dcim.alerts.actions_driver import Action, Driver
from dcim.alerts.actions_k8s import make_kubernetes_driver
from dcim.alerts.actions_slurm import make_slurm_driver
from dcim.alerts.actions_spec import ActionSpec
from dcim.alerts.actions_webhook import make_webhook_driver
from dcim.alerts.notifiers import Dispatcher
from dcim.alerts.recording import format_time
from dcim.alerts.replay import format_text, transition_dict
from dcim.alerts.topology import Topology

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from dcim.config import ActionsConfig, SiteConfig

log = logging.getLogger(__name__)


def reason_text(rule: str, fingerprint: str, summary: str, *, limit: int = 200) -> str:
    """The reason a scheduler shows for the node: names the alert, its id and what it said.

    Kept to printable ASCII without quotes (Slurm stores it verbatim and ``scontrol`` splits on
    whitespace only inside its own quoting), and short enough for a ``sinfo -R`` column.
    """
    text = f"dcim {rule} {fingerprint[:12]}: {summary}".strip()
    text = "".join(c if 32 <= ord(c) < 127 and c not in "\"'`\\" else "?" if ord(c) >= 127 else " "
                   for c in text)
    return text[:limit]


@dataclass(slots=True)
class Policy:
    """The operator's limits (``alerts.actions`` in the site file)."""

    max_drained_share: float = 0.1
    resume: Literal["auto", "manual"] = "auto"
    resume_hold_s: float = 0.0

    @classmethod
    def from_config(cls, cfg: ActionsConfig) -> Policy:
        return cls(cfg.max_drained_share, cfg.resume, cfg.resume_hold_s)


@dataclass(slots=True)
class _Want:
    time_ns: int
    node: str
    fp: str
    do: str


@dataclass(slots=True)
class _Active:
    rule: str
    severity: str
    labels: dict[str, str]
    summary: str
    specs: list[tuple[ActionSpec, list[str], str]]  # spec, nodes, target


class Planner:
    """Alert transitions in, node actions out, on event time (see the module docstring)."""

    def __init__(self, rules: Iterable[Any], site: SiteConfig, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.topo = Topology(site)
        self.specs: dict[str, list[ActionSpec]] = {r.name: list(r.actions) for r in rules
                                                    if getattr(r, "actions", None)}
        self.rack_nodes: dict[str, list[str]] = {name: [n.name for n in rack.nodes]
                                                 for name, rack in self.topo.racks.items()}
        self.all_nodes = sorted(self.topo.node_rack)
        n = len(self.all_nodes)
        self.limit = max(1, math.floor(self.policy.max_drained_share * n + 1e-9)) if n else 0
        self.out: dict[str, str] = {}  # node -> drain | cordon, taken out by us
        self.holds: dict[str, dict[str, str]] = {}  # node -> alert fingerprint -> do
        self.active: dict[str, _Active] = {}  # alert fingerprint -> what it holds
        self.queue: list[_Want] = []  # suppressed by the share limit, oldest first
        self.resume_due: dict[str, int] = {}  # node -> event time its held resume is due
        self.held: set[str] = set()  # resolved, kept out by the policy until an operator releases them
        self.clock_ns: int | None = None
        # node -> the resolve that frees it (the resume's labels and reason come from it)
        self._last_resolve: dict[str, tuple[Any, _Active, ActionSpec, str]] = {}

    # -- scope -----------------------------------------------------------------------------

    def nodes_for(self, scope: str, labels: dict[str, str]) -> tuple[list[str], str]:
        """The nodes a scope covers for an alert's labels, and the scope's value (node, rack or loop name)."""
        if scope == "node":
            node = labels.get("node")
            return ([node] if node in self.topo.node_rack else []), node or ""
        if scope == "rack":
            rack = labels.get("rack") or self.topo.node_rack.get(labels.get("node", ""), "")
            return list(self.rack_nodes.get(rack, [])), rack
        loop = labels.get("loop") or self.topo.rack_loop.get(
            labels.get("rack") or self.topo.node_rack.get(labels.get("node", ""), ""), "")
        racks = self.topo.loops[loop].racks if loop in self.topo.loops else []
        return [n for r in racks for n in self.rack_nodes.get(r, [])], loop

    # -- planning --------------------------------------------------------------------------

    def plan(self, transitions: Iterable[Any]) -> list[Action]:
        """The actions these transitions call for, in order."""
        out: list[Action] = []
        for t in transitions:
            self._tick(t.time_ns, out)
            specs = self.specs.get(t.rule)
            if not specs:
                continue
            if t.state == "firing" and t.fingerprint not in self.active:
                self._fire(t, specs, out)
            elif t.state == "resolved" and t.fingerprint in self.active:
                self._resolve(t, out)
        return out

    def advance(self, time_ns: int) -> list[Action]:
        """Move event time with no transition: held resumes that fall due now."""
        out: list[Action] = []
        self._tick(time_ns, out)
        return out

    def release(self, node: str, time_ns: int) -> list[Action]:
        """An operator returned a held node: it no longer counts against the share limit."""
        out: list[Action] = []
        if node in self.held and not self.holds.get(node):
            self.held.discard(node)
            self.out.pop(node, None)
            self._fill(time_ns, out)
        return out

    def _tick(self, time_ns: int, out: list[Action]) -> None:
        if self.clock_ns is None or time_ns > self.clock_ns:
            self.clock_ns = time_ns
        for node, due in sorted(self.resume_due.items(), key=lambda kv: (kv[1], kv[0])):
            if due <= time_ns:
                del self.resume_due[node]
                self._resume(node, due, out, "resume hold passed")

    def _action(self, t: Any, a: _Active | None, action: str, node: str, spec: ActionSpec, target: str,
                status: str, time_ns: int | None = None, detail: str = "") -> Action:
        rule, sev, labels, summary = (a.rule, a.severity, a.labels, a.summary) if a else \
            (t.rule, t.severity, t.labels, t.summary)
        return Action(time_ns if time_ns is not None else t.time_ns, action, node, rule, t.fingerprint, sev,
                      spec.scope, target, t.state if t is not None else "resolved", status,
                      reason_text(rule, t.fingerprint, summary), dict(labels), summary, detail=detail)

    def _fire(self, t: Any, specs: list[ActionSpec], out: list[Action]) -> None:
        resolved_specs = []
        for spec in specs:
            nodes, target = self.nodes_for(spec.scope, t.labels)
            resolved_specs.append((spec, nodes, target))
        a = self.active[t.fingerprint] = _Active(t.rule, t.severity, dict(t.labels), t.summary, resolved_specs)
        for spec, nodes, target in resolved_specs:
            for node in nodes:
                if spec.do == "webhook":
                    out.append(self._action(t, a, "webhook", node, spec, target, "planned"))
                    continue
                self.holds.setdefault(node, {})[t.fingerprint] = spec.do
                self.resume_due.pop(node, None)
                if node in self.held:
                    self.held.discard(node)  # held out already; this alert holds it now
                if node in self.out:
                    if self.out[node] == "cordon" and spec.do == "drain":
                        self.out[node] = "drain"
                        out.append(self._action(t, a, "drain", node, spec, target, "planned"))
                    continue  # idempotent: already out for another alert
                if len(self.out) >= self.limit:
                    self.queue.append(_Want(t.time_ns, node, t.fingerprint, spec.do))
                    out.append(self._action(t, a, spec.do, node, spec, target, "suppressed",
                                            detail=f"share limit: {len(self.out)} of {len(self.all_nodes)} nodes "
                                                   f"out, at most {self.limit}"))
                    continue
                self.out[node] = spec.do
                out.append(self._action(t, a, spec.do, node, spec, target, "planned"))

    def _resolve(self, t: Any, out: list[Action]) -> None:
        a = self.active.pop(t.fingerprint)
        self.queue = [w for w in self.queue if w.fp != t.fingerprint]
        for spec, nodes, target in a.specs:
            for node in nodes:
                if spec.do == "webhook":
                    out.append(self._action(t, a, "webhook", node, spec, target, "planned"))
                    continue
                holds = self.holds.get(node, {})
                holds.pop(t.fingerprint, None)
                if holds or node not in self.out:
                    continue  # another alert still holds it, or it was never taken out (suppressed)
                self.holds.pop(node, None)
                if spec.resume == "manual" or self.policy.resume == "manual":
                    self.held.add(node)
                    why = "rule resumes manually" if spec.resume == "manual" else "policy resume: manual"
                    out.append(self._action(t, a, "resume", node, spec, target, "held",
                                            detail=f"{why}; an operator returns the node"))
                elif self.policy.resume_hold_s > 0:
                    self.resume_due[node] = t.time_ns + int(self.policy.resume_hold_s * 1e9)
                    self._last_resolve[node] = (t, a, spec, target)
                else:
                    self._last_resolve[node] = (t, a, spec, target)
                    self._resume(node, t.time_ns, out, "")
        self._fill(t.time_ns, out)

    def _resume(self, node: str, time_ns: int, out: list[Action], detail: str) -> None:
        if node not in self.out or self.holds.get(node):
            return
        t, a, spec, target = self._last_resolve.pop(node)
        del self.out[node]
        out.append(self._action(t, a, "resume", node, spec, target, "planned", time_ns=time_ns, detail=detail))
        self._fill(time_ns, out)

    def _fill(self, time_ns: int, out: list[Action]) -> None:
        """Take out suppressed nodes, oldest first, while the share limit has room."""
        keep: list[_Want] = []
        for w in self.queue:
            a = self.active.get(w.fp)
            if a is None:
                continue
            if w.node in self.out:
                continue  # another alert took it out meanwhile
            if len(self.out) >= self.limit:
                keep.append(w)
                continue
            spec, _nodes, target = next((s, n, tg) for s, n, tg in a.specs if w.node in n and s.do == w.do)
            self.out[w.node] = w.do
            stub = _Stub(time_ns, a.rule, a.severity, a.labels, a.summary, w.fp, "firing")
            out.append(self._action(stub, a, w.do, w.node, spec, target, "planned",
                                    detail="room under the share limit"))
        self.queue = keep


@dataclass(frozen=True, slots=True)
class _Stub:
    """The fields of a transition the planner reads, for actions that fall due later."""

    time_ns: int
    rule: str
    severity: str
    labels: dict[str, str]
    summary: str
    fingerprint: str
    state: str


def plan_actions(transitions: Sequence[Any], rules: Iterable[Any], site: SiteConfig,
                 policy: Policy | None = None, *, end_ns: int | None = None) -> list[Action]:
    """Every action a finished run of transitions calls for (replay, what-if, the incident report)."""
    p = Planner(rules, site, policy)
    out = p.plan(transitions)
    if end_ns is not None:
        out += p.advance(end_ns)
    return out


# --- timeline and what-if -------------------------------------------------------------------------


def timeline_text(transitions: Sequence[Any], actions: Sequence[Action]) -> str:
    """The replay timeline (``alerts.replay.format_text``) with each action on its own line, in time order.

    An action comes right after the transition that called for it (same event time, later in the sort).
    """
    lines = format_text(transitions).splitlines()
    rows = [(t.time_ns, 0, i, line) for i, (t, line) in enumerate(zip(transitions, lines, strict=True))]
    rows += [(a.time_ns, 1, i, a.text()) for i, a in enumerate(actions)]
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return "".join(r[3] + "\n" for r in rows)


def plan_per_transition(transitions: Sequence[Any], rules: Iterable[Any], site: SiteConfig,
                        policy: Policy | None = None, *, end_ns: int | None = None
                        ) -> tuple[list[list[Action]], list[Action]]:
    """The actions each transition called for (same order as ``plan_actions``), and those that fell due
    after the last one (a resume hold that ran out before ``end_ns``)."""
    p = Planner(rules, site, policy)
    per = [p.plan([t]) for t in transitions]
    tail = p.advance(end_ns) if end_ns is not None else []
    return per, tail


def timeline_json(transitions: Sequence[Any], per: Sequence[Sequence[Action]], tail: Sequence[Action] = ()) -> str:
    """JSON lines as ``alerts.replay.format_json`` writes them; a transition that called for actions gets
    an ``actions`` key with their payloads, and actions due after the last transition a closing
    ``{"actions": [...]}`` line. Every other key stays as it is for existing consumers."""
    def payloads(acts: Sequence[Action]) -> list[dict[str, Any]]:
        return [{**a.payload(), "time_ns": a.time_ns, "detail": a.detail} for a in acts]

    rows = []
    for t, acts in zip(transitions, per, strict=True):
        d = transition_dict(t)
        if acts:
            d["actions"] = payloads(acts)
        rows.append(json.dumps(d, sort_keys=True, separators=(",", ":")))
    if tail:
        rows.append(json.dumps({"actions": payloads(tail)}, sort_keys=True, separators=(",", ":")))
    return "".join(r + "\n" for r in rows)


@dataclass(slots=True)
class Drains:
    """What one rule set took out of the scheduler over a run: nodes, node-seconds out, suppressed."""

    nodes: dict[str, list[str]]  # node -> the rules that drained or cordoned it
    node_s: float
    suppressed: int
    held: int


def drains(actions: Sequence[Action], end_ns: int | None) -> Drains:
    out_since: dict[str, int] = {}
    nodes: dict[str, list[str]] = {}
    node_ns = 0
    suppressed = held = 0
    last = end_ns if end_ns is not None else max((a.time_ns for a in actions), default=0)
    for a in actions:
        if a.status == "suppressed":
            suppressed += 1
        elif a.status == "held":
            held += 1
        elif a.status == "planned" and a.action in ("drain", "cordon"):
            if a.rule not in nodes.setdefault(a.node, []):
                nodes[a.node].append(a.rule)
            out_since.setdefault(a.node, a.time_ns)
        elif a.status == "planned" and a.action == "resume" and a.node in out_since:
            node_ns += a.time_ns - out_since.pop(a.node)
    node_ns += sum(max(0, last - t) for t in out_since.values())
    return Drains(dict(sorted(nodes.items())), node_ns / 1e9, suppressed, held)


def compare_drains(a: Sequence[Action], b: Sequence[Action], *, a_name: str = "A", b_name: str = "B",
                   end_ns: int | None = None) -> dict[str, Any]:
    """What a rule change would have drained: nodes only one side took out, and the totals of each."""
    da, db = drains(a, end_ns), drains(b, end_ns)
    return {
        "a": {"rules": a_name, "nodes": da.nodes, "node_s": round(da.node_s, 3), "suppressed": da.suppressed,
              "held": da.held},
        "b": {"rules": b_name, "nodes": db.nodes, "node_s": round(db.node_s, 3), "suppressed": db.suppressed,
              "held": db.held},
        "only_a": sorted(set(da.nodes) - set(db.nodes)),
        "only_b": sorted(set(db.nodes) - set(da.nodes)),
    }


def format_drains(cmp: dict[str, Any]) -> str:
    """The drain half of ``dcim replay --compare``."""
    lines = ["what-if: drains"]
    for side in ("a", "b"):
        d = cmp[side]
        lines.append(f"  {side.upper()} {d['rules']}: {len(d['nodes'])} nodes out, {d['node_s']:.0f} node-s, "
                     f"{d['suppressed']} suppressed by the share limit, {d['held']} held for an operator")
    for key, label in (("only_a", "only A drains"), ("only_b", "only B drains")):
        side = cmp["a" if key == "only_a" else "b"]
        for node in cmp[key]:
            lines.append(f"  {label} {node} ({', '.join(side['nodes'][node])})")
    if not cmp["only_a"] and not cmp["only_b"]:
        lines.append("  both drain the same nodes")
    return "\n".join(lines) + "\n"


# --- drivers ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ActionMetrics:
    """Counters for /metrics: actions taken, failed, suppressed by the share limit; nodes out now."""

    taken: Any
    failed: Any
    suppressed: Any
    nodes_out: Any

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> ActionMetrics:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            Counter("dcim_actions_taken_total", "Remediation actions a driver carried out.",
                    ["action", "driver"], registry=reg),
            Counter("dcim_actions_failed_total", "Remediation actions a driver could not carry out.",
                    ["action", "driver"], registry=reg),
            Counter("dcim_actions_suppressed_total",
                    "Node actions held back by the share limit (alerts.actions.max_drained_share).",
                    ["action"], registry=reg),
            Gauge("dcim_actions_nodes_out", "Nodes the alert actions hold out of the scheduler now.", registry=reg),
        )


class _Executor:
    """The notifier-shaped half of the runner: runs on a notifier worker thread (alerts.notifiers.Dispatcher)."""

    name = "actions"

    def __init__(self, runner: ActionRunner) -> None:
        self.runner = runner

    def notify(self, actions: Sequence[Action], now_s: float) -> None:
        for a in actions:
            self.runner.execute(a)

    def tick(self, now_s: float) -> None:
        self.runner.retry()

    def close(self) -> None:
        for d in self.runner.drivers:
            close = getattr(d, "close", None)
            if close is not None:
                close()


class ActionRunner:
    """Plans actions from transitions (synchronously, on event time) and executes them on a worker thread.

    ``plan`` returns the planned/suppressed/held actions at once (the caller records them with the
    alert transitions); the drivers' outcomes (``done``/``failed``) are collected for ``take_outcomes``.
    A failed action is retried on the worker's tick up to ``retries`` times (drivers are idempotent).
    """

    def __init__(self, planner: Planner, drivers: Sequence[Driver], *, registry: CollectorRegistry | None = None,
                 dry_run: bool = False, retries: int = 5, clock: Callable[[], float] = time.time,
                 threaded: bool = True, keep_history: bool = False) -> None:
        self.planner = planner
        #: every planned, suppressed and held action, when asked to keep them (the demo's report)
        self.history: list[Action] | None = [] if keep_history else None
        self.drivers = list(drivers)
        self.dry_run = dry_run
        self.retries = retries
        self.metrics = ActionMetrics.create(registry)
        self.outcomes: list[Action] = []
        self._outcomes_lock = threading.Lock()  # the worker appends, the observer takes
        self._failed: list[tuple[Action, Driver, int]] = []
        self._dispatcher = None
        if threaded:
            self._dispatcher = Dispatcher([_Executor(self)], clock=clock)  # type: ignore[list-item]

    def plan(self, transitions: Sequence[Any]) -> list[Action]:
        acts = self.planner.plan(transitions)
        self._after_plan(acts)
        return acts

    def advance(self, time_ns: int) -> list[Action]:
        acts = self.planner.advance(time_ns)
        self._after_plan(acts)
        return acts

    def _after_plan(self, acts: list[Action]) -> None:
        if self.history is not None:
            self.history.extend(acts)
        for a in acts:
            if a.status == "suppressed":
                self.metrics.suppressed.labels(a.action).inc()
        self.metrics.nodes_out.set(len(self.planner.out))
        due = [a for a in acts if a.status == "planned"]
        if not due:
            return
        if self._dispatcher is not None:
            self._dispatcher.submit(due)  # type: ignore[arg-type]
        else:
            for a in due:
                self.execute(a)

    def _drivers_for(self, a: Action) -> list[Driver]:
        if a.action == "webhook":
            return [d for d in self.drivers if d.name == "webhook"]
        return self.drivers

    def execute(self, a: Action) -> None:
        for d in self._drivers_for(a):
            self._run(a, d, 0)

    def _run(self, a: Action, d: Driver, attempt: int) -> None:
        if self.dry_run:
            self._outcome(replace(a, status="skipped", driver=d.name, detail="dry run"))
            return
        try:
            note = d.apply(a)
        except Exception as exc:  # a driver failure must not stop the others
            detail = f"{type(exc).__name__}: {exc}"[:300]
            log.error("action %s %s via %s failed (attempt %d): %s", a.action, a.node, d.name, attempt + 1, detail)
            self.metrics.failed.labels(a.action, d.name).inc()
            self._outcome(replace(a, status="failed", driver=d.name, detail=detail))
            if attempt < self.retries:
                self._failed.append((a, d, attempt + 1))
            return
        self.metrics.taken.labels(a.action, d.name).inc()
        self._outcome(replace(a, status="done", driver=d.name, detail=note))
        log.info("action %s %s via %s: %s", a.action, a.node, d.name, note)

    def _outcome(self, a: Action) -> None:
        with self._outcomes_lock:
            self.outcomes.append(a)

    def retry(self) -> None:
        failed, self._failed = self._failed, []
        for a, d, attempt in failed:
            self._run(a, d, attempt)

    def take_outcomes(self) -> list[Action]:
        with self._outcomes_lock:
            out, self.outcomes = self.outcomes, []
        return out

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self._dispatcher.flush(timeout_s) if self._dispatcher is not None else True

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close()
        else:
            _Executor(self).close()


def make_drivers(cfg: ActionsConfig) -> list[Driver]:
    """Drivers from ``alerts.actions.drivers``; secrets are resolved now (SecretError names a missing one)."""
    out: list[Driver] = []
    for d in cfg.drivers:
        if d.kind == "slurm":
            out.append(make_slurm_driver(d))
        elif d.kind == "kubernetes":
            out.append(make_kubernetes_driver(d))
        elif d.kind == "webhook":
            out.append(make_webhook_driver(d))
        else:
            out.append(LogDriver())
    return out


class LogDriver:
    """Writes each action to the log and does nothing else (a dry run that still shows in /metrics)."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("dcim.actions")

    def apply(self, action: Action) -> str:
        self.logger.warning("%s", action.text())
        return "logged"


class MemoryScheduler:
    """A scheduler held in memory: node states as Slurm names them (IDLE, IDLE+DRAIN), for the demo's
    simulated hall and for trying a rule pack without a cluster. ``notes`` (the demo's alert board)
    gets one line per change."""

    name = "scheduler"

    def __init__(self, notes: list[tuple[int, str]] | None = None) -> None:
        self.states: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        self.log: list[tuple[int, str, str, str]] = []  # (event time, action, node, rule)
        self.notes = notes

    def apply(self, action: Action) -> str:
        before = self.states.get(action.node, "IDLE")
        if action.action in ("drain", "cordon"):
            after = "IDLE+DRAIN"
            self.reasons[action.node] = action.reason
        elif action.action == "resume":
            after = "IDLE"
            self.reasons.pop(action.node, None)
        else:
            return "nothing to do"
        self.states[action.node] = after
        if before != after:
            self.log.append((action.time_ns, action.action, action.node, action.rule))
            if self.notes is not None:
                self.notes.append((action.time_ns, f"{action.action.upper()} {action.node} for {action.rule} "
                                                   f"({action.scope} {action.target}): scheduler {before} -> {after}"))
        return f"{before} -> {after}"

    def summary_lines(self) -> list[str]:
        if not self.log:
            return ["  scheduler: no node drained"]
        lines = [f"  scheduler: {sum(a in ('drain', 'cordon') for _, a, _, _ in self.log)} drains, "
                 f"{sum(a == 'resume' for _, a, _, _ in self.log)} resumes; "
                 f"{sum('DRAIN' in st for st in self.states.values())} nodes drained at the end"]
        lines += [f"    {format_time(t)} {a} {node} ({rule})" for t, a, node, rule in self.log[:20]]
        return lines


def demo_runner(rules: Iterable[Any], site: SiteConfig, scheduler: Driver) -> ActionRunner:
    """The demo's runner: the site's policy, on whatever ``enabled`` says, with the given scheduler."""
    from prometheus_client import CollectorRegistry

    return ActionRunner(Planner(list(rules), site, Policy.from_config(site.alerts.actions)), [scheduler],
                        registry=CollectorRegistry(), keep_history=True)


def make_runner(rules: Iterable[Any], site: SiteConfig, *, registry: CollectorRegistry | None = None,
                drivers: Sequence[Driver] | None = None, threaded: bool = True) -> ActionRunner | None:
    """The runner for ``site.alerts.actions``, or None when actions are off or no rule declares any."""
    cfg = site.alerts.actions
    rules = list(rules)
    if not cfg.enabled or not any(getattr(r, "actions", None) for r in rules):
        return None
    planner = Planner(rules, site, Policy.from_config(cfg))
    drivers = list(drivers) if drivers is not None else make_drivers(cfg)
    if not drivers:
        log.warning("alerts.actions is enabled with no drivers: actions are planned and recorded, nothing is told")
    return ActionRunner(planner, drivers, registry=registry, dry_run=cfg.dry_run, threaded=threaded)
