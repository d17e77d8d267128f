"""Simulated pump failure -> MQTT -> collector -> alert engine -> a real Alertmanager 0.25 and a signed webhook.

The loop alerts are active in Alertmanager while the GPU alerts beneath them show as suppressed
(inhibitedBy a loop alert, through the inhibit rules generated from the pack; their labels carry no
inhibition mark); after recovery Alertmanager reports the loop alerts resolved; the webhook got at
most one signed page per severity (and their resolutions) for the whole incident; the collector
wrote the transitions to its store as ``alert`` records.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from dcim.alerts.engine import Engine
from dcim.alerts.live import LiveObserver
from dcim.alerts.notifiers import SIGNATURE_HEADER, TIMESTAMP_HEADER, AlertmanagerNotifier, WebhookNotifier, \
    alertmanager_config, verify
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.collector.store import EmbeddedStore
from dcim.config import CollectorConfig, SiteConfig
from dcim.lineprotocol.encode import encode_record
from dcim.simulators.hall import Hall
from dcim.simulators.scenarios import load_scenario
from tests.collector.helpers import Message, Publisher, running, uid, wait_for

pytestmark = pytest.mark.integration

SITE = {
    "site": "dc1",
    "rooms": [{"name": "hall1", "rows": [
        {"name": "A", "racks": [{"name": "A01", "nodes": 1}, {"name": "A02", "nodes": 1}]},
        {"name": "B", "racks": [{"name": "B01", "nodes": 1}, {"name": "B02", "nodes": 1}]}]}],
    "loops": [{"name": "loop-a", "cdu": "cdu-a", "racks": ["A01", "A02"], "nominal_flow_lpm": 40},
              {"name": "loop-b", "cdu": "cdu-b", "racks": ["B01", "B02"], "nominal_flow_lpm": 40}],
}
# Flow sized for the load (~1.5 L/min per kW: ~20 kW per loop), so ΔT sits inside its 2-12 K band.
SECRET = "pump-test-hmac-key"
DOMAINS = ("gpu", "gpu_xid", "pdu", "pdu_phase", "coolant_loop")


class Receiver:
    """A loopback HTTP endpoint that keeps every POST (path, headers, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.posts.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for p, h, b in self.posts if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def am_config(receiver_url: str) -> dict:
    cfg = alertmanager_config("hook")
    cfg["route"].update({"group_by": ["alertname", "loop", "rack"], "group_wait": "0s", "group_interval": "1s",
                         "repeat_interval": "1h"})
    cfg["receivers"].append({"name": "hook", "webhook_configs": [{"url": receiver_url + "/am",
                                                                  "send_resolved": True}]})
    return cfg


def step_messages(hall: Hall, prefix: str) -> Message:
    recs = [r for r in hall.records() if r.measurement in DOMAINS]
    return Message(f"{prefix}/sim", "\n".join(encode_record(r) for r in recs).encode(), recs)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


async def test_pump_failure_pages_each_severity_once_and_alertmanager_shows_the_gpus_inhibited(
        mosquitto, alertmanager_factory, receiver, tmp_path):
    am = alertmanager_factory(config=am_config(receiver.url))
    site = SiteConfig.model_validate(SITE)
    engine = Engine(load_rules([DEFAULT_RULES_DIR]), site=site)
    notifiers = [AlertmanagerNotifier(am.url, resend_interval_s=5, resolve_resend_s=30),
                 WebhookNotifier(receiver.url + "/dcim", secret=SecretStr(SECRET), retries=2, backoff_s=0.1)]
    # No wall-clock ticker: the simulated data is time-compressed, its event time runs ahead of us.
    observer = LiveObserver(engine, notifiers, ticker=False)
    run = uid()
    cfg = CollectorConfig(topics=[f"dcim/{run}/#"], client_id=f"collector-{run}", sink="embedded",
                          embedded_path=tmp_path / "store", spool_path=tmp_path / "spool",
                          dead_letter_path=tmp_path / "dead.jsonl", linger_ms=250)
    start_ns = (time.time_ns() // 10**9 - 600) * 10**9  # ten minutes ago: all samples are in the past
    hall = Hall(site, seed=3, scenario=load_scenario("pump-degradation"), start_ns=start_ns)

    def publish(pub: Publisher, steps: int) -> None:
        msgs = []
        for _ in range(steps):
            hall.step(1.0)
            msgs.append(step_messages(hall, f"dcim/{run}"))
        pub.publish(msgs)

    def am_alerts() -> list[dict]:
        return am.alerts()

    loop_fps: set[str] = set()

    def loop_alert_and_suppressed_gpus():
        alerts = am_alerts()
        loops = [a for a in alerts if a["labels"].get("scope") == "loop" and a["labels"].get("loop") == "loop-a"]
        loop_fps.update(a["fingerprint"] for a in loops)
        active = [a for a in loops if a["status"]["state"] == "active" and a["labels"]["severity"] == "critical"]
        gpus = [a for a in alerts if a["labels"]["alertname"].startswith("Gpu")]
        if active and gpus and all(a["status"]["state"] == "suppressed" for a in gpus):
            return active[0], gpus
        return None

    async with running(cfg, mosquitto.url, observers=[observer]):
        pub = Publisher(mosquitto.host, mosquitto.port)
        try:
            await asyncio.to_thread(publish, pub, 300)  # pump failing from 1 min, GPUs hot by 5 min
            loop, gpus = await wait_for(loop_alert_and_suppressed_gpus, 30, "loop alert active, GPU alerts suppressed")
            assert all("inhibited" not in a["labels"] and a["labels"]["loop"] == "loop-a" for a in gpus)
            assert all(set(a["status"]["inhibitedBy"]) <= loop_fps and a["status"]["inhibitedBy"] for a in gpus)
            assert {a["labels"]["rack"] for a in gpus} <= {"A01", "A02"}
            assert not any(a["labels"].get("loop") == "loop-b" for a in am_alerts())

            await asyncio.to_thread(publish, pub, 270)  # restored from 6 min, recovered by 7 min

            def loop_resolved_by_alertmanager():
                for headers, body in receiver.get("/am"):
                    doc = json.loads(body)
                    for a in doc["alerts"]:
                        if a["fingerprint"] == loop["fingerprint"] and a["status"] == "resolved":
                            return a
                return None

            resolved = await wait_for(loop_resolved_by_alertmanager, 30, "Alertmanager's resolved notification")
            assert resolved["startsAt"].startswith(loop["startsAt"][:19])  # the original startsAt was kept
            assert not [a for a in am_alerts() if a["fingerprint"] == loop["fingerprint"]]
        finally:
            pub.close()
    observer.close()

    # Alertmanager notified the loop alert and never the suppressed GPU alerts.
    am_notified = {a["labels"]["alertname"] for _h, b in receiver.get("/am") for a in json.loads(b)["alerts"]}
    assert loop["labels"]["alertname"] in am_notified
    assert not any(name.startswith("Gpu") for name in am_notified)

    # Our webhook: every request signed; at most one page per severity (a critical symptom after a
    # paged warning is heard), each resolved by the end, all on loop-a.
    pages = []
    for headers, body in receiver.get("/dcim"):
        assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], now_s=time.time())
        assert SECRET.encode() not in body
        pages += json.loads(body)["alerts"]
    fired = [p for p in pages if p["status"] == "firing"]
    assert fired and all(p["labels"]["loop"] == "loop-a" and p["labels"]["alertname"].startswith("Loop")
                         for p in pages)
    assert len({p["labels"]["severity"] for p in fired}) == len(fired)
    assert "critical" in {p["labels"]["severity"] for p in fired}
    assert sorted(p["fingerprint"] for p in fired) == sorted(p["fingerprint"] for p in pages
                                                            if p["status"] == "resolved")

    # The collector stored the transitions next to the data.
    rows = list(EmbeddedStore(tmp_path / "store").query("alert"))
    assert any(r.tags["alertname"].startswith("Gpu") and r.fields["inhibited"] is True
               and r.fields["state"] == "firing" for r in rows)
    critical = next(p["labels"]["alertname"] for p in fired if p["labels"]["severity"] == "critical")
    loop_rows = [(r.fields["state"], r.fields["inhibited"]) for r in rows
                 if r.tags["alertname"] == critical and r.tags.get("loop") == "loop-a"]
    assert ("firing", False) in loop_rows and ("resolved", False) in loop_rows
