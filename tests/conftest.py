"""Session fixtures that run real servers on free 127.0.0.1 ports (see docs/testing.md).

A missing server binary skips the test, except under CI (CI=true), where it fails it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Test modules import the harness as `servers`, whatever pytest's import mode.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import servers  # noqa: E402

if __package__:
    # `from tests.servers import X` must get this same module, not a second copy of it.
    sys.modules.setdefault(f"{__package__}.servers", servers)
from servers import (  # noqa: E402
    Alertmanager,
    InfluxDB,
    MissingBinaryError,
    Mosquitto,
    Prometheus,
    Server,
    SnmpExporter,
    SnmpSim,
    VictoriaMetrics,
)

SERVER_FIXTURES = frozenset({
    "mosquitto", "mosquitto_factory", "influxdb", "influxdb_factory", "victoriametrics",
    "victoriametrics_factory", "prometheus", "prometheus_factory", "alertmanager",
    "alertmanager_factory", "snmp_exporter_factory", "snmpsim_factory",
})


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _missing(exc: MissingBinaryError) -> None:
    if in_ci():
        pytest.fail(f"CI=true and a server is missing: {exc}", pytrace=False)
    pytest.skip(str(exc))


def _require_binary(name: str) -> Path:
    try:
        return servers.find_binary(name)
    except MissingBinaryError as exc:
        missing = exc
    _missing(missing)  # outside the except block, so the report has no chained traceback
    raise AssertionError("unreachable")


# Servers that live for the whole session; after each test any that a test stopped, killed or
# paused is brought back, so one failed "server down" test cannot break the tests after it.
_session_servers: list[Server] = []


@pytest.fixture(autouse=True)
def _revive_session_servers() -> Iterator[None]:
    yield
    for server in _session_servers:
        if server.paused:
            server.resume()
        if not server.is_running():
            server.start()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that asks for a server is an integration test even if its author forgot the mark,
    # so `-m "not integration"` never starts a server.
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


class ServerFactory:
    """Calls construct a server of one kind in a fresh tmp folder and start it. Servers live
    until the end of the session unless stopped earlier (use `with factory(...) as s:`)."""

    def __init__(self, cls: type[Server], tmp_path_factory: pytest.TempPathFactory) -> None:
        self.cls = cls
        self.tmp_path_factory = tmp_path_factory
        self.servers: list[Server] = []

    def __call__(self, *, start: bool = True, **kwargs: Any) -> Any:
        base = self.tmp_path_factory.mktemp(self.cls.name)
        try:
            server = self.cls(base, **kwargs)
        except MissingBinaryError as exc:
            missing = exc
        else:
            missing = None
        if missing is not None:
            _missing(missing)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def close(self) -> None:
        for server in reversed(self.servers):
            server.close()


def _factory(cls: type[Server], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[ServerFactory]:
    factory = ServerFactory(cls, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close()


def _session_server(factory: Callable[..., Server], **kwargs: Any) -> Iterator[Any]:
    server = factory(**kwargs)
    _session_servers.append(server)
    try:
        yield server
    finally:
        _session_servers.remove(server)
        server.close()


# --- ports -----------------------------------------------------------------------------------


@pytest.fixture
def free_tcp_port() -> int:
    return servers.free_tcp_port()


@pytest.fixture
def free_udp_port() -> int:
    return servers.free_udp_port()


# --- MQTT ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """mosquitto_factory(extra_config="", *, allow_anonymous=True, persistence=True,
    extra_ports=(), start=True) -> Mosquitto"""
    yield from _factory(Mosquitto, tmp_path_factory)


@pytest.fixture(scope="session")
def mosquitto(mosquitto_factory: ServerFactory) -> Iterator[Mosquitto]:
    """The shared anonymous broker (host, port, url, data_dir, config_path, stop/start)."""
    yield from _session_server(mosquitto_factory)


# --- time-series stores ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def influxdb_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """influxdb_factory(*, auth_enabled=False, extra_config="", start=True) -> InfluxDB"""
    yield from _factory(InfluxDB, tmp_path_factory)


@pytest.fixture(scope="session")
def influxdb(influxdb_factory: ServerFactory) -> Iterator[InfluxDB]:
    """The shared InfluxDB 1.x; tests should create a database of their own."""
    yield from _session_server(influxdb_factory)


@pytest.fixture(scope="session")
def victoriametrics_factory(tmp_path_factory: pytest.TempPathFactory
                            ) -> Iterator[ServerFactory]:
    """victoriametrics_factory(*, extra_args=(), start=True) -> VictoriaMetrics"""
    yield from _factory(VictoriaMetrics, tmp_path_factory)


@pytest.fixture(scope="session")
def victoriametrics(victoriametrics_factory: ServerFactory) -> Iterator[VictoriaMetrics]:
    yield from _session_server(victoriametrics_factory)


# --- Prometheus stack ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prometheus_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """prometheus_factory(*, targets=(), scrape_configs=(), rule_files=(), alertmanagers=(),
    self_scrape=True, scrape_interval_s=1.0, evaluation_interval_s=1.0, extra_args=(),
    start=True) -> Prometheus"""
    yield from _factory(Prometheus, tmp_path_factory)


@pytest.fixture(scope="session")
def prometheus(prometheus_factory: ServerFactory) -> Iterator[Prometheus]:
    """A Prometheus that scrapes only itself."""
    yield from _session_server(prometheus_factory)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _require_binary("promtool")


@pytest.fixture(scope="session")
def alertmanager_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """alertmanager_factory(*, config: dict | str | None = None, extra_args=(), start=True)
    -> Alertmanager"""
    yield from _factory(Alertmanager, tmp_path_factory)


@pytest.fixture(scope="session")
def alertmanager(alertmanager_factory: ServerFactory) -> Iterator[Alertmanager]:
    """An Alertmanager routing everything to a receiver that does nothing."""
    yield from _session_server(alertmanager_factory)


# --- SNMP ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def snmp_exporter_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """snmp_exporter_factory(*, config: dict | str | Path, extra_args=(), start=True)
    -> SnmpExporter"""
    yield from _factory(SnmpExporter, tmp_path_factory)


@pytest.fixture(scope="session")
def snmpsim_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """snmpsim_factory(*, data_dir=None, records=None, variation_modules_dir=None,
    v3_user=None, v3_auth_key=None, v3_auth_proto="SHA", v3_priv_key=None,
    v3_priv_proto="AES", v3_only=False, extra_args=(), start=True) -> SnmpSim"""
    yield from _factory(SnmpSim, tmp_path_factory)


@pytest.fixture(scope="session")
def snmpget() -> Path:
    return _require_binary("snmpget")


# --- browsers --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Path of the headless-capable Chromium binary (dashboard rendering tests)."""
    return _require_binary("chromium")
