"""Signed webhook driver for alert actions: any other orchestrator gets each action as JSON (``Action.payload``).

The body is signed like the notification webhook (``X-DCIM-Signature: sha256=<HMAC-SHA256 of
timestamp + "." + body>``, ``X-DCIM-Timestamp``; ``alerts.notifiers.verify`` checks it) and sent
with the same retries and backoff. The receiver acts on ``action`` (drain, cordon, resume, webhook)
for ``node``; ``alert.fingerprint`` plus ``action`` makes a delivery idempotent on its side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from dcim.alerts.actions_driver import Action
from dcim.alerts.notifiers import WebhookNotifier
from dcim.errors import DriverError


class WebhookDriver:
    """POSTs each action's payload, signed; a delivery that fails after the retries raises DriverError."""

    name = "webhook"

    def __init__(self, url: str, *, secret: SecretStr | None = None, timeout_s: float = 5.0, retries: int = 3,
                 backoff_s: float = 0.5, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self._sender = WebhookNotifier(url, secret=secret, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
                                       client=client, sleep=sleep)
        self.clock = clock

    def __repr__(self) -> str:
        return f"WebhookDriver({self._sender.url!r}, signed={self._sender._secret is not None})"

    @staticmethod
    def body(action: Action) -> bytes:
        return json.dumps(action.payload(), separators=(",", ":"), sort_keys=True).encode()

    def apply(self, action: Action) -> str:
        if not self._sender.send(self.body(action), self.clock()):
            raise DriverError(f"webhook {self._sender.url}: not delivered")
        return "delivered"

    def close(self) -> None:
        self._sender.close()


def make_webhook_driver(cfg: Any) -> WebhookDriver:
    """From an ``alerts.actions.drivers`` entry of kind webhook; the secret is resolved now."""
    if not cfg.url:
        raise ValueError("a webhook action driver needs url")
    secret = cfg.secret.resolve() if cfg.secret is not None else None
    return WebhookDriver(cfg.url, secret=secret, timeout_s=cfg.timeout_s, retries=cfg.retries,
                         backoff_s=cfg.backoff_s)
