"""Notifiers against fake transports (httpx.MockTransport) and a loopback server that never answers."""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import datetime

import httpx
import pytest
from pydantic import SecretStr

from dcim.alerts.state import Transition
from dcim.alerts.live import LiveObserver, make_observer
from dcim.alerts.notifiers import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertmanagerNotifier,
    ConsoleNotifier,
    Dispatcher,
    LogNotifier,
    WebhookNotifier,
    alertmanager_config,
    make_notifier,
    sign,
    verify,
)
from dcim.alerts.rulefile import parse_rule
from dcim.alerts.engine import Engine
from dcim.config import NotifierConfig, named_site
from dcim.record import Record

NS = 1_000_000_000
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
LABELS = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "loop": "loop-a", "node": "A01-n01", "gpu": "3"}


def tr(state: str, t_s: float, *, previous: str = "inactive", inhibited: bool = False, starts_s: float | None = None,
       fp: str = "fp1", labels=None, rule: str = "GpuHot") -> Transition:
    return Transition(int(t_s * NS), rule, "critical", dict(labels or LABELS), previous, state, 90.0, inhibited,
                      "loopfp" if inhibited else None, f"{rule} {state}", fp, {"summary": f"{rule} {state}"},
                      int((starts_s if starts_s is not None else t_s) * NS))


class Recorder:
    """A fake HTTP endpoint: records requests, answers from a script of status codes."""

    def __init__(self, statuses=(200,)) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses = list(statuses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def bodies(self) -> list:
        return [json.loads(r.content) for r in self.requests]


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- Alertmanager ------------------------------------------------------------------------------


def test_alertmanager_resends_firing_with_ends_ahead_and_keeps_starts_at():
    rec = Recorder()
    am = AlertmanagerNotifier("http://127.0.0.1:9093", resend_interval_s=60, client=rec.client())
    am.notify([tr("firing", T0, previous="pending", starts_s=T0 - 30)], now_s=T0 + 0.2)
    am.tick(T0 + 30)   # not due yet
    am.tick(T0 + 61)   # due
    bodies = rec.bodies()
    assert len(bodies) == 2 and rec.requests[0].url.path == "/api/v2/alerts"
    first, again = bodies[0][0], bodies[1][0]
    assert first["labels"]["alertname"] == "GpuHot" and first["labels"]["scope"] == "gpu"
    assert first["labels"]["rack"] == "A01" and "inhibited" not in first["labels"]
    assert ts(first["startsAt"]) == pytest.approx(T0 - 30) == pytest.approx(ts(again["startsAt"]))
    assert ts(first["endsAt"]) == pytest.approx(T0 + 0.2 + 240)  # four resend intervals ahead
    assert ts(again["endsAt"]) == pytest.approx(T0 + 61 + 240)


def test_alertmanager_resolution_sent_with_resolve_time_and_repeated_for_a_while():
    rec = Recorder()
    am = AlertmanagerNotifier("http://127.0.0.1:9093", resend_interval_s=60, resolve_resend_s=300,
                              client=rec.client())
    am.notify([tr("firing", T0, starts_s=T0)], now_s=T0)
    am.notify([tr("resolved", T0 + 100, previous="firing", starts_s=T0)], now_s=T0 + 100.5)
    for k in range(1, 8):
        am.tick(T0 + 100.5 + 60 * k)
    bodies = rec.bodies()
    resolved = [b[0] for b in bodies[1:]]
    assert all(ts(a["endsAt"]) == pytest.approx(T0 + 100) for a in resolved)
    assert all(ts(a["startsAt"]) == pytest.approx(T0) for a in resolved)
    assert len(resolved) == 6  # at once, then every minute until 5 minutes have passed


def test_alertmanager_an_inhibition_flip_keeps_one_identity():
    rec = Recorder()
    am = AlertmanagerNotifier("http://127.0.0.1:9093", client=rec.client())
    am.notify([tr("firing", T0, inhibited=False)], now_s=T0)
    am.notify([tr("firing", T0 + 10, previous="firing", inhibited=True, starts_s=T0)], now_s=T0 + 10)
    am.notify([tr("firing", T0 + 20, previous="firing", inhibited=False, starts_s=T0)], now_s=T0 + 20)
    bodies = rec.bodies()
    assert len(bodies) == 1 and "inhibited" not in bodies[0][0]["labels"]  # no resolve, no second alert
    am.tick(T0 + 61)
    again = rec.bodies()[-1][0]
    assert again["labels"] == bodies[0][0]["labels"] and ts(again["startsAt"]) == pytest.approx(T0)


def test_alertmanager_holds_a_sources_resolution_while_it_still_explains_firing_alerts():
    rec = Recorder()
    am = AlertmanagerNotifier("http://127.0.0.1:9093", client=rec.client())
    src = tr("firing", T0, fp="loopfp", rule="LoopFlowLow")
    gpu = tr("firing", T0 + 1, inhibited=True, fp="gpufp")
    am.notify([src, gpu], now_s=T0 + 1)
    am.notify([tr("resolved", T0 + 50, previous="firing", fp="loopfp", rule="LoopFlowLow")], now_s=T0 + 50)
    assert len(rec.bodies()) == 1  # the GPU is still marked beneath the loop alert (inhibit_grace)
    am.notify([tr("resolved", T0 + 80, previous="firing", fp="gpufp", inhibited=True)], now_s=T0 + 80)
    body = rec.bodies()[-1]
    ends = {a["labels"]["alertname"]: ts(a["endsAt"]) for a in body}
    assert ends["LoopFlowLow"] == pytest.approx(T0 + 50)  # its true resolve time
    assert ends["GpuHot"] == pytest.approx(T0 + 80)


def test_alertmanager_failure_is_retried_on_the_next_tick(caplog):
    rec = Recorder(statuses=[500, 200])
    am = AlertmanagerNotifier("http://127.0.0.1:9093", resend_interval_s=60, client=rec.client())
    am.notify([tr("firing", T0)], now_s=T0)
    am.tick(T0 + 1)  # the first post failed: never sent, so due at once
    assert len(rec.requests) == 2 and am.errors == 1 and am.posts == 1


def test_alertmanager_inhibit_rules_follow_the_packs_inhibits():
    cfg = alertmanager_config("pager")
    by_source = {r["source_matchers"][0]: r for r in cfg["inhibit_rules"]}
    flow = by_source['alertname="LoopFlowLow"']
    assert flow["equal"] == ["loop"]
    targets = flow["target_matchers"][0]
    # a critical loop alert mutes the GPU thermal alerts and its warning peers, never a critical peer
    assert "GpuTempNearSlowdown" in targets and "LoopDeltaTHigh" in targets and "LoopDiffPressureLow" not in targets
    assert by_source['alertname="NodeTelemetryStale"']["equal"] == ["node"]
    assert by_source['alertname="PduNearOverload"']["equal"] == ["rack", "pdu"]
    assert by_source['alertname="GpuLost"']["equal"] == ["node", "gpu"]
    assert 'alertname="LoopDeltaTHigh"' not in by_source or "LoopFlowLow" not in \
        by_source['alertname="LoopDeltaTHigh"']["target_matchers"][0]


# --- webhook -----------------------------------------------------------------------------------


def test_webhook_signs_the_body_and_pages_only_what_a_person_should_hear():
    rec = Recorder()
    hook = WebhookNotifier("http://127.0.0.1:1/hook", secret=SecretStr("s3cret-key"), client=rec.client())
    hook.notify([tr("pending", T0), tr("firing", T0, inhibited=True, fp="quiet"), tr("firing", T0 + 1)], T0 + 1)
    hook.notify([tr("resolved", T0 + 5, previous="firing", fp="quiet"),  # never paged: no resolve either
                 tr("resolved", T0 + 5, previous="firing")], T0 + 5)
    assert len(rec.requests) == 2
    for req in rec.requests:
        assert verify("s3cret-key", req.headers[TIMESTAMP_HEADER], req.content, req.headers[SIGNATURE_HEADER])
        assert not verify("other-key", req.headers[TIMESTAMP_HEADER], req.content, req.headers[SIGNATURE_HEADER])
    page, resolve = rec.bodies()
    assert [(a["status"], a["fingerprint"]) for a in page["alerts"]] == [("firing", "fp1")]
    assert [(a["status"], a["fingerprint"]) for a in resolve["alerts"]] == [("resolved", "fp1")]
    assert page["alerts"][0]["labels"]["alertname"] == "GpuHot"


def test_webhook_signature_is_over_timestamp_and_body():
    body = b'{"a":1}'
    assert sign("k", "100.000", body) != sign("k", "101.000", body)
    assert verify("k", "100.000", body, sign("k", "100.000", body), now_s=150.0)
    assert not verify("k", "100.000", body, sign("k", "100.000", body), now_s=1000.0)  # too old: replay


def test_webhook_retries_with_backoff_then_gives_up_without_logging_the_key(caplog):
    rec = Recorder(statuses=[503, 502, 200])
    slept: list[float] = []
    hook = WebhookNotifier("http://127.0.0.1:1/hook", secret=SecretStr("top-secret-hmac"), client=rec.client(),
                           retries=3, backoff_s=0.5, sleep=slept.append)
    hook.notify([tr("firing", T0)], T0)
    assert len(rec.requests) == 3 and slept == [0.5, 1.0] and hook.sent == 1
    rec2 = Recorder(statuses=[503])
    hook2 = WebhookNotifier("http://127.0.0.1:1/hook", secret=SecretStr("top-secret-hmac"), client=rec2.client(),
                            retries=2, backoff_s=0.1, sleep=slept.append)
    with caplog.at_level(logging.DEBUG):
        hook2.notify([tr("firing", T0)], T0)
    assert len(rec2.requests) == 3 and hook2.failed == 1
    assert "top-secret-hmac" not in caplog.text and "top-secret-hmac" not in repr(hook2)
    assert "giving up" in caplog.text


def test_webhook_does_not_retry_a_client_error():
    rec = Recorder(statuses=[400])
    hook = WebhookNotifier("http://127.0.0.1:1/hook", client=rec.client(), retries=3, sleep=lambda s: None)
    hook.notify([tr("firing", T0)], T0)
    assert len(rec.requests) == 1 and hook.failed == 1


def test_webhook_times_out_against_a_server_that_never_answers():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # accepts connections into the backlog, never reads or answers
    port = srv.getsockname()[1]
    try:
        hook = WebhookNotifier(f"http://127.0.0.1:{port}/hook", timeout_s=0.2, retries=1, backoff_s=0.01)
        hook.notify([tr("firing", T0)], T0)
        assert hook.failed == 1 and hook.sent == 0
    finally:
        srv.close()


# --- console, log, config, dispatch -------------------------------------------------------------


def test_console_and_log_lines(caplog):
    import io

    out = io.StringIO()
    ConsoleNotifier(out).notify([tr("pending", T0), tr("firing", T0, inhibited=True)], T0)
    assert out.getvalue().count("\n") == 1 and "inhibited by loopfp" in out.getvalue()
    with caplog.at_level(logging.INFO, logger="dcim.alerts"):
        LogNotifier().notify([tr("firing", T0)], T0)
    assert "GpuHot inactive->firing" in caplog.text


def test_make_notifier_from_config(monkeypatch):
    monkeypatch.setenv("DCIM_TEST_HOOK_KEY", "k")
    hook = make_notifier(NotifierConfig(kind="webhook", url="http://127.0.0.1:1/h", secret={"env": "DCIM_TEST_HOOK_KEY"},
                                        retries=1))
    assert isinstance(hook, WebhookNotifier) and hook.retries == 1
    am = make_notifier(NotifierConfig(kind="alertmanager", url="http://127.0.0.1:9093", resend_interval_s=5))
    assert isinstance(am, AlertmanagerNotifier) and am.resend_interval_s == 5
    assert isinstance(make_notifier(NotifierConfig(kind="console")), ConsoleNotifier)


class Slow:
    name = "slow"

    def __init__(self) -> None:
        self.got: list[Transition] = []
        self.release = threading.Event()

    def notify(self, transitions, now_s):
        self.release.wait(5)
        self.got += transitions

    def tick(self, now_s):
        return None


def test_dispatcher_never_blocks_the_caller():
    slow = Slow()
    d = Dispatcher([slow])
    d.submit([tr("firing", T0)])  # returns although the notifier is stuck
    assert slow.got == [] and not d.flush(0.05)
    slow.release.set()
    assert d.flush(5) and len(slow.got) == 1
    d.close()


def test_live_observer_returns_alert_records_and_ticks_on_the_wall_clock():
    site = named_site("h100-hall")
    rules = [parse_rule({"name": "GpuHot", "kind": "threshold", "measurement": "gpu", "field": "temp_c",
                         "threshold": 85, "flap": None}),
             parse_rule({"name": "GpuSilent", "kind": "absent", "measurement": "gpu", "by": ["node", "gpu"],
                         "after": "5s"})]
    now = [float(T0)]
    got = Slow()
    got.release.set()
    obs = LiveObserver(Engine(rules, site=site), [got], clock=lambda: now[0], ticker=False)
    gpu = {"rack": "A01", "node": "A01-n01", "gpu": "0"}
    assert obs.observe([Record("gpu", gpu, {"temp_c": 90.0}, T0 * NS)]) == []
    now[0] = T0 + 1.0
    assert [t.state for t in obs.tick()] == ["firing"]  # no newer sample needed
    now[0] = T0 + 7.0
    assert [t.rule for t in obs.tick()] == ["GpuSilent"]
    out = obs.observe([])
    assert [(r.measurement, r.tags["alertname"], r.fields["state"]) for r in out] == [
        ("alert", "GpuHot", "firing"), ("alert", "GpuSilent", "firing")]
    assert obs.flush(5) and [t.rule for t in got.got] == ["GpuHot", "GpuSilent"]
    obs.close()


def test_make_observer_uses_the_default_pack_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    obs = make_observer(named_site("h100-hall"), notifiers=[])
    try:
        names = {r.name for r in obs.engine.rules}
        assert {"LoopFlowLow", "GpuTempNearSlowdown", "FeedRedundancyLost"} <= names
    finally:
        obs.close()


def test_the_collector_builds_our_observer_when_alerts_are_on(tmp_path):
    from dcim.collector.app import make_observers
    from dcim.config import CollectorConfig

    site = named_site("h100-hall").model_copy(update={"alerts": named_site("h100-hall").alerts.model_copy(
        update={"notifiers": [NotifierConfig(kind="log")], "evaluation_interval_s": 0.5})})
    (obs,) = make_observers(CollectorConfig(alerts=True), site)
    try:
        assert isinstance(obs, LiveObserver) and obs.engine.interval_ns == 500_000_000
        assert [type(n).__name__ for n in obs.dispatcher.notifiers] == ["LogNotifier"]
    finally:
        obs.close()
    (obs,) = make_observers(CollectorConfig(alerts=True), CollectorConfig(alerts=True))  # collector-only file
    try:
        assert obs.engine.site.site == "dc1" and obs.engine.rules
    finally:
        obs.close()
    assert make_observers(CollectorConfig(alerts=False), site) == []
