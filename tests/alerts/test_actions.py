"""Alert actions: rule declarations, the event-time planner and its share limit, the runner, the webhook driver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from dcim.alerts.actions import ActionRunner, Planner, Policy, plan_actions, reason_text
from dcim.alerts.actions_driver import Action
from dcim.alerts.actions_slurm import parse_show_node
from dcim.alerts.actions_webhook import WebhookDriver
from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rule_file, load_rules
from dcim.alerts.notifiers import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from dcim.config import named_site
from dcim.errors import DriverError, RuleError
from dcim.record import Record

NS = 1_000_000_000
SITE = named_site("h100-hall")
RULES = load_rules([DEFAULT_RULES_DIR])


def run(steps: list[dict[str, Any]], policy: Policy | None = None) -> tuple[list[Any], list[Action], Planner]:
    """Feed one batch per second: ``lost`` GPUs, per-loop flow shares, ``ecc`` counters; plan as it goes."""
    engine = Engine(RULES, site=SITE)
    planner = Planner(RULES, SITE, policy or Policy(max_drained_share=0.5))
    transitions, actions = [], []
    gpus = {("A01-n01", "0")}
    for i, step in enumerate(steps):
        t = i * NS
        gpus |= set(step.get("lost", ()))
        recs = [Record("gpu", {"rack": n[:3], "node": n, "gpu": g},
                       {"lost": (n, g) in step.get("lost", ()), "ecc_dbe_volatile_total": step.get("ecc", {}).get(n, 0)},
                       t) for n, g in sorted(gpus)]
        for loop in SITE.loops:
            share = step.get("flow", {}).get(loop.name, 1.0)
            recs.append(Record("coolant_loop", SITE.loop_tags(loop), {"flow_lpm": loop.nominal_flow_lpm * share}, t))
        ts = engine.process(recs)
        transitions += ts
        actions += planner.plan(ts)
    return transitions, actions, planner


def brief(actions: list[Action]) -> list[tuple[int, str, str, str]]:
    return [(a.time_ns // NS, a.action, a.node, a.status) for a in actions]


def test_the_pack_declares_actions_for_the_hardware_faults():
    declared = {r.name: [(s.do, s.scope, s.resume) for s in r.actions] for r in RULES if r.actions}
    assert declared["GpuLost"] == [("drain", "node", "on_resolve")]
    assert declared["GpuEccDoubleBit"] == [("drain", "node", "manual")]
    assert declared["GpuRemappedRowsUncorrectable"] == [("drain", "node", "manual")]
    assert declared["LoopFlowLow"] == [("drain", "loop", "on_resolve")]
    assert declared["LoopLeak"] == [("drain", "loop", "manual")]
    assert declared["GpuHwThermalSlowdown"] == [("cordon", "node", "on_resolve")]


def test_a_scope_the_alerts_cannot_name_is_an_error(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("rules:\n  - name: PduHot\n    kind: state\n    measurement: pdu\n    field: load_state\n"
                 "    equals: overload\n    actions: [{do: drain, scope: node}]\n")
    with pytest.raises(RuleError) as err:
        load_rule_file(p)
    assert "PduHot" in str(err.value) and "actions[0].scope" in str(err.value) and "'node'" in str(err.value)
    p.write_text(p.read_text().replace("scope: node", "scope: rack"))
    assert load_rule_file(p)[0].actions[0].scope == "rack"
    p.write_text(p.read_text().replace("do: drain", "do: reboot"))
    with pytest.raises(RuleError, match="actions"):
        load_rule_file(p)


def test_gpu_lost_drains_its_node_at_the_firing_evaluation_and_resumes_on_resolve():
    steps = [{}] * 3 + [{"lost": {("A02-n03", "5")}}] * 4 + [{}] * 3
    transitions, actions, planner = run(steps)
    firing = next(t for t in transitions if t.rule == "GpuLost" and t.state == "firing")
    resolved = next(t for t in transitions if t.rule == "GpuLost" and t.state == "resolved")
    assert brief(actions) == [(3, "drain", "A02-n03", "planned"), (7, "resume", "A02-n03", "planned")]
    assert actions[0].time_ns == firing.time_ns and actions[1].time_ns == resolved.time_ns
    assert actions[0].reason.startswith(f"dcim GpuLost {firing.fingerprint[:12]}: GPU 5 on A02-n03")
    assert planner.out == {}


def test_two_alerts_on_one_node_drain_once_and_resume_after_both():
    a, b = ("A02-n03", "5"), ("A02-n03", "6")
    steps = [{}] + [{"lost": {a}}] * 2 + [{"lost": {a, b}}] * 2 + [{"lost": {b}}] * 2 + [{}] * 2
    _t, actions, _p = run(steps)
    assert brief(actions) == [(1, "drain", "A02-n03", "planned"), (7, "resume", "A02-n03", "planned")]


def test_share_limit_suppresses_then_fills_in_order_when_room_frees():
    # Both loops' flow meters read zero (a hall-wide sensor fault); 25 % of 32 nodes may be out.
    steps = [{}] + [{"flow": {"loop-a": 0.0, "loop-b": 0.0}}] * 12 + [{"flow": {"loop-b": 0.0}}] * 45
    _t, actions, planner = run(steps, Policy(max_drained_share=0.25))
    first = [a for a in actions if a.time_ns == actions[0].time_ns]
    assert planner.limit == 8
    assert sum(a.status == "planned" for a in first) == 8
    assert sum(a.status == "suppressed" for a in first) == 24
    assert all("share limit: 8 of 32 nodes out, at most 8" in a.detail for a in first if a.status == "suppressed")
    # loop-a recovers: its 8 nodes resume and 8 of loop-b's waiting nodes go out, oldest first.
    later = [a for a in actions if a.time_ns > actions[0].time_ns]
    planned = [a for a in later if a.status == "planned"]
    assert sorted(a.action for a in planned) == ["drain"] * 8 + ["resume"] * 8
    assert [a.node for a in planned if a.action == "drain"] == [f"B0{r}-n0{n}" for r in (1, 2) for n in range(1, 5)]
    out = 8
    for a in planned:  # one node back, one waiting node out: never over the limit
        out += 1 if a.action == "drain" else -1
        assert out <= 8
    assert all(a.node.startswith("B") for a in later if a.action == "drain")
    assert len(planner.out) == 8 and all(n.startswith("B") for n in planner.out)


def test_manual_resume_holds_the_node_until_an_operator_releases_it():
    steps = [{}] * 2 + [{"lost": {("A02-n03", "5")}}] * 2 + [{}] * 2
    _t, actions, planner = run(steps, Policy(max_drained_share=0.5, resume="manual"))
    assert brief(actions)[-1] == (4, "resume", "A02-n03", "held")
    assert "policy resume: manual" in actions[-1].detail
    assert planner.out == {"A02-n03": "drain"}  # still counts against the limit
    assert planner.release("A02-n03", 10 * NS) == [] and planner.out == {}


def test_a_rule_that_resumes_manually_holds_even_under_auto_policy():
    steps = [{}] * 2 + [{"ecc": {"A01-n01": 1}}] * 3
    transitions, actions, planner = run(steps)
    assert brief(actions) == [(2, "drain", "A01-n01", "planned")]
    resolved = [t for t in transitions if t.rule == "GpuEccDoubleBit" and t.state == "resolved"]
    assert resolved == []  # the 10 min window still holds it; a resolve would be "held" (next test)
    p = Planner(RULES, SITE, Policy())
    fire = next(t for t in transitions if t.rule == "GpuEccDoubleBit")
    p.plan([fire])
    from dataclasses import replace

    out = p.plan([replace(fire, state="resolved", previous="firing", time_ns=fire.time_ns + 600 * NS)])
    assert [(a.action, a.status) for a in out] == [("resume", "held")]
    assert "rule resumes manually" in out[0].detail


def test_resume_hold_waits_on_event_time_and_a_refire_cancels_it():
    steps = [{}] * 2 + [{"lost": {("A02-n03", "5")}}] * 2 + [{}] * 2 + [{"lost": {("A02-n03", "5")}}] * 2 + [{}] * 2
    transitions, actions, planner = run(steps, Policy(max_drained_share=0.5, resume_hold_s=30))
    assert brief(actions) == [(2, "drain", "A02-n03", "planned")]  # the re-fire cancelled the held resume
    last = max(t.time_ns for t in transitions)
    assert planner.advance(last + 29 * NS) == []
    (resume,) = planner.advance(last + 31 * NS)
    assert (resume.action, resume.status, resume.detail) == ("resume", "planned", "resume hold passed")


def test_plan_actions_is_deterministic():
    steps = [{}] + [{"flow": {"loop-a": 0.2}, "lost": {("B01-n01", "1")}}] * 15 + [{}] * 40
    transitions, actions, _p = run(steps)
    again = plan_actions(transitions, RULES, SITE, Policy(max_drained_share=0.5))
    assert again == actions
    # 50 % is 16 nodes: B01-n01 is out first, so loop-a's 16th node waits until B01-n01 resumes.
    assert [(a.action, a.node, a.status) for a in actions if a.node in ("A04-n04", "B01-n01")] == [
        ("drain", "B01-n01", "planned"), ("drain", "A04-n04", "suppressed"), ("resume", "B01-n01", "planned"),
        ("drain", "A04-n04", "planned"), ("resume", "A04-n04", "planned")]
    assert len(actions) == 35


def test_reason_text_is_plain_ascii_and_bounded():
    r = reason_text("GpuLost", "0123456789abcdef", 'GPU 5 on "A02" at 90 °C\n' + "x" * 400)
    assert r.startswith("dcim GpuLost 0123456789ab: GPU 5 on  A02  at 90 ?C ")
    assert len(r) == 200 and all(32 <= ord(c) < 127 for c in r)


def test_scontrol_show_node_is_parsed():
    line = ("NodeName=A01-n01 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 State=IDLE+DRAIN ThreadsPerCore=1 "
            "Partitions=gpu Reason=dcim GpuLost 46f9180a6215: GPU 3 fell off the bus [root@2026-12-02T11:43:40]")
    st = parse_show_node(line, "A01-n01")
    assert (st.state, st.reason, st.drained, st.ours) == (
        "IDLE+DRAIN", "dcim GpuLost 46f9180a6215: GPU 3 fell off the bus", True, True)
    st = parse_show_node("NodeName=A01-n02 State=MIXED Reason=(null)", "A01-n02")
    assert not st.drained and st.reason == ""
    with pytest.raises(DriverError, match="no such node"):
        parse_show_node(line, "A01-n02")


class _Flaky:
    name = "slurm"

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.calls: list[str] = []

    def apply(self, action: Action) -> str:
        self.calls.append(action.node)
        if self.fail:
            self.fail -= 1
            raise DriverError("slurmctld not answering")
        return "IDLE -> IDLE+DRAIN"


def test_runner_counts_retries_and_reports_outcomes():
    reg = CollectorRegistry()
    planner = Planner(RULES, SITE, Policy(max_drained_share=0.5))
    drv = _Flaky(fail=1)
    runner = ActionRunner(planner, [drv], registry=reg, threaded=False)
    _t, _a, _p = None, None, None
    transitions, _actions, _planner = run([{}] * 2 + [{"lost": {("A02-n03", "5")}}] * 2)
    planned = runner.plan(transitions)
    assert [a.status for a in planned] == ["planned"]
    assert [(a.status, a.detail) for a in runner.take_outcomes()] == [("failed", "DriverError: slurmctld not answering")]
    runner.retry()
    assert [a.status for a in runner.take_outcomes()] == ["done"]
    assert drv.calls == ["A02-n03", "A02-n03"]
    sample = reg.get_sample_value
    assert sample("dcim_actions_failed_total", {"action": "drain", "driver": "slurm"}) == 1
    assert sample("dcim_actions_taken_total", {"action": "drain", "driver": "slurm"}) == 1
    assert sample("dcim_actions_nodes_out") == 1


def test_dry_run_calls_no_driver():
    drv = _Flaky(fail=0)
    runner = ActionRunner(Planner(RULES, SITE), [drv], dry_run=True, threaded=False)
    transitions, _a, _p = run([{}] * 2 + [{"lost": {("A02-n03", "5")}}] * 2)
    runner.plan(transitions)
    assert drv.calls == [] and [a.status for a in runner.take_outcomes()] == ["skipped"]


class _Receiver:
    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.got: list[tuple[dict[str, str], bytes]] = []
        rx = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rx.got.append((dict(self.headers), body))
                self.send_response(rx.codes.pop(0) if rx.codes else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver([503])
    yield r
    r.close()


def test_webhook_driver_posts_the_action_payload_signed(receiver):
    transitions, actions, _p = run([{}] * 2 + [{"lost": {("A02-n03", "5")}}] * 2)
    d = WebhookDriver(receiver.url, secret=SecretStr("k3y"), backoff_s=0.0, clock=lambda: 1_790_000_000.0)
    assert d.apply(actions[0]) == "delivered"
    assert len(receiver.got) == 2  # the 503 was retried
    headers, body = receiver.got[-1]
    assert verify("k3y", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify("other", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    doc = json.loads(body)
    assert doc == actions[0].payload()
    assert (doc["action"], doc["node"], doc["alert"]["name"], doc["scope"]) == (
        "drain", "A02-n03", "GpuLost", {"kind": "node", "target": "A02-n03"})
    assert doc["alert"]["fingerprint"] == transitions[-1].fingerprint
    assert "k3y" not in repr(d)
    receiver.codes = [400]
    with pytest.raises(DriverError, match="not delivered"):
        d.apply(actions[0])


def test_rack_scope_takes_out_the_rack_of_a_tripped_feed(tmp_path):
    p = tmp_path / "feed.yaml"
    p.write_text("""rules:
  - name: FeedInputLost
    kind: threshold
    measurement: pdu_phase
    field: voltage_v
    op: "<"
    threshold: 100
    for: 5s
    actions: [{do: cordon, scope: rack}]
""")
    rules = load_rule_file(p)
    engine = Engine(rules, site=SITE)
    planner = Planner(rules, SITE, Policy(max_drained_share=0.5))
    acts = []
    for s in range(10):
        volts = 0.0 if s >= 2 else 230.0
        ts = engine.process([Record("pdu_phase", {"rack": "B02", "pdu": "pdu-a", "feed": "A", "phase": ph},
                                    {"voltage_v": volts}, s * NS) for ph in ("L1", "L2", "L3")])
        acts += planner.plan(ts)
    assert [(a.action, a.node, a.scope, a.target) for a in acts] == [
        ("cordon", f"B02-n0{i}", "rack", "B02") for i in range(1, 5)]
    assert acts[0].time_ns == 7 * NS  # 5 s `for` after the first low sample
    # Three phases alert, the rack goes out once.
    assert len({a.fingerprint for a in acts}) == 1


def test_slurmrestd_driver_reads_and_updates_through_the_v0039_node_endpoint():
    """Against a stand-in with the v0.0.39 shapes (GET/POST /slurm/v0.0.39/node/{name}; Slurm 23.02+):
    Debian 12's Slurm 22.05 has no node update over REST, so the real exchange is not run here."""
    import httpx

    from dcim.alerts.actions_slurm import SlurmRestDriver

    node = {"name": "A01-n01", "state": ["IDLE"], "reason": ""}
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path, req.headers.get("X-SLURM-USER-NAME"),
                     req.headers.get("X-SLURM-USER-TOKEN"), json.loads(req.content) if req.content else None))
        if req.method == "POST":
            body = json.loads(req.content)
            if body["state"] == ["DRAIN"]:
                node.update(state=["IDLE", "DRAIN"], reason=body["reason"])
            else:
                node.update(state=["IDLE"], reason="")
            return httpx.Response(200, json={"errors": [], "warnings": []})
        return httpx.Response(200, json={"nodes": [node], "errors": []})

    d = SlurmRestDriver("http://slurmrestd.test", user="dcim", token=SecretStr("jwt"),
                        client=httpx.Client(transport=httpx.MockTransport(handler)))
    transitions, actions, _p = run([{}] * 2 + [{"lost": {("A01-n01", "0")}}] * 2 + [{}] * 2)
    assert d.apply(actions[0]) == "IDLE -> IDLE+DRAIN"
    assert d.apply(actions[0]).startswith("already IDLE+DRAIN")
    assert d.apply(actions[1]) == "IDLE+DRAIN -> IDLE"
    posts = [s for s in seen if s[0] == "POST"]
    assert [p[4] for p in posts] == [{"state": ["DRAIN"], "reason": actions[0].reason}, {"state": ["RESUME"]}]
    assert all(s[1] == "/slurm/v0.0.39/node/A01-n01" and s[2:4] == ("dcim", "jwt") for s in seen)


def test_a_webhook_action_goes_to_the_webhook_drivers_only_on_fire_and_resolve(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text("""rules:
  - name: GpuLostTell
    kind: state
    measurement: gpu
    field: lost
    equals: true
    actions: [{do: webhook, scope: node}]
""")
    rules = load_rule_file(p)
    engine = Engine(rules, site=SITE)
    hook, sched = _Flaky(fail=0), _Flaky(fail=0)
    hook.name = "webhook"
    runner = ActionRunner(Planner(rules, SITE, Policy()), [sched, hook], threaded=False)
    planned = []
    for s in range(6):
        ts = engine.process([Record("gpu", {"rack": "A01", "node": "A01-n02", "gpu": "1"}, {"lost": 1 <= s < 3},
                                    s * NS)])
        planned += runner.plan(ts)
    assert [(a.action, a.alert_state, a.status) for a in planned] == [
        ("webhook", "firing", "planned"), ("webhook", "resolved", "planned")]
    assert hook.calls == ["A01-n02", "A01-n02"] and sched.calls == []
    assert runner.planner.out == {}  # nothing taken out, nothing counted against the limit


def test_the_failover_doc_examples_load(tmp_path):
    import re
    from pathlib import Path

    import yaml

    from dcim.config import AlertsConfig

    doc = (Path(__file__).resolve().parents[2] / "docs" / "failover.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    rule = next(b for b in blocks if "name: GpuLost" in b)
    p = tmp_path / "r.yaml"
    p.write_text("rules:\n" + rule)
    assert load_rule_file(p)[0].actions[0].do == "drain"
    policy = yaml.safe_load(next(b for b in blocks if b.startswith("alerts:")))
    cfg = AlertsConfig.model_validate(policy["alerts"])
    assert cfg.actions.enabled and cfg.actions.max_drained_share == 0.1
    drivers = [yaml.safe_load(b)[0] for b in blocks if b.lstrip().startswith("- kind:")]
    assert sorted(d["kind"] for d in drivers) == ["kubernetes", "slurm", "webhook"]
    for d in drivers:
        AlertsConfig.model_validate({"actions": {"drivers": [d]}})
