"""The Alertmanager notifier against a real Alertmanager 0.25 with a webhook receiver: resend keeps an
alert active with its original startsAt; an alert that paged and then became inhibited stays one
alert (suppressed by the generated inhibit rules, never resolved early, never paged twice)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from dcim.alerts.state import Transition
from dcim.alerts.notifiers import AlertmanagerNotifier, alertmanager_config
from servers import wait_until
from tests.integration.test_alerts_pump import Receiver

pytestmark = pytest.mark.integration
NS = 1_000_000_000
LOOP = {"site": "dc1", "room": "hall1", "row": "A", "loop": "loop-a", "cdu": "cdu-a"}
GPU = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "loop": "loop-a", "node": "A01-n01", "gpu": "0"}


def tr(rule, labels, state, t_s, starts_s, *, inhibited=False, previous="inactive", fp=None):
    return Transition(int(t_s * NS), rule, "critical", dict(labels), previous, state, 1.0, inhibited,
                      "loopfp" if inhibited else None, f"{rule} {state}", fp or rule, {"summary": f"{rule} {state}"},
                      int(starts_s * NS))


def parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def am_config(receiver_url: str) -> dict:
    cfg = alertmanager_config("hook")
    cfg["route"].update({"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"})
    cfg["receivers"].append({"name": "hook", "webhook_configs": [{"url": receiver_url + "/am",
                                                                  "send_resolved": True}]})
    return cfg


def notified(receiver, name):
    out = []
    for _h, body in receiver.get("/am"):
        out += [(a["status"], a["fingerprint"], a["startsAt"]) for a in json.loads(body)["alerts"]
                if a["labels"]["alertname"] == name]
    return out


def test_resend_keeps_the_original_starts_at(alertmanager_factory, receiver):
    am = alertmanager_factory(config=am_config(receiver.url))
    n = AlertmanagerNotifier(am.url, resend_interval_s=1, resolve_resend_s=5)
    now = time.time()
    started = round(now - 120)
    n.notify([tr("LoopFlowLow", LOOP, "firing", now - 60, started)], now)
    loop = wait_until(lambda: [a for a in am.alerts() if a["labels"]["alertname"] == "LoopFlowLow"], 10)[0]
    assert loop["status"]["state"] == "active" and loop["labels"]["scope"] == "loop"
    assert parse(loop["startsAt"]) == pytest.approx(started, abs=0.01)
    first_end = parse(loop["endsAt"])
    time.sleep(1.2)
    n.tick(time.time())  # resend: endsAt moves ahead, startsAt stays
    loop2 = wait_until(lambda: [a for a in am.alerts() if a["labels"]["alertname"] == "LoopFlowLow"
                                and parse(a["endsAt"]) > first_end], 10)[0]
    assert loop2["startsAt"] == loop["startsAt"] and loop2["fingerprint"] == loop["fingerprint"]
    n.notify([tr("LoopFlowLow", LOOP, "resolved", time.time(), started, previous="firing")], time.time())
    wait_until(lambda: not am.alerts(), 10, message="loop alert resolved in Alertmanager")


def test_a_paged_alert_that_becomes_inhibited_is_one_alert_from_firing_to_resolved(alertmanager_factory, receiver):
    am = alertmanager_factory(config=am_config(receiver.url))
    # endsAt 8 s ahead: room for a slow moment on a busy machine before Alertmanager times it out
    n = AlertmanagerNotifier(am.url, resend_interval_s=2, resolve_resend_s=5)
    t0 = time.time()
    gpu_start = round(t0 - 30)

    def gpu_alerts():
        return [a for a in am.alerts() if a["labels"]["alertname"] == "GpuTempNearSlowdown"]

    # 1. the GPU alert fires and pages
    n.notify([tr("GpuTempNearSlowdown", GPU, "firing", t0, gpu_start)], t0)
    wait_until(lambda: notified(receiver, "GpuTempNearSlowdown"), 10, message="the GPU page")
    gpu = gpu_alerts()[0]

    # 2. the pump fails: the loop alert fires, the engine marks the GPU alert inhibited
    t1 = time.time()
    n.notify([tr("LoopFlowLow", LOOP, "firing", t1, t1),
              tr("GpuTempNearSlowdown", GPU, "firing", t1, gpu_start, inhibited=True, previous="firing")], t1)
    wait_until(lambda: [a for a in gpu_alerts() if a["status"]["state"] == "suppressed"], 10,
               message="GPU alert suppressed by the generated inhibit rule")
    loop = next(a for a in am.alerts() if a["labels"]["alertname"] == "LoopFlowLow")
    held = gpu_alerts()
    assert len(held) == 1 and held[0]["fingerprint"] == gpu["fingerprint"]
    assert held[0]["status"]["inhibitedBy"] == [loop["fingerprint"]] and "inhibited" not in held[0]["labels"]
    for _ in range(3):  # resends while inhibited
        time.sleep(1.0)
        n.tick(time.time())

    # 3. the loop recovers while the GPU is still hot: the same GPU alert is active again
    t2 = time.time()
    n.notify([tr("LoopFlowLow", LOOP, "resolved", t2, t1, previous="firing"),
              tr("GpuTempNearSlowdown", GPU, "firing", t2, gpu_start, previous="firing")], t2)
    wait_until(lambda: [a for a in gpu_alerts() if a["status"]["state"] == "active"], 10)
    again = gpu_alerts()
    assert len(again) == 1 and again[0]["fingerprint"] == gpu["fingerprint"]
    assert again[0]["startsAt"] == gpu["startsAt"]
    for _ in range(3):
        time.sleep(1.0)
        n.tick(time.time())

    # 4. the GPU cools: one resolution
    t3 = time.time()
    n.notify([tr("GpuTempNearSlowdown", GPU, "resolved", t3, gpu_start, previous="firing")], t3)
    wait_until(lambda: [s for s, _f, _st in notified(receiver, "GpuTempNearSlowdown") if s == "resolved"], 10,
               message="the GPU resolution")
    time.sleep(2.0)
    seen = notified(receiver, "GpuTempNearSlowdown")
    assert [s for s, _f, _st in seen] == ["firing", "resolved"], seen  # no early resolve, no second page
    assert {f for _s, f, _st in seen} == {gpu["fingerprint"]}
    assert all(parse(st) == pytest.approx(gpu_start, abs=0.01) for _s, _f, st in seen)
