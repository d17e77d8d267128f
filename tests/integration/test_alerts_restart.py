"""An engine restart while an alert with a long `for` is firing, through a real Alertmanager 0.25 with
a webhook receiver: the alert state is saved and restored, so Alertmanager keeps one alert with its
original startsAt; on-call gets no false "resolved" and no second page. An alert inhibited beneath a
loop alert whose mark is in its grace at the restart stays muted: the loop alert, resolved in the
engine, is held active in Alertmanager again until the mark ends. An alert that fired twice before
the restart and once after is flapping: it stays active instead of resolving at once."""

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


def sent(receiver, status):
    return sum(1 for s, _f, _st in notifications(receiver) if s == status)


def observer(am, state, rules=(RULE,)):
    engine = Engine([parse_rule(r) for r in rules], site=named_site("h100-hall"), evaluation_interval_s=1.0)
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


PUMP_RULES = [
    {"name": "CoolantFlowLow", "kind": "threshold", "severity": "critical", "measurement": "coolant_loop",
     "field": "flow_lpm", "op": "<", "threshold": 150, "for": "0s", "inhibits": ["Gpu*"], "inhibit_grace": "60s",
     "flap": None},
    {"name": "GpuHot", "kind": "threshold", "severity": "warning", "measurement": "gpu", "field": "temp_c",
     "threshold": 85, "for": "0s", "flap": None},
]


def pump_feed(obs, start_s, end_s, *, flow, temp):
    for t in range(int(start_s), int(end_s) + 1):
        obs.observe([Record("coolant_loop", {"loop": "loop-a", "cdu": "cdu-a"},
                            {"flow_lpm": float(flow), "supply_temp_c": 30.0, "return_temp_c": 40.0}, t * NS),
                     Record("gpu", dict(GPU0), {"temp_c": float(temp)}, t * NS)])


def named(receiver, name):
    out = []
    for _h, body in receiver.get("/am"):
        out += [a["status"] for a in json.loads(body)["alerts"] if a["labels"]["alertname"] == name]
    return out


def test_an_alert_inhibited_at_shutdown_stays_quiet_after_a_restart(alertmanager_factory, receiver, tmp_path):
    from dcim.alerts.notifiers import alertmanager_config

    cfg = alertmanager_config("hook", rules=[parse_rule(r) for r in PUMP_RULES])
    cfg["route"].update({"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"})
    cfg["receivers"].append({"name": "hook", "webhook_configs": [{"url": receiver.url + "/am", "send_resolved": True}]})
    am = alertmanager_factory(config=cfg)
    state = tmp_path / "alert-state.json"
    now = int(time.time())

    first = observer(am, state, PUMP_RULES)
    # the pump fails with the GPU hot: the loop alert pages, the GPU alert is inhibited beneath it; the
    # pump recovers 3 s ago, the GPU is still hot: the mark lasts the loop rule's 60 s inhibit_grace,
    # and Alertmanager mutes the GPU alert only while the loop alert is active, so the notifier holds
    # the loop alert's resolution
    pump_feed(first, now - 30, now - 20, flow=50, temp=60)
    # Alertmanager mutes a target only once it holds the source: the loop alert is in before the GPU heats
    wait_until(lambda: named(receiver, "CoolantFlowLow"), 15, message="the loop page")
    pump_feed(first, now - 19, now - 3, flow=50, temp=95)
    pump_feed(first, now - 2, now, flow=220, temp=95)
    wait_until(lambda: [a for a in am.alerts() if a["labels"]["alertname"] == "GpuHot"
                        and a["status"]["state"] == "suppressed"], 15, message="the GPU alert muted")
    first.close()  # the engine stops (state saved) while the mark is in its grace

    second = observer(am, state, PUMP_RULES)  # and starts again
    assert sorted((t.rule, t.state) for t in second.restored) == [("CoolantFlowLow", "resolved"),
                                                                   ("GpuHot", "firing")]
    t = int(time.time())
    for _ in range(12):  # longer than the 8 s (4 resend intervals) a loop alert nobody re-posts stays active
        pump_feed(second, t, t, flow=220, temp=95)
        second.tick()
        time.sleep(1.0)
        t += 1
    second.flush()
    alerts = {a["labels"]["alertname"]: a for a in am.alerts()}
    assert alerts["CoolantFlowLow"]["status"]["state"] == "active"  # held while it explains the GPU
    assert alerts["GpuHot"]["status"]["state"] == "suppressed"
    assert alerts["GpuHot"]["status"]["inhibitedBy"] == [alerts["CoolantFlowLow"]["fingerprint"]]
    assert named(receiver, "GpuHot") == []  # the inhibited alert never paged across the restart
    assert named(receiver, "CoolantFlowLow") == ["firing"]
    second.close()


FLAP_RULE = {"name": "GpuFlapping", "kind": "threshold", "severity": "warning", "measurement": "gpu",
             "field": "temp_c", "threshold": 85, "for": "0s", "flap": {"window": "120s", "max_fires": 3}}


def test_flap_history_survives_a_restart_so_a_third_fire_holds(alertmanager_factory, receiver, tmp_path):
    am = alertmanager_factory(config=am_config(receiver.url))
    state = tmp_path / "alert-state.json"
    now = int(time.time())

    first = observer(am, state, [FLAP_RULE])
    # fires and resolves twice; each state is seen by the receiver before the next is fed, since
    # Alertmanager sends no "resolved" for an alert it never notified as firing: a fire and its
    # resolution that both reach it before its group flushes would notify nothing
    for n, start in enumerate((now - 40, now - 30), 1):
        feed(first, start, start + 1, 95)
        wait_until(lambda: sent(receiver, "firing") >= n, 15, message=f"page {n}")
        feed(first, start + 2, start + 4, 70)
        wait_until(lambda: sent(receiver, "resolved") >= n, 15, message=f"resolution {n}")
    first.close()
    time.sleep(2.0)  # let Alertmanager send what it has
    before = len(notifications(receiver))

    second = observer(am, state, [FLAP_RULE])
    assert second.restored == []  # nothing was active at the restart
    t = int(time.time())
    feed(second, t, t + 1, 95)  # the third fire within the window: flapping
    t += 2
    for _ in range(8):  # clear for 8 s: a flapping alert resolves only after a quiet window (120 s)
        feed(second, t, t, 70)
        second.tick()
        time.sleep(1.0)
        t += 1
    second.flush()
    active = [a for a in am.alerts() if a["labels"]["alertname"] == "GpuFlapping"]
    assert [a["status"]["state"] for a in active] == ["active"]
    after = [s for s, _f, _st in notifications(receiver)[before:]]
    assert "resolved" not in after, after  # without its history the restart would resolve it at once
    second.close()
