"""``dcim collector``: run the collector, or check its configuration.

The file is either a site YAML (it has a ``site:`` key; its ``mqtt:`` and ``collector:`` sections
are used) or a collector-only YAML with just ``mqtt:`` and ``collector:`` sections.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import click

from dcim.config import CollectorConfig, Model, MqttConfig, SiteConfig, load_model, load_yaml
from dcim.errors import ConfigError

log = logging.getLogger(__name__)


class CollectorFile(Model):
    """A collector-only configuration file."""

    mqtt: MqttConfig = MqttConfig()
    collector: CollectorConfig = CollectorConfig()


def load_config(path: str | Path) -> tuple[MqttConfig, CollectorConfig, Any]:
    """(mqtt, collector, site or collector config for observers) from either kind of file."""
    data, _text = load_yaml(path)
    if isinstance(data, dict) and "site" in data:
        site = load_model(SiteConfig, path)
        return site.mqtt, site.collector, site
    cfg = load_model(CollectorFile, path)
    return cfg.mqtt, cfg.collector, cfg.collector


def check(path: str | Path) -> list[str]:
    """Validate everything that can be checked without connecting; lines describing the result."""
    from dcim.collector.mapping import load_mappings

    mqtt, cfg, _ = load_config(path)
    mappings = load_mappings(cfg.mappings)
    # secrets must resolve now rather than at 3 a.m.; their values are never printed
    for secret, where in ((mqtt.password, "mqtt.password"), (cfg.influx.password, "collector.influx.password"),
                          (cfg.influx.token, "collector.influx.token")):
        if secret is not None and (cfg.sink == "influx" or where.startswith("mqtt")):
            try:
                secret.resolve()
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}", file=str(path)) from None
    for i, sc in enumerate(cfg.sinks):
        for attr in ("password", "token"):
            secret = getattr(sc, attr, None)
            if secret is not None:
                try:
                    secret.resolve()
                except ConfigError as exc:
                    raise ConfigError(f"collector.sinks[{i}].{attr}: {exc}", file=str(path)) from None
    if cfg.alerts:
        from dcim.collector.app import make_observers

        _, _, site = load_config(path)
        for obs in make_observers(cfg, site):  # rules load and notifiers build; then let go
            closer = getattr(obs, "close", None)
            if callable(closer):
                closer()
    sink = cfg.sink if cfg.sink == "embedded" else f"influxdb_{cfg.influx.api} {cfg.influx.url}"
    if cfg.sinks:
        sink = ", ".join(f"{sc.name or sc.kind} ({sc.kind} {getattr(sc, 'url', None) or sc.path})" for sc in cfg.sinks)
    topics = [*cfg.topics, *(m.filter for m in mappings)]
    if cfg.shared_group:
        topics = [f"$share/{cfg.shared_group}/{t}" for t in topics]
    return [
        f"{path}: ok",
        f"  broker  {mqtt.url}",
        f"  topics  {', '.join(topics)}",
        f"  sink    {sink}" + (f" ({cfg.embedded_path})" if cfg.sink == "embedded" and not cfg.sinks else ""),
        f"  spool   {cfg.spool_path} (cap {cfg.spool_max_bytes} bytes)",
        f"  mappings {', '.join(m.name for m in mappings) or '-'}",
    ]


async def serve(path: str | Path) -> None:
    from prometheus_client import CollectorRegistry

    from dcim.collector.app import Collector, make_observers
    from dcim.exporter import serve_metrics

    mqtt, cfg, site = load_config(path)
    registry = CollectorRegistry()
    observers = make_observers(cfg, site, registry)
    collector = Collector(cfg, mqtt, observers=observers, registry=registry)
    server = serve_metrics(registry, cfg.metrics.host, cfg.metrics.port) if cfg.metrics.port else None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, collector.stop)
    try:
        await collector.run()
    finally:
        if server is not None:
            server.close()


@click.command("collector")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Site or collector YAML to run with.")
@click.option("--check-config", "check_path", type=click.Path(dir_okay=False),
              help="Validate this file (mappings and secrets included) and exit.")
def collector_cmd(config_path: str | None, check_path: str | None) -> None:
    """MQTT in, schema check, InfluxDB (v1/v2) or the embedded store out; a disk spool in between."""
    if check_path:
        for line in check(check_path):
            click.echo(line)
        return
    if not config_path:
        raise click.UsageError("give --config FILE (or --check-config FILE)")
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    asyncio.run(serve(config_path))
