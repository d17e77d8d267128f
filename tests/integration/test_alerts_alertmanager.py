"""The Alertmanager notifier against a real Alertmanager 0.25: resend keeps it active with the
original startsAt, a resolution ends it, an inhibition flip swaps the identity."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from alerts.engine import Transition
from alerts.notifiers import AlertmanagerNotifier, alertmanager_config
from servers import wait_until

pytestmark = pytest.mark.integration
NS = 1_000_000_000
LOOP = {"site": "dc1", "room": "hall1", "row": "A", "loop": "loop-a", "cdu": "cdu-a"}
GPU = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "loop": "loop-a", "node": "A01-n01", "gpu": "0"}


def tr(rule, labels, state, t_s, starts_s, *, inhibited=False, previous="inactive", fp=None):
    return Transition(int(t_s * NS), rule, "critical", dict(labels), previous, state, 1.0, inhibited,
                      "x" if inhibited else None, f"{rule} {state}", fp or rule, {"summary": f"{rule} {state}"},
                      int(starts_s * NS))


def parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_resend_resolve_and_inhibition_in_a_real_alertmanager(alertmanager_factory):
    cfg = alertmanager_config("null")
    cfg["route"].update({"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"})
    cfg["receivers"].append({"name": "null"})
    am = alertmanager_factory(config=cfg)
    n = AlertmanagerNotifier(am.url, resend_interval_s=1, resolve_resend_s=5)
    now = time.time()
    started = round(now - 120)
    n.notify([tr("LoopFlowLow", LOOP, "firing", now - 60, started),
              tr("GpuTempNearSlowdown", GPU, "firing", now - 30, started + 90, inhibited=True)], now)

    def by_name(name):
        return [a for a in am.alerts() if a["labels"]["alertname"] == name]

    loop = wait_until(lambda: by_name("LoopFlowLow"), 10)[0]
    assert loop["status"]["state"] == "active" and loop["labels"]["scope"] == "loop"
    assert parse(loop["startsAt"]) == pytest.approx(started, abs=0.01)
    first_end = parse(loop["endsAt"])
    gpu = wait_until(lambda: [a for a in by_name("GpuTempNearSlowdown") if a["status"]["state"] == "suppressed"], 10)[0]
    assert gpu["status"]["inhibitedBy"] == [loop["fingerprint"]] and gpu["labels"]["inhibited"] == "true"

    time.sleep(1.2)
    n.tick(time.time())  # resend: endsAt moves ahead, startsAt stays
    loop2 = wait_until(lambda: [a for a in by_name("LoopFlowLow") if parse(a["endsAt"]) > first_end], 10)[0]
    assert loop2["startsAt"] == loop["startsAt"] and loop2["fingerprint"] == loop["fingerprint"]

    # the loop recovers; the GPU alert is no longer explained: old identity ends, a new one is active
    now = time.time()
    n.notify([tr("LoopFlowLow", LOOP, "resolved", now, started, previous="firing"),
              tr("GpuTempNearSlowdown", GPU, "firing", now, started + 90, previous="firing")], now)
    wait_until(lambda: not by_name("LoopFlowLow"), 10, message="loop alert resolved in Alertmanager")
    gpus = wait_until(lambda: [a for a in by_name("GpuTempNearSlowdown") if "inhibited" not in a["labels"]], 10)
    assert gpus[0]["status"]["state"] == "active"
    assert parse(gpus[0]["startsAt"]) == pytest.approx(started + 90, abs=0.01)
    wait_until(lambda: all("inhibited" not in a["labels"] for a in by_name("GpuTempNearSlowdown")), 10,
               message="the inhibited identity ended")
