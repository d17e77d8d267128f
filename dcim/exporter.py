"""Serve a component's prometheus-client registry on ``/metrics`` (one small HTTP server thread)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server

from dcim.errors import ConfigError


@dataclass
class MetricsServer:
    """A running /metrics server; ``port`` is the bound port (useful when asked for port 0)."""

    host: str
    port: int
    _httpd: object
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()  # type: ignore[attr-defined]
        self._httpd.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Start serving ``registry`` on http://host:port/metrics; port 0 picks a free port."""
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        msg = f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    return MetricsServer(host, httpd.server_address[1], httpd, thread)
