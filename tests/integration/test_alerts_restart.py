"""An engine restart while an alert with a long `for` is firing, through a real Alertmanager 0.25 with
a webhook receiver: the alert state is saved and restored, so Alertmanager keeps one alert with its
original startsAt; on-call gets no false "resolved" and no second page."""

from __future__ import annotations

import json
import time

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.live import LiveObserver
from dcim.alerts.notifiers import AlertmanagerNotifier
from dcim.alerts.rulefile import parse_rule
from dcim.config import named_site
from dcim.record import Record
from servers import wait_until
from tests.integration.test_alerts_alertmanager import Receiver, am_config, parse

pytestmark = pytest.mark.integration
NS = 1_000_000_000
GPU0 = {"rack": "A01", "node": "A01-n01", "gpu": "0"}
RULE = {"name": "GpuHot", "kind": "threshold", "severity": "critical", "measurement": "gpu", "field": "temp_c",
        "threshold": 85, "for": "30s", "flap": None}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def notifications(receiver):
    out = []
    for _h, body in receiver.get("/am"):
        out += [(a["status"], a["fingerprint"], a["startsAt"]) for a in json.loads(body)["alerts"]]
    return out


def observer(am, state):
    engine = Engine([parse_rule(RULE)], site=named_site("h100-hall"), evaluation_interval_s=1.0)
    return LiveObserver(engine, [AlertmanagerNotifier(am.url, resend_interval_s=2, resolve_resend_s=5)],
                        ticker=False, state_path=state)


def feed(obs, start_s, end_s, temp):
    for t in range(int(start_s), int(end_s) + 1):
        obs.observe([Record("gpu", dict(GPU0), {"temp_c": float(temp)}, t * NS)])


def test_a_restart_sends_no_false_resolve_and_no_second_page(alertmanager_factory, receiver, tmp_path):
    am = alertmanager_factory(config=am_config(receiver.url))
    state = tmp_path / "alert-state.json"
    now = int(time.time())

    first = observer(am, state)
    feed(first, now - 60, now, 95)  # hot for a minute: pending at -60 s, firing at -30 s
    wait_until(lambda: notifications(receiver), 15, message="the first page")
    alert = am.alerts()[0]
    first.close()  # the engine stops (state saved)

    second = observer(am, state)  # and starts again
    assert [t.restored for t in second.restored] == [True]
    t = int(time.time())
    for _ in range(4):  # still hot, fresh samples and resends for a few seconds
        feed(second, t, t, 95)
        second.tick()
        time.sleep(1.0)
        t += 1
    second.flush()
    again = am.alerts()
    assert len(again) == 1 and again[0]["fingerprint"] == alert["fingerprint"]
    assert again[0]["startsAt"] == alert["startsAt"] and again[0]["status"]["state"] == "active"
    assert [s for s, _f, _st in notifications(receiver)] == ["firing"]  # no resolve, no second page

    feed(second, t, t + 1, 70)  # cooled: one resolution, same alert
    wait_until(lambda: [s for s, _f, _st in notifications(receiver) if s == "resolved"], 15,
               message="the resolution")
    second.close()
    seen = notifications(receiver)
    assert [s for s, _f, _st in seen] == ["firing", "resolved"]
    assert {f for _s, f, _st in seen} == {alert["fingerprint"]}
    assert {parse(st) for _s, _f, st in seen} == {parse(alert["startsAt"])}  # the original start, kept
