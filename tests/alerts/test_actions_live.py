"""Actions on the live path: the collector's observer plans them, writes alert_action records, serves the counters."""

from __future__ import annotations

import time
import urllib.request

from prometheus_client import CollectorRegistry

from dcim.alerts.live import make_observer
from dcim.config import ActionDriverConfig, ActionsConfig, named_site
from dcim.exporter import serve_metrics
from dcim.record import Record

NS = 1_000_000_000


def site_with_actions(**policy):
    site = named_site("h100-hall")
    site.alerts.actions = ActionsConfig(enabled=True, drivers=[ActionDriverConfig(kind="log")], **policy)
    return site


def gpu(node: str, lost: bool, t_ns: int) -> Record:
    return Record("gpu", {"rack": node[:3], "node": node, "gpu": "2"}, {"lost": lost}, t_ns)


def test_off_unless_enabled():
    obs = make_observer(named_site("h100-hall"), notifiers=[], registry=CollectorRegistry())
    try:
        assert obs.actions is None
    finally:
        obs.close()


def test_observer_writes_action_records_and_metrics_reach_the_metrics_endpoint():
    reg = CollectorRegistry()
    obs = make_observer(site_with_actions(), notifiers=[], registry=reg)
    server = serve_metrics(reg, "127.0.0.1", 0)
    try:
        t0 = (time.time_ns() // NS - 30) * NS  # recent: the ticker advances event time to the wall clock
        out = []
        for s in range(5):
            out += obs.observe([gpu("B03-n02", s >= 2, t0 + s * NS)])
        assert obs.flush(10)
        out += obs.observe([])
        acts = [(r.tags["action"], r.tags["node"], r.tags["status"], r.tags.get("driver"))
                for r in out if r.measurement == "alert_action"]
        assert acts == [("drain", "B03-n02", "planned", None), ("drain", "B03-n02", "done", "log")]
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            text = resp.read().decode()
        assert 'dcim_actions_taken_total{action="drain",driver="log"} 1.0' in text
        assert "dcim_actions_nodes_out 1.0" in text
        assert "dcim_actions_suppressed_total" in text and "dcim_actions_failed_total" in text
    finally:
        server.close()
        obs.close()


def test_a_resume_hold_falls_due_on_the_ticker():
    obs = make_observer(site_with_actions(resume_hold_s=20), notifiers=[], registry=CollectorRegistry())
    obs._stop.set()  # the test drives tick() itself
    try:
        t0 = (time.time_ns() // NS - 100) * NS
        out = []
        for s in range(8):
            out += obs.observe([gpu("B03-n02", 2 <= s < 5, t0 + s * NS)])
        assert [(r.tags["action"], r.tags["status"]) for r in out if r.measurement == "alert_action"] == [
            ("drain", "planned")]
        obs.tick(t0 + 20 * NS)  # 15 s after the resolve: still held
        assert [r for r in obs.observe([]) if r.measurement == "alert_action" and r.tags["action"] == "resume"] == []
        obs.tick(t0 + 26 * NS)
        assert obs.flush(10)
        recs = obs.observe([]) + obs.observe([])
        resumes = [r for r in recs if r.measurement == "alert_action" and r.tags["action"] == "resume"]
        assert [r.tags["status"] for r in resumes] == ["planned", "done"]
        assert resumes[0].time_ns == t0 + 25 * NS and resumes[0].fields["detail"] == "resume hold passed"
    finally:
        obs.close()


def test_after_a_restart_the_restored_alert_still_resumes_its_node(tmp_path):
    from dcim.alerts.actions import ActionRunner, MemoryScheduler, Planner, Policy
    from dcim.alerts.engine import Engine
    from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
    from dcim.alerts.live import LiveObserver

    site = named_site("h100-hall")
    rules = load_rules([DEFAULT_RULES_DIR])
    state = tmp_path / "alerts-state.json"
    sched = MemoryScheduler()
    t0 = 1_790_000_000 * NS
    now = [t0 / 1e9]

    def observer() -> LiveObserver:
        runner = ActionRunner(Planner(rules, site, Policy()), [sched], threaded=False)
        return LiveObserver(Engine(rules, site=site), [], ticker=False, actions=runner, state_path=state,
                            clock=lambda: now[0])

    first = observer()
    for s in range(4):
        first.observe([gpu("B03-n02", s >= 2, t0 + s * NS)])
    first.close()
    assert sched.states == {"B03-n02": "IDLE+DRAIN"}

    now[0] += 30  # the collector restarts half a minute later
    second = observer()
    try:
        assert [t.rule for t in second.restored] == ["GpuLost"]
        out = second.observe([gpu("B03-n02", True, t0 + 40 * NS)])
        acts = [(r.tags["action"], r.tags["status"]) for r in out if r.measurement == "alert_action"]
        assert acts == [("drain", "planned"), ("drain", "done")]  # re-asserted; the scheduler has it already
        assert sched.log == [(t0 + 2 * NS, "drain", "B03-n02", "GpuLost")]
        out = []
        for s in range(41, 44):
            out += second.observe([gpu("B03-n02", False, t0 + s * NS)])
        assert ("resume", "done") in [(r.tags["action"], r.tags["status"]) for r in out
                                      if r.measurement == "alert_action"]
        assert sched.states == {"B03-n02": "IDLE"}
    finally:
        second.close()
