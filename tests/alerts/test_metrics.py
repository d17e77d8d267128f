"""The engine's and notifiers' self-metrics on the collector's /metrics registry."""

from __future__ import annotations

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.live import LiveObserver
from dcim.alerts.notifiers import WebhookNotifier
from tests.alerts.test_restore import MIN, Pages, gpu, hot
from dcim.config import named_site


@pytest.fixture(scope="module")
def site():
    return named_site("h100-hall")


def test_evaluations_active_alerts_and_notifications_are_on_the_registry(site):
    from prometheus_client import CollectorRegistry, generate_latest

    reg = CollectorRegistry()
    pages = Pages()
    obs = LiveObserver(Engine([hot("1m")], site=site, evaluation_interval_s=60),
                       [WebhookNotifier("http://127.0.0.1:1/x", client=pages.client())], ticker=False, registry=reg)
    for t in range(0, 3 * MIN + 1, MIN):
        obs.observe([gpu(t, 90)])
    obs.flush()
    text = generate_latest(reg).decode()
    obs.close()
    assert "dcim_alert_evaluations_total 3.0" in text  # boundaries 0, 60, 120 s evaluated (180 s not yet)
    assert "dcim_alert_evaluation_duration_seconds_count 3.0" in text
    assert 'dcim_alerts_active{state="firing"} 1.0' in text and 'dcim_alerts_active{state="pending"} 0.0' in text
    assert 'dcim_alert_notifications_sent_total{notifier="webhook"} 1.0' in text
    assert 'dcim_alert_notifications_failed_total{notifier="webhook"} 0.0' in text
