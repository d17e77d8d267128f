"""Alert state survives a restart: snapshot and restore as Prometheus restores `for` state
(ALERTS_FOR_STATE, --rules.alert.for-grace-period, --rules.alert.for-outage-tolerance)."""

from __future__ import annotations

import json

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.live import LiveObserver
from dcim.alerts.notifiers import WebhookNotifier, rfc3339
from dcim.alerts.rulefile import parse_rule
from dcim.config import named_site
from dcim.record import Record

NS = 1_000_000_000
MIN = 60
GPU0 = {"rack": "A01", "node": "A01-n01", "gpu": "0"}


@pytest.fixture(scope="module")
def site():
    return named_site("h100-hall")


def hot(for_="10m"):
    return parse_rule({"name": "Hot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                       "threshold": 85, "for": for_, "flap": None})


def gpu(t_s, temp):
    return Record("gpu", dict(GPU0), {"temp_c": float(temp)}, int(t_s * NS))


def feed(e, start_s, end_s, temp, step_s=60):
    out = []
    t = start_s
    while t <= end_s:
        out += e.process([gpu(t, temp)])
        t += step_s
    return out


def test_a_firing_alert_is_restored_firing_with_its_start_and_resolves_once(site):
    e = Engine([hot()], site=site, evaluation_interval_s=60)
    ts = feed(e, 0, 15 * MIN, 90) + e.advance(15 * MIN)
    fired = next(t for t in ts if t.state == "firing")
    snap = json.loads(json.dumps(e.snapshot()))  # through JSON, as the state file
    e2 = Engine([hot()], site=site, evaluation_interval_s=60)
    restored = e2.restore(snap, now_ns=17 * MIN * NS)
    assert [(t.previous, t.state, t.restored, t.fingerprint, t.starts_at_ns) for t in restored] == [
        ("firing", "firing", True, fired.fingerprint, fired.starts_at_ns)]
    ts2 = feed(e2, 17 * MIN, 30 * MIN, 90) + e2.advance(30 * MIN)
    assert ts2 == []  # no second pending/firing, no resolve
    ts3 = feed(e2, 31 * MIN, 32 * MIN, 70) + e2.advance(32 * MIN)
    assert [(t.previous, t.state, t.fingerprint, t.starts_at_ns) for t in ts3] == [
        ("firing", "resolved", fired.fingerprint, fired.starts_at_ns)]


def test_a_pending_alert_keeps_its_pending_time_and_the_outage_does_not_count(site):
    e = Engine([hot("30m")], site=site, evaluation_interval_s=60)
    feed(e, 0, 20 * MIN, 90)
    e2 = Engine([hot("30m")], site=site, evaluation_interval_s=60)
    assert e2.restore(e.snapshot(), now_ns=25 * MIN * NS) == []
    ts = feed(e2, 25 * MIN, 40 * MIN, 90)
    # 20 minutes pending before, 10 to go after the restart at 25m: fires at 35m
    assert [(t.time_ns // NS, t.state) for t in ts] == [(35 * MIN, "firing")]
    assert ts[0].starts_at_ns == 35 * MIN * NS


def test_a_pending_alert_due_within_the_grace_period_waits_for_it(site):
    e = Engine([hot("30m")], site=site, evaluation_interval_s=60)
    feed(e, 0, 25 * MIN, 90)
    e2 = Engine([hot("30m")], site=site, evaluation_interval_s=60)
    e2.restore(e.snapshot(), now_ns=26 * MIN * NS, grace_period_s=10 * MIN)
    ts = feed(e2, 26 * MIN, 40 * MIN, 90)
    assert [(t.time_ns // NS, t.state) for t in ts] == [(36 * MIN, "firing")]  # restart + grace


def test_nothing_is_restored_after_an_outage_longer_than_the_tolerance(site):
    e = Engine([hot()], site=site, evaluation_interval_s=60)
    feed(e, 0, 15 * MIN, 90)
    e2 = Engine([hot()], site=site, evaluation_interval_s=60)
    assert e2.restore(e.snapshot(), now_ns=(15 + 61) * MIN * NS, outage_tolerance_s=3600) == []
    assert e2.active() == []


def test_a_restored_pending_alert_whose_series_never_returns_is_dropped(site):
    e = Engine([hot("30m")], site=site, evaluation_interval_s=60)
    feed(e, 0, 10 * MIN, 90)
    e2 = Engine([hot("30m")], site=site, evaluation_interval_s=60)
    e2.restore(e.snapshot(), now_ns=11 * MIN * NS)
    assert [a.state for a in e2.active()] == ["pending"]
    e2.process([Record("gpu", {"rack": "A01", "node": "A01-n02", "gpu": "1"}, {"temp_c": 40.0}, 11 * MIN * NS)])
    e2.advance(20 * MIN * NS)
    assert e2.active() == []


class Pages:
    def __init__(self):
        self.bodies = []

    def client(self):
        import httpx

        def handler(request):
            self.bodies.append(json.loads(request.content))
            return httpx.Response(200)

        return httpx.Client(transport=httpx.MockTransport(handler))


def test_the_live_observer_saves_and_restores_so_a_restart_pages_nothing(site, tmp_path):
    state = tmp_path / "alerts-state.json"
    pages = Pages()
    clock = [15 * MIN]
    obs = LiveObserver(Engine([hot()], site=site, evaluation_interval_s=60),
                       [WebhookNotifier("http://127.0.0.1:1/x", client=pages.client())],
                       clock=lambda: clock[0], ticker=False, state_path=state)
    for t in range(0, 15 * MIN + 1, MIN):
        obs.observe([gpu(t, 90)])
    obs.tick(15 * MIN * NS + 1)
    obs.close()
    assert [a["status"] for b in pages.bodies for a in b["alerts"]] == ["firing"]
    saved = json.loads(state.read_text())
    assert [a["state"] for a in saved["alerts"]] == ["firing"]

    clock[0] = 16 * MIN
    obs2 = LiveObserver(Engine([hot()], site=site, evaluation_interval_s=60),
                        [WebhookNotifier("http://127.0.0.1:1/x", client=pages.client())],
                        clock=lambda: clock[0], ticker=False, state_path=state)
    assert [t.restored for t in obs2.restored] == [True]
    for t in range(16 * MIN, 25 * MIN, MIN):
        obs2.observe([gpu(t, 90)])
    obs2.observe([gpu(25 * MIN, 70), gpu(26 * MIN, 70)])
    obs2.close()
    # one page before the restart, then only its resolution: no second page
    assert [a["status"] for b in pages.bodies for a in b["alerts"]] == ["firing", "resolved"]


def test_a_damaged_state_file_starts_clean(site, tmp_path, caplog):
    state = tmp_path / "alerts-state.json"
    state.write_text("{not json")
    obs = LiveObserver(Engine([hot()], site=site), [], ticker=False, state_path=state)
    assert obs.restored == [] and "unreadable" in caplog.text
    obs.close()
    assert json.loads(state.read_text())["alerts"] == []



# --- keep_firing_for, flap history, inhibition: restarts in the middle --------------------------


def snap_json(e):
    return json.loads(json.dumps(e.snapshot()))  # through JSON, as the state file


def test_a_keep_firing_for_countdown_keeps_the_clear_time_it_had_counted(site):
    def rule():
        return parse_rule({"name": "Hot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                           "threshold": 85, "for": "0s", "keep_firing_for": "10m", "flap": None})

    e = Engine([rule()], site=site, evaluation_interval_s=60)
    ts = feed(e, 0, 5 * MIN, 90) + feed(e, 6 * MIN, 12 * MIN, 70)  # clear from 6m: the countdown runs
    assert [t.state for t in ts] == ["firing"]
    e2 = Engine([rule()], site=site, evaluation_interval_s=60)
    e2.restore(snap_json(e), now_ns=13 * MIN * NS)  # down for a minute at 12m-13m
    ts = feed(e2, 13 * MIN, 30 * MIN, 70)
    # 6 of the 10 minutes were counted before the restart, the outage does not count: 6m + 10m + 1m
    assert [(t.time_ns // NS, t.previous, t.state) for t in ts] == [(17 * MIN, "firing", "resolved")]
    # a restart that forgot the countdown would hold it until 13m + 10m


def test_a_hot_sample_after_the_restart_stops_the_restored_countdown(site):
    def rule():
        return parse_rule({"name": "Hot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                           "threshold": 85, "for": "0s", "keep_firing_for": "10m", "flap": None})

    e = Engine([rule()], site=site, evaluation_interval_s=60)
    feed(e, 0, 5 * MIN, 90)
    feed(e, 6 * MIN, 12 * MIN, 70)
    e2 = Engine([rule()], site=site, evaluation_interval_s=60)
    e2.restore(snap_json(e), now_ns=13 * MIN * NS)
    ts = feed(e2, 13 * MIN, 14 * MIN, 90) + feed(e2, 15 * MIN, 40 * MIN, 70)
    assert [(t.time_ns // NS, t.state) for t in ts] == [(25 * MIN, "resolved")]  # 15m + 10m, counted afresh


def test_the_live_observer_saves_a_countdown_when_it_starts_and_stops_so_a_crash_keeps_it(site, tmp_path):
    """A countdown starts and stops without a transition; the state file follows it, so a crash
    (no ``close``, nothing saved at shutdown) restores the clear time that was counted."""
    def rule():
        return parse_rule({"name": "Hot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                           "threshold": 85, "for": "0s", "keep_firing_for": "10m", "flap": None})

    state = tmp_path / "alerts-state.json"

    def saved_countdowns():
        return [(a["state"], a["keep_since_ns"]) for a in json.loads(state.read_text())["alerts"]]

    obs = LiveObserver(Engine([rule()], site=site, evaluation_interval_s=60), [], ticker=False, state_path=state)
    for t in range(0, 6 * MIN, MIN):
        obs.observe([gpu(t, 90)])
    assert saved_countdowns() == [("firing", None)]
    obs.observe([gpu(6 * MIN, 70)])
    obs.observe([gpu(7 * MIN, 70)])  # evaluates 6m: clear, the countdown starts
    assert saved_countdowns() == [("firing", 6 * MIN * NS)]
    obs.observe([gpu(8 * MIN, 90)])
    obs.observe([gpu(9 * MIN, 70)])  # evaluates 8m: hot again, the countdown stops
    assert saved_countdowns() == [("firing", None)]
    for t in range(10 * MIN, 13 * MIN, MIN):
        obs.observe([gpu(t, 70)])  # evaluates 9m-11m: counting again from 9m
    obs.engine = None  # the process dies here: no close(), no save at shutdown
    assert saved_countdowns() == [("firing", 9 * MIN * NS)]

    obs2 = LiveObserver(Engine([rule()], site=site, evaluation_interval_s=60), [], clock=lambda: 13 * MIN,
                        ticker=False, state_path=state)
    assert [t.restored for t in obs2.restored] == [True]
    got = [t for m in range(13, 31) for t in obs2.engine.process([gpu(m * MIN, 70)])]
    # 3 of the 10 minutes were counted before the crash (9m-12m), the outage does not count: 13m + 7m
    assert [(t.time_ns // NS, t.previous, t.state) for t in got] == [(20 * MIN, "firing", "resolved")]
    obs2.close()


def flappy():
    return parse_rule({"name": "Flappy", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                       "threshold": 85, "for": "0s", "flap": {"window": "15m", "max_fires": 3}})


def pulse(e, start_min, hot_min=1, clear_min=1):
    """Hot for ``hot_min`` minutes, then clear for ``clear_min`` minutes, one sample a minute."""
    end_s = (start_min + hot_min + clear_min - 1) * MIN
    return feed(e, start_min * MIN, (start_min + hot_min - 1) * MIN, 90) + \
        feed(e, (start_min + hot_min) * MIN, end_s, 70) + e.advance(end_s * NS)


def test_flap_history_survives_a_restart(site):
    e = Engine([flappy()], site=site, evaluation_interval_s=60)
    ts = pulse(e, 0) + pulse(e, 2)  # fired and resolved twice in 4 minutes
    assert [t.state for t in ts] == ["firing", "resolved", "firing", "resolved"]
    saved = snap_json(e)
    assert [(a["state"], len(a["fires_ns"])) for a in saved["alerts"]] == [("resolved", 2)]
    e2 = Engine([flappy()], site=site, evaluation_interval_s=60)
    assert e2.restore(saved, now_ns=5 * MIN * NS) == []  # nothing is active: nothing to resume
    ts = pulse(e2, 5, clear_min=20)
    # the third fire within the window: flapping, so it resolves only after a whole quiet window
    assert [(t.time_ns // NS, t.state) for t in ts] == [(5 * MIN, "firing"), (21 * MIN, "resolved")]


def test_a_fresh_engine_without_the_history_would_resolve_at_once(site):
    e = Engine([flappy()], site=site, evaluation_interval_s=60)  # the control for the test above
    ts = pulse(e, 5, clear_min=20)
    assert [(t.time_ns // NS, t.state) for t in ts] == [(5 * MIN, "firing"), (6 * MIN, "resolved")]


def test_flap_history_older_than_the_window_is_not_saved(site):
    e = Engine([flappy()], site=site, evaluation_interval_s=60)
    pulse(e, 0)
    feed(e, 2 * MIN, 20 * MIN, 70)
    assert snap_json(e)["alerts"] == []


def _loop(t_s, flow):
    return Record("coolant_loop", {"loop": "loop-a", "cdu": "cdu-a"},
                  {"flow_lpm": float(flow), "supply_temp_c": 30.0, "return_temp_c": 40.0}, int(t_s * NS))


def pump_rules(grace="2m"):
    flow = parse_rule({"name": "CoolantFlowLow", "kind": "threshold", "measurement": "coolant_loop",
                       "field": "flow_lpm", "op": "<", "threshold": 150, "for": "0s", "severity": "critical",
                       "inhibits": ["Gpu*"], "inhibit_grace": grace, "flap": None})
    gpu_hot = parse_rule({"name": "GpuHot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                          "threshold": 85, "for": "0s", "flap": None})
    return [flow, gpu_hot]


def run(e, start_s, end_s, *, flow, temp):
    out = []
    for t in range(int(start_s), int(end_s) + 1, 60):
        out += e.process([_loop(t, flow), gpu(t, temp)])
    return out + e.advance(int(end_s) * NS)


def test_an_alert_that_paged_and_was_inhibited_at_shutdown_never_pages_again(site):
    hook = Pages()
    e = Engine(pump_rules(), site=site, evaluation_interval_s=60)
    web = WebhookNotifier("http://127.0.0.1:1/x", client=hook.client())
    web.notify(run(e, 0, 2 * MIN, flow=220, temp=90), 0)  # the GPU pages
    web.notify(run(e, 3 * MIN, 5 * MIN, flow=50, temp=90), 0)  # the pump fails: the GPU alert is marked
    assert [a["labels"]["alertname"] for b in hook.bodies for a in b["alerts"]] == ["GpuHot", "CoolantFlowLow"]
    gpu_alert = next(a for a in e.active() if a.rule == "GpuHot")
    assert gpu_alert.inhibited

    e2 = Engine(pump_rules(), site=site, evaluation_interval_s=60)
    web2 = WebhookNotifier("http://127.0.0.1:1/x", client=hook.client())
    restored = e2.restore(snap_json(e), now_ns=6 * MIN * NS)
    assert {(t.rule, t.inhibited, t.paged) for t in restored} == {("GpuHot", True, True), ("CoolantFlowLow", False, True)}
    web2.notify(restored, 0)
    # the pump recovers, the mark lifts after its grace while the GPU is still hot: no second page
    ts = run(e2, 6 * MIN, 12 * MIN, flow=220, temp=90)
    assert [(t.rule, t.state, t.inhibited) for t in ts] == [("CoolantFlowLow", "resolved", False),
                                                           ("GpuHot", "firing", False)]
    web2.notify(ts, 0)
    web2.notify(run(e2, 13 * MIN, 14 * MIN, flow=220, temp=70), 0)  # cooled: its resolution
    pages = [(a["labels"]["alertname"], a["status"]) for b in hook.bodies for a in b["alerts"]]
    assert pages == [("GpuHot", "firing"), ("CoolantFlowLow", "firing"), ("CoolantFlowLow", "resolved"),
                     ("GpuHot", "resolved")]


def test_an_alert_inhibited_from_the_start_pages_when_its_mark_lifts_after_a_restart(site):
    hook = Pages()
    e = Engine(pump_rules(), site=site, evaluation_interval_s=60)
    web = WebhookNotifier("http://127.0.0.1:1/x", client=hook.client())
    web.notify(run(e, 0, 2 * MIN, flow=50, temp=90), 0)  # pump and GPU together: only the pump pages
    e2 = Engine(pump_rules(), site=site, evaluation_interval_s=60)
    web2 = WebhookNotifier("http://127.0.0.1:1/x", client=hook.client())
    restored = e2.restore(snap_json(e), now_ns=3 * MIN * NS)
    assert {(t.rule, t.inhibited, t.paged) for t in restored} == {("GpuHot", True, False), ("CoolantFlowLow", False, True)}
    web2.notify(restored, 0)
    web2.notify(run(e2, 3 * MIN, 8 * MIN, flow=220, temp=90), 0)  # still hot after the grace: a new incident
    pages = [(a["labels"]["alertname"], a["status"]) for b in hook.bodies for a in b["alerts"]]
    assert pages == [("CoolantFlowLow", "firing"), ("CoolantFlowLow", "resolved"), ("GpuHot", "firing")]


def test_a_mark_in_its_grace_at_shutdown_keeps_its_end_and_its_held_source(site):
    e = Engine(pump_rules(grace="5m"), site=site, evaluation_interval_s=60)
    run(e, 0, 2 * MIN, flow=50, temp=90)  # GPU marked by the pump alert
    ts = run(e, 3 * MIN, 4 * MIN, flow=220, temp=90)  # the pump recovers at 3m: marked at 2m, to 2m + 5m
    assert [(t.rule, t.state) for t in ts] == [("CoolantFlowLow", "resolved")]
    saved = snap_json(e)
    e2 = Engine(pump_rules(grace="5m"), site=site, evaluation_interval_s=60)
    restored = e2.restore(saved, now_ns=6 * MIN * NS)
    # the source resolved while still explaining the GPU: restored as its resolution at 3m
    assert sorted((t.rule, t.previous, t.state, t.time_ns // NS, t.restored) for t in restored) == [
        ("CoolantFlowLow", "firing", "resolved", 3 * MIN, True), ("GpuHot", "firing", "firing", 6 * MIN, True)]
    ts = run(e2, 6 * MIN, 10 * MIN, flow=220, temp=90)
    # the mark ends at 7m as it would have without the restart (not at the restart + a grace)
    assert [(t.rule, t.time_ns // NS, t.inhibited) for t in ts] == [("GpuHot", 7 * MIN, False)]


def test_alertmanager_holds_a_restored_source_until_the_mark_beneath_it_lifts(site):
    from dcim.alerts.notifiers import AlertmanagerNotifier

    posts = Pages()
    e = Engine(pump_rules(grace="5m"), site=site, evaluation_interval_s=60)
    run(e, 0, 2 * MIN, flow=50, temp=90)
    run(e, 3 * MIN, 4 * MIN, flow=220, temp=90)  # the source resolved at 3m; the GPU stays marked to 7m
    e2 = Engine(pump_rules(grace="5m"), site=site, evaluation_interval_s=60)
    am = AlertmanagerNotifier("http://127.0.0.1:1", resend_interval_s=60, client=posts.client())
    wall = 6 * MIN + 0.5
    am.notify(e2.restore(snap_json(e), now_ns=6 * MIN * NS), wall)
    first = {a["labels"]["alertname"]: a for a in posts.bodies[-1]}
    # the source is re-posted active (endsAt ahead), so Alertmanager keeps muting the GPU alert
    assert set(first) == {"CoolantFlowLow", "GpuHot"}
    assert first["CoolantFlowLow"]["endsAt"] > first["CoolantFlowLow"]["startsAt"]
    assert first["CoolantFlowLow"]["endsAt"] == rfc3339(wall + 4 * 60)
    am.notify(run(e2, 6 * MIN, 8 * MIN, flow=220, temp=90), wall + 1)  # the mark lifts at 7m
    last = {a["labels"]["alertname"]: a for a in posts.bodies[-1]}
    assert last["CoolantFlowLow"]["endsAt"] == rfc3339(3 * MIN)  # its true resolve time
    assert "GpuHot" not in last  # unchanged in Alertmanager: one alert, its start kept


def test_a_version_1_state_file_is_still_restored(site):
    e = Engine([hot()], site=site, evaluation_interval_s=60)
    feed(e, 0, 15 * MIN, 90)
    e.advance(15 * MIN * NS)
    v2 = snap_json(e)
    keep = ("rule", "labels", "state", "active_since_ns", "fired_at_ns", "value", "threshold", "inhibited",
            "inhibited_by")
    v1 = {"version": 1, "saved_ns": v2["saved_ns"], "alerts": [{k: a[k] for k in keep} for a in v2["alerts"]]}
    e2 = Engine([hot()], site=site, evaluation_interval_s=60)
    restored = e2.restore(v1, now_ns=16 * MIN * NS)
    assert [(t.state, t.restored, t.paged, t.starts_at_ns) for t in restored] == [
        ("firing", True, True, v2["alerts"][0]["fired_at_ns"])]
    assert e2.restore({**v1, "version": 3}, now_ns=16 * MIN * NS) == []  # a file from a newer build: ignored
