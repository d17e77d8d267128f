"""Notifiers: Alertmanager API v2, signed webhook, console and log; each runs on its own worker thread.

The engine works on event time; notifiers are the one place that uses the wall clock, for resend
timing only. What each sends:

- Alertmanager: every firing alert, re-posted every ``resend_interval_s`` with ``endsAt`` four
  intervals ahead; a resolution is posted with ``endsAt`` = the resolve time and re-posted for
  ``resolve_resend_s``; ``startsAt`` is always the original. An alert's labels never change while
  it is active (inhibition is not a label), so Alertmanager sees one alert from firing to resolved;
  the inhibit rules from :func:`alertmanager_config`, generated from the rules' ``inhibits``, do
  the suppression there.
- Webhook: pages only: an alert that starts firing (not inhibited), an inhibition that lifts while
  firing, and the resolution of an alert it paged. JSON body, HMAC-SHA256 signature, retries with
  exponential backoff, timeouts. The key is never logged.
- Console / log: one line per transition, inhibited ones marked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

import httpx
from pydantic import SecretStr

from dcim.alerts.state import SEVERITY_RANK, Transition, scope_of
from dcim.config import NotifierConfig

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DCIM-Signature"
TIMESTAMP_HEADER = "X-DCIM-Timestamp"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class Notifier(Protocol):
    """Receives transitions in engine order; ``tick`` runs every second or so for resends."""

    name: str

    def notify(self, transitions: Sequence[Transition], now_s: float) -> None: ...

    def tick(self, now_s: float) -> None: ...


def rfc3339(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp + "." + body`` (the timestamp stops replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now_s: float | None = None,
           tolerance_s: float = 300.0) -> bool:
    """Check a webhook signature (for receivers and tests); constant-time compare, bounded age."""
    if now_s is not None:
        try:
            if abs(now_s - float(timestamp)) > tolerance_s:
                return False
        except ValueError:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def alert_labels(t: Transition) -> dict[str, str]:
    """Labels as Alertmanager sees them: alertname, severity, place and device, scope. They are the
    alert's identity (its fingerprint) and so never depend on inhibition."""
    return {"alertname": t.rule, "severity": t.severity, **t.labels, "scope": scope_of(t.labels)}


#: Labels an inhibiting alert and its targets must share, by the innermost place of the source.
_EQUAL = {"gpu": ["node", "gpu"], "node": ["node"], "phase": ["rack", "pdu", "phase"], "pdu": ["rack", "pdu"],
          "rack": ["rack"], "loop": ["loop"], "row": ["site", "room", "row"], "room": ["site", "room"],
          "site": ["site"]}


def _rule_scope(rule: Any) -> str:
    """The innermost place a rule's alerts are about, from its ``by`` tags or its measurement's tags."""
    from dcim import schema

    if getattr(rule, "by", None):
        tags = rule.by
    elif getattr(rule, "kind", None) == "energy_balance":
        tags = ["loop"]
    else:
        tags = schema.measurement(rule.measurement).tags
    return scope_of({t: "" for t in tags})


def alertmanager_inhibit_rules(rules: Sequence[Any]) -> list[dict[str, Any]]:
    """Alertmanager inhibit rules doing what the engine's ``inhibits`` do, one per source rule.

    Peers that explain each other are settled by severity (the higher one mutes the lower); equal
    peers are left to both notify, because Alertmanager cannot express "the first one wins" and
    mutes neither side of a rule an alert matches both ways
    (https://prometheus.io/docs/alerting/latest/configuration/#inhibit_rule).
    """
    out = []
    for src in rules:
        if not src.inhibits:
            continue
        targets = []
        for tgt in rules:
            if tgt is src or not src.matches_inhibit(tgt.name):
                continue
            if tgt.matches_inhibit(src.name) and SEVERITY_RANK[tgt.severity] >= SEVERITY_RANK[src.severity]:
                continue
            targets.append(tgt.name)
        if targets:
            out.append({"source_matchers": [f'alertname="{src.name}"'],
                        "target_matchers": [f'alertname=~"{"|".join(sorted(targets))}"'],
                        "equal": _EQUAL[_rule_scope(src)]})
    return out


def alertmanager_config(receiver: str = "pager", *, rules: Sequence[Any] | None = None) -> dict[str, Any]:
    """A route and the inhibit rules for the given rules (default: the shipped pack), to merge into
    alertmanager.yml. Alerts are grouped by place, so the peers of one loop share a notification."""
    if rules is None:
        from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules

        rules = load_rules([DEFAULT_RULES_DIR])
    return {
        "route": {"receiver": receiver, "group_by": ["site", "room", "row", "loop", "rack", "alertname"]},
        "receivers": [],
        "inhibit_rules": alertmanager_inhibit_rules(rules),
    }


# --- Alertmanager ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Sent:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_s: float
    resolved_at_s: float | None = None
    resolved_wall_s: float | None = None
    last_sent_s: float | None = None
    held_resolve_s: float | None = None  # resolved in the engine; held while alerts it explains are marked


class AlertmanagerNotifier:
    """Pushes alerts to ``POST /api/v2/alerts`` like Prometheus does (see module docstring)."""

    name = "alertmanager"

    def __init__(self, url: str, *, resend_interval_s: float = 60.0, resolve_resend_s: float = 300.0,
                 timeout_s: float = 5.0, client: httpx.Client | None = None,
                 generator_url: str = "") -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.resend_interval_s = resend_interval_s
        self.resolve_resend_s = resolve_resend_s
        self.client = client or httpx.Client(timeout=timeout_s)
        self.generator_url = generator_url
        self._firing: dict[str, _Sent] = {}  # engine fingerprint -> what Alertmanager holds
        self._resolved: list[_Sent] = []
        self._explains: dict[str, set[str]] = {}  # source fingerprint -> firing alerts the engine marks beneath it
        self.posts = 0
        self.errors = 0

    def notify(self, transitions: Sequence[Transition], now_s: float) -> None:
        due: list[_Sent] = []
        revived: list[_Sent] = []
        for t in transitions:
            fp = t.fingerprint
            if t.state == "firing":
                self._mark(fp, t.inhibited_by if t.inhibited else None)
                old = self._firing.get(fp)
                if old is not None:  # an inhibition mark changed (or it fired again): same alert, same identity
                    old.annotations = dict(t.annotations)
                    old.held_resolve_s = None
                    continue
                labels = alert_labels(t)
                starts = (t.starts_at_ns or t.time_ns) / 1e9
                sent = self._firing[fp] = _Sent(labels, dict(t.annotations), starts)
                due.append(sent)
            elif t.state == "resolved":
                self._mark(fp, None)
                old = self._firing.get(fp)
                if old is None and getattr(t, "restored", False):
                    # resolved before a restart while alerts it explains were still marked: Alertmanager
                    # keeps muting them only while it is active, so it is held (re-posted) again
                    old = self._firing[fp] = _Sent(alert_labels(t), dict(t.annotations),
                                                   (t.starts_at_ns or t.time_ns) / 1e9)
                    revived.append(old)
                if old is not None:
                    old.annotations = dict(t.annotations)
                    old.held_resolve_s = min(t.time_ns / 1e9, now_s)
        # A source's resolution goes out once nothing it explains is still marked beneath it: in the
        # engine the mark outlives the source by its inhibit_grace, and Alertmanager, whose inhibit
        # rules need the source active, would otherwise notify the still-hot GPUs as a new incident.
        for fp, sent in list(self._firing.items()):
            if sent.held_resolve_s is not None and not self._explains.get(fp):
                del self._firing[fp]
                self._explains.pop(fp, None)
                self._resolve(sent, sent.held_resolve_s, now_s)
                due.append(sent)
        due += [s for s in revived if not any(s is d for d in due)]
        if due:
            self._post(due, now_s)

    def _mark(self, fp: str, by: str | None) -> None:
        for src, targets in self._explains.items():
            if src != by:
                targets.discard(fp)
        if by is not None:
            self._explains.setdefault(by, set()).add(fp)

    def _resolve(self, sent: _Sent, at_s: float, now_s: float) -> None:
        self._firing = {k: v for k, v in self._firing.items() if v is not sent}
        sent.resolved_at_s = at_s
        sent.resolved_wall_s = now_s
        self._resolved.append(sent)

    def tick(self, now_s: float) -> None:
        self._resolved = [s for s in self._resolved if now_s - (s.resolved_wall_s or now_s) <= self.resolve_resend_s]
        due = [s for s in (*self._firing.values(), *self._resolved)
               if s.last_sent_s is None or now_s - s.last_sent_s >= self.resend_interval_s]
        if due:
            self._post(due, now_s)

    def payload(self, sent: Iterable[_Sent], now_s: float) -> list[dict[str, Any]]:
        out = []
        for s in sent:
            ends = s.resolved_at_s if s.resolved_at_s is not None else now_s + 4 * self.resend_interval_s
            out.append({"labels": s.labels, "annotations": s.annotations, "startsAt": rfc3339(s.starts_at_s),
                        "endsAt": rfc3339(ends), "generatorURL": self.generator_url})
        return out

    def _post(self, due: list[_Sent], now_s: float) -> None:
        try:
            resp = self.client.post(self.url, json=self.payload(due, now_s))
        except httpx.HTTPError as exc:
            self.errors += 1
            log.warning("alertmanager %s: %s (will retry)", self.url, type(exc).__name__)
            return
        if resp.status_code >= 300:
            self.errors += 1
            log.warning("alertmanager %s answered %s: %s", self.url, resp.status_code, resp.text[:200])
            return
        self.posts += 1
        for s in due:
            s.last_sent_s = now_s

    def close(self) -> None:
        self.client.close()


# --- webhook -----------------------------------------------------------------------------------


class WebhookNotifier:
    """POSTs pages as signed JSON (see module docstring); retries 5xx/429/network errors with backoff."""

    name = "webhook"

    def __init__(self, url: str, *, secret: SecretStr | None = None, timeout_s: float = 5.0, retries: int = 3,
                 backoff_s: float = 0.5, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self._secret = secret
        self.retries = retries
        self.backoff_s = backoff_s
        self.client = client or httpx.Client(timeout=timeout_s)
        self.sleep = sleep
        self._paged: set[str] = set()
        self.sent = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.url!r}, signed={self._secret is not None})"

    def pages(self, transitions: Sequence[Transition]) -> list[Transition]:
        """The transitions a person should hear about."""
        out = []
        for t in transitions:
            if getattr(t, "restored", False):  # what-if also counts the pages of stand-in transitions
                if t.state == "firing" and t.paged:
                    self._paged.add(t.fingerprint)  # paged before the restart: resolve it later, never re-page
                continue  # a restored resolution went out before the restart
            if t.state == "firing" and not t.inhibited:
                if t.fingerprint not in self._paged:
                    self._paged.add(t.fingerprint)
                    out.append(t)
            elif t.state == "resolved" and t.fingerprint in self._paged:
                self._paged.discard(t.fingerprint)
                out.append(t)
        return out

    @staticmethod
    def body(pages: Sequence[Transition], now_s: float) -> bytes:
        alerts = []
        for t in pages:
            alerts.append({
                "status": "resolved" if t.state == "resolved" else "firing",
                "labels": {"alertname": t.rule, "severity": t.severity, **t.labels},
                "annotations": t.annotations,
                "startsAt": rfc3339((t.starts_at_ns or t.time_ns) / 1e9),
                "endsAt": rfc3339(t.time_ns / 1e9) if t.state == "resolved" else None,
                "eventTime": rfc3339(t.time_ns / 1e9),
                "previous": t.previous,
                "value": t.value,
                "fingerprint": t.fingerprint,
            })
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
        doc = {"version": "dcim-1", "status": status, "sentAt": rfc3339(now_s), "alerts": alerts}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    def notify(self, transitions: Sequence[Transition], now_s: float) -> None:
        pages = self.pages(transitions)
        if pages:
            self.send(self.body(pages, now_s), now_s)

    def send(self, body: bytes, now_s: float) -> bool:
        headers = {"Content-Type": "application/json"}
        if self._secret is not None:
            ts = f"{now_s:.3f}"
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(self._secret.get_secret_value(), ts, body)
        for attempt in range(self.retries + 1):
            try:
                resp = self.client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            else:
                if resp.status_code < 300:
                    self.sent += 1
                    return True
                reason = f"HTTP {resp.status_code}"
                if resp.status_code not in _RETRY_STATUS:
                    break
            if attempt < self.retries:
                delay = self.backoff_s * 2**attempt
                log.warning("webhook %s: %s; retry %d/%d in %.1fs", self.url, reason, attempt + 1, self.retries, delay)
                self.sleep(delay)
        self.failed += 1
        log.error("webhook %s: giving up on %d bytes: %s", self.url, len(body), reason)
        return False

    def tick(self, now_s: float) -> None:
        return None

    def close(self) -> None:
        self.client.close()


# --- console and log ---------------------------------------------------------------------------


def describe(t: Transition) -> str:
    mark = f" [inhibited by {t.inhibited_by}]" if t.inhibited else ""
    if getattr(t, "restored", False):
        mark += " [restored]"
    return f"{rfc3339(t.time_ns / 1e9)} {t.severity:<8} {t.rule} {t.previous}->{t.state}{mark}: {t.summary}"


class ConsoleNotifier:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def notify(self, transitions: Sequence[Transition], now_s: float) -> None:
        out = self.stream or sys.stdout
        for t in transitions:
            if t.state in ("firing", "resolved"):
                print(describe(t), file=out, flush=True)

    def tick(self, now_s: float) -> None:
        return None


class LogNotifier:
    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("dcim.alerts")

    def notify(self, transitions: Sequence[Transition], now_s: float) -> None:
        for t in transitions:
            level = logging.WARNING if t.state == "firing" and not t.inhibited else logging.INFO
            self.logger.log(level, "%s", describe(t))

    def tick(self, now_s: float) -> None:
        return None


def make_notifier(cfg: NotifierConfig) -> Notifier:
    """A notifier from its configuration; the webhook secret is resolved now (SecretError if missing)."""
    if cfg.kind == "alertmanager":
        if not cfg.url:
            raise ValueError("an alertmanager notifier needs url")
        return AlertmanagerNotifier(cfg.url, resend_interval_s=cfg.resend_interval_s,
                                    resolve_resend_s=cfg.resolve_resend_s, timeout_s=cfg.timeout_s)
    if cfg.kind == "webhook":
        if not cfg.url:
            raise ValueError("a webhook notifier needs url")
        secret = cfg.secret.resolve() if cfg.secret is not None else None
        return WebhookNotifier(cfg.url, secret=secret, timeout_s=cfg.timeout_s, retries=cfg.retries,
                               backoff_s=cfg.backoff_s)
    if cfg.kind == "console":
        return ConsoleNotifier()
    return LogNotifier()


# --- dispatch ----------------------------------------------------------------------------------


class _Worker:
    def __init__(self, notifier: Notifier, clock: Callable[[], float], tick_s: float) -> None:
        self.notifier = notifier
        self.clock = clock
        self.tick_s = tick_s
        self.queue: queue.Queue[list[Transition] | None] = queue.Queue()
        self.pending = 0  # batches submitted and not yet handled
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"notify-{notifier.name}", daemon=True)
        self.thread.start()

    def put(self, item: list[Transition] | None) -> None:
        with self.cond:
            self.pending += 1
        self.queue.put(item)

    def wait_idle(self, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.pending == 0, timeout_s)

    def _run(self) -> None:
        next_tick = self.clock() + self.tick_s
        while True:
            got = True
            try:
                item = self.queue.get(timeout=max(0.0, next_tick - self.clock()))
            except queue.Empty:
                item, got = [], False
            try:
                if item:
                    self.notifier.notify(item, self.clock())
                if item is not None and self.clock() >= next_tick:
                    self.notifier.tick(self.clock())
                    next_tick = self.clock() + self.tick_s
            except Exception:  # a notifier bug must not stop the others or the engine
                log.exception("notifier %s failed", self.notifier.name)
            if got:
                with self.cond:
                    self.pending -= 1
                    self.cond.notify_all()
            if item is None:
                return


class Dispatcher:
    """Hands transitions to every notifier's worker thread; ``submit`` never blocks the caller."""

    def __init__(self, notifiers: Sequence[Notifier], *, clock: Callable[[], float] = time.time,
                 tick_s: float = 1.0) -> None:
        self.notifiers = list(notifiers)
        self._workers = [_Worker(n, clock, tick_s) for n in self.notifiers]

    def submit(self, transitions: Sequence[Transition]) -> None:
        if not transitions:
            return
        batch = list(transitions)
        for w in self._workers:
            w.put(batch)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every worker has handled what was submitted (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        return all(w.wait_idle(max(0.0, deadline - time.monotonic())) for w in self._workers)

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        for w in self._workers:
            w.put(None)
        for w in self._workers:
            w.thread.join(timeout_s)
            close = getattr(w.notifier, "close", None)
            if close is not None:
                close()
