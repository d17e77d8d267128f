"""Alert state survives a restart: snapshot and restore as Prometheus restores `for` state
(ALERTS_FOR_STATE, --rules.alert.for-grace-period, --rules.alert.for-outage-tolerance)."""

from __future__ import annotations

import json

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.live import LiveObserver
from dcim.alerts.notifiers import WebhookNotifier
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

